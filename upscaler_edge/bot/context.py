"""What a Telegram handler may use: :class:`BotContext`, narrow on purpose, and the
:class:`Sender` of the message in hand.

Handlers get the stores (through their non-blocking facades), the allowlist, the model
catalogue and a :class:`RunnerControls`; never the runner's insides, the client's retry loop
or the running job's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..jobs import Job
from .access import Access
from .captions import Catalog
from .config import BotConfig
from .i18n import Translator
from .prefs import UserPrefs
from .stores import AsyncJobQueue, AsyncMembers, AsyncPrefs

if TYPE_CHECKING:
    from ..models import ModelSpec

__all__ = [
    "BotContext",
    "ClusterWorker",
    "KeyedLocks",
    "QueueStatus",
    "RunnerControls",
    "Sender",
    "UserJob",
]


@dataclass(frozen=True)
class UserJob:
    """One of a user's unfinished jobs, for /status."""

    name: str
    running: bool
    percent: int | None = None  # running: tiles done so far, when known
    position: int | None = None  # queued: place in line, running jobs counted as ahead
    ready: bool = False  # made; its album is still being worked on


@dataclass(frozen=True)
class ClusterWorker:
    """One PC of the cluster, for /status."""

    name: str
    device: str
    jobs_done: int
    mp_per_s: float | None  # megapixels a second it has managed (None: no job yet)
    busy: bool
    small_only: bool


@dataclass(frozen=True)
class QueueStatus:
    """What /status shows. ``cluster``: the bot sends its jobs to the cluster, whose PCs are
    ``workers`` (None: the list could not be read just now)."""

    device: str
    waiting: int
    running: int
    stopping: bool
    jobs: tuple[UserJob, ...]
    cluster: bool = False
    workers: tuple[ClusterWorker, ...] | None = None


class RunnerControls(Protocol):
    """The job runner as handlers see it."""

    async def queued_text(
        self, job: Job, tr: Translator, *, count: int = 1, first: Job | None = None
    ) -> str:
        """``Queued: #2 in line, ready in about 10 s.`` for a job just added. For an album:
        ``count`` files queued so far, ``first`` the first of them (its place in line) and
        ``job`` the last (when all will be ready)."""
        ...

    async def enqueue(self, job: Job, *, message: Any, status_message_id: int | None) -> None:
        """Hand a queued job to the runner: its Telegram message (spares a refetch) and the
        message that will show its progress (None if the "queued" reply could not be sent)."""
        ...

    def show_status(self, job: Job, text: str, *, status_message_id: int) -> None:
        """Edit a status message (throttled; the jobs of an album share one)."""
        ...

    async def cancel(self, user_id: int) -> int:
        """Cancel the user's unfinished jobs; returns how many."""
        ...

    async def status(self, user_id: int) -> QueueStatus:
        """The device, the queue and this user's unfinished jobs."""
        ...


class KeyedLocks:
    """One :class:`asyncio.Lock` per key, forgotten when nobody holds or waits for it.

    Telethon runs handlers concurrently: the messages of one album, or two pictures of one
    user, must not both decide "first of the album" or "within today's limit".
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass(frozen=True)
class Sender:
    """The allowed user whose message (or button press) is being handled."""

    user_id: int
    tr: Translator  # their language: /lang, else Telegram's lang_code, else English
    prefs: UserPrefs
    is_owner: bool


@dataclass(frozen=True)
class BotContext:
    """Everything a handler needs; built once per bot run."""

    config: BotConfig
    queue: AsyncJobQueue
    prefs: AsyncPrefs
    members: AsyncMembers
    access: Access
    catalog: Catalog
    resolve: Callable[..., ModelSpec]  # (name, scale, denoise); blocking: call it in a thread
    runner: RunnerControls
    locks: KeyedLocks = field(default_factory=KeyedLocks)
