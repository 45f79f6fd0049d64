"""What a Telegram handler may use: :class:`BotContext`, narrow on purpose.

Handlers get the stores (through their non-blocking facades), the allowlist, the model
catalogue and a :class:`RunnerControls`; never the runner's insides, the client's retry loop
or the running job's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..jobs import Job
from .access import Access
from .captions import Catalog
from .config import BotConfig
from .stores import AsyncJobQueue, AsyncPrefs

if TYPE_CHECKING:
    from ..models import ModelSpec

__all__ = ["BotContext", "QueueStatus", "RunnerControls", "UserJob"]


@dataclass(frozen=True)
class UserJob:
    """One of a user's unfinished jobs, for /status."""

    name: str
    running: bool
    percent: int | None = None  # running: tiles done so far, when known
    position: int | None = None  # queued: place in line, running jobs counted as ahead


@dataclass(frozen=True)
class QueueStatus:
    """What /status shows."""

    device: str
    waiting: int
    running: int
    stopping: bool
    jobs: tuple[UserJob, ...]


class RunnerControls(Protocol):
    """The job runner as handlers see it."""

    async def queued_text(self, job: Job) -> str:
        """``queued (#2 in line, ETA ~10 s)`` for a job just added."""
        ...

    async def enqueue(self, job: Job, *, message: Any, status_message_id: int | None) -> None:
        """Hand a queued job to the runner: its Telegram message (spares a refetch) and the
        message that will show its progress (None if the "queued" reply could not be sent)."""
        ...

    async def cancel(self, user_id: int) -> int:
        """Cancel the user's queued and running jobs; returns how many."""
        ...

    async def status(self, user_id: int) -> QueueStatus:
        """The device, the queue and this user's unfinished jobs."""
        ...


@dataclass(frozen=True)
class BotContext:
    """Everything a handler needs; built once per bot run."""

    config: BotConfig
    queue: AsyncJobQueue
    prefs: AsyncPrefs
    access: Access
    catalog: Catalog
    resolve: Callable[[str, int | None], ModelSpec]  # blocking: call it in a thread
    runner: RunnerControls
