"""The bot's SQLite stores, reached from the event loop without blocking it.

:class:`~upscaler_edge.jobs.JobQueue`, :class:`~.prefs.Prefs` and :class:`~.members.Members`
are plain blocking objects,
safe from any thread. The bot's coroutines use them through these facades, whose methods run
the call in a worker thread (``asyncio.to_thread``): a slow disk, or a queue file locked by
another process for a while, then stalls one request instead of every chat. ``blocking`` is
the wrapped object, for start-up code and tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..jobs import QUEUED, RUNNING, Job, JobQueue
from .members import Member, Members
from .prefs import Prefs, UserPrefs

__all__ = ["AsyncJobQueue", "AsyncMembers", "AsyncPrefs"]


class AsyncJobQueue:
    """:class:`JobQueue`'s methods the bot uses, as coroutines (same arguments, same results)."""

    def __init__(self, queue: JobQueue) -> None:
        self.blocking = queue

    async def add(
        self,
        chat_id: int,
        request_message_id: int,
        user_id: int,
        *,
        chat_address: str,
        params: dict[str, Any],
        state: str = QUEUED,
        error: str | None = None,
        album_id: int | None = None,
    ) -> tuple[Job, bool]:
        return await asyncio.to_thread(
            self.blocking.add,
            chat_id,
            request_message_id,
            user_id,
            chat_address=chat_address,
            params=params,
            state=state,
            error=error,
            album_id=album_id,
        )

    async def get(self, job_id: int) -> Job | None:
        return await asyncio.to_thread(self.blocking.get, job_id)

    async def find(self, chat_id: int, request_message_id: int) -> Job | None:
        return await asyncio.to_thread(self.blocking.find, chat_id, request_message_id)

    async def jobs_for_user(
        self, user_id: int, states: Iterable[str] = (QUEUED, RUNNING)
    ) -> list[Job]:
        return await asyncio.to_thread(self.blocking.jobs_for_user, user_id, tuple(states))

    async def album(self, chat_id: int, album_id: int) -> list[Job]:
        return await asyncio.to_thread(self.blocking.album, chat_id, album_id)

    async def counted_since(self, user_id: int, since: float) -> int:
        return await asyncio.to_thread(self.blocking.counted_since, user_id, since)

    async def jobs_since(self, since: float) -> list[Job]:
        return await asyncio.to_thread(self.blocking.jobs_since, since)

    async def deliverable(self, settled_before: float) -> tuple[list[list[Job]], float | None]:
        return await asyncio.to_thread(self.blocking.deliverable, settled_before)

    async def mark_ready(self, job_id: int) -> bool:
        return await asyncio.to_thread(self.blocking.mark_ready, job_id)

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self.blocking.counts)

    async def position(self, job_id: int) -> int | None:
        return await asyncio.to_thread(self.blocking.position, job_id)

    async def claim(self, settled_before: float | None = None) -> Job | None:
        return await asyncio.to_thread(self.blocking.claim, settled_before)

    async def growing_album(self, settled_before: float) -> float | None:
        return await asyncio.to_thread(self.blocking.growing_album, settled_before)

    async def set_status_message(self, job_id: int, message_id: int | None) -> None:
        await asyncio.to_thread(self.blocking.set_status_message, job_id, message_id)

    async def update_params(self, job_id: int, **changes: Any) -> Job | None:
        return await asyncio.to_thread(lambda: self.blocking.update_params(job_id, **changes))

    async def finish(
        self,
        job_id: int,
        state: str,
        *,
        error: str | None = None,
        reply_message_id: int | None = None,
    ) -> bool:
        return await asyncio.to_thread(
            self.blocking.finish, job_id, state, error=error, reply_message_id=reply_message_id
        )

    async def record_reply(self, job_id: int, reply_message_id: int) -> None:
        await asyncio.to_thread(self.blocking.record_reply, job_id, reply_message_id)

    async def requeue(self, job_id: int) -> bool:
        return await asyncio.to_thread(self.blocking.requeue, job_id)

    async def cancel_for_user(self, user_id: int) -> list[Job]:
        return await asyncio.to_thread(self.blocking.cancel_for_user, user_id)

    async def recover(self) -> list[Job]:
        return await asyncio.to_thread(self.blocking.recover)

    async def clean_spool(self) -> int:
        return await asyncio.to_thread(self.blocking.clean_spool)

    async def spool_dir(self, job_id: int) -> Path:
        return await asyncio.to_thread(self.blocking.spool_dir, job_id)


class AsyncPrefs:
    """:class:`Prefs`' methods as coroutines (same arguments, same results)."""

    def __init__(self, prefs: Prefs) -> None:
        self.blocking = prefs

    async def get(self, user_id: int) -> UserPrefs:
        return await asyncio.to_thread(self.blocking.get, user_id)

    async def set(self, user_id: int, field: str, value: str | int | bool | None) -> None:
        await asyncio.to_thread(self.blocking.set, user_id, field, value)

    async def update(self, user_id: int, **values: str | int | bool | None) -> None:
        await asyncio.to_thread(lambda: self.blocking.update(user_id, **values))

    async def take_photo_hint(self, user_id: int) -> bool:
        return await asyncio.to_thread(self.blocking.take_photo_hint, user_id)

    async def speed(self, model: str, device: str) -> float | None:
        return await asyncio.to_thread(self.blocking.speed, model, device)

    async def record_speed(
        self, model: str, device: str, megapixels: float, seconds: float
    ) -> None:
        await asyncio.to_thread(self.blocking.record_speed, model, device, megapixels, seconds)


class AsyncMembers:
    """:class:`Members`' methods as coroutines (same arguments, same results)."""

    def __init__(self, members: Members) -> None:
        self.blocking = members

    async def seed(self, config_ids: Iterable[int]) -> frozenset[int]:
        return await asyncio.to_thread(self.blocking.seed, tuple(config_ids))

    async def set_allowed(self, user_id: int, allowed: bool, by: int | None) -> bool:
        return await asyncio.to_thread(self.blocking.set_allowed, user_id, allowed, by)

    async def saw(
        self,
        user_id: int,
        *,
        first_name: str | None,
        username: str | None,
        lang_code: str | None,
    ) -> None:
        await asyncio.to_thread(
            lambda: self.blocking.saw(
                user_id, first_name=first_name, username=username, lang_code=lang_code
            )
        )

    async def get(self, user_id: int) -> Member | None:
        return await asyncio.to_thread(self.blocking.get, user_id)

    async def everyone(self) -> list[Member]:
        return await asyncio.to_thread(self.blocking.everyone)
