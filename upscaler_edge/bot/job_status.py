"""A running job's status: what others see of it, and its status message in the chat.

:class:`JobView` is the job as the runner shows it to /status, ETAs, /cancel and a clean stop.
:class:`StatusReporter` is the status message one attempt keeps up to date: the album's
shared message (and the file's place in the album, "file 2 of 3"), a new one if the
"queued" reply never went out, then each stage's progress (download, tiles, video frames
with the time left), through the throttled :class:`~.progress.StatusEditor`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..jobs import FAILED, QUEUED, RUNNING, Job
from .endings import Tools, show
from .i18n import Translator
from .progress import frames_text, progress_text
from .telegram import send_text

__all__ = ["JobView", "StatusReporter"]


@dataclass
class JobView:
    """The running job as others may see it: /status, ETAs, /cancel and a clean stop."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False  # cancelled by a stop, not by its user: back in line
    done: int = 0  # tiles
    total: int = 0
    estimate: float | None = None  # seconds of upscaling, from the measured speed


class StatusReporter:
    """One attempt's status message: where it is, and what it shows (progress, item)."""

    def __init__(self, tools: Tools, view: JobView, tr: Translator) -> None:
        self.tools = tools
        self.view = view
        self.tr = tr
        self._item: tuple[int, int] | None = None  # (index, count) in its album
        self._frames_from: tuple[float, int] | None = None  # (monotonic time, frames done)

    async def join_album(self) -> None:
        """For a file of an album: its place in it, and the album's status message."""
        job = self.view.job
        if job.album_id is None:
            return
        siblings = await self.tools.queue.album(job.chat_id, job.album_id)
        accepted = [s for s in siblings if not (s.state == FAILED and s.attempts == 0)]
        if len(accepted) > 1:  # "file 2 of 3": the second one worked on
            before = [s for s in accepted if s.id != job.id and s.state not in (QUEUED, RUNNING)]
            self._item = (len(before) + 1, len(accepted))
        if job.status_message_id is None:
            shared = next((s.status_message_id for s in siblings if s.status_message_id), None)
            if shared is not None:
                await self.tools.queue.set_status_message(job.id, shared)
                self.view.job = await self.tools.queue.get(job.id) or job

    async def ensure_message(self) -> None:
        """Send the job a status message if it has none yet."""
        job = self.view.job
        if job.status_message_id is not None:
            return
        # e.g. the bot crashed before the "queued" reply, or that reply hit a FloodWait;
        # an album's files all derive the key from its first file, so only one is sent
        first = job
        if job.album_id is not None:
            siblings = await self.tools.queue.album(job.chat_id, job.album_id)
            first = siblings[0] if siblings else job
        text = progress_text(self.tr, "starting", item=self._item)
        msg_id = await self.tools.link.call(
            "status message",
            lambda c: send_text(
                c,
                job.chat_address,
                text,
                random_id=first.reply_random_id ^ 1,
                reply_to=first.request_message_id,
            ),
        )
        if msg_id is not None:
            await self.tools.queue.set_status_message(job.id, msg_id)
            self.view.job = await self.tools.queue.get(job.id) or job

    def stage(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Show ``stage`` (see :data:`~.progress.STAGES`), with its progress if known."""
        show(self.tools, self.view.job, progress_text(self.tr, stage, done, total, item=self._item))

    def tiles(self, done: int, total: int) -> None:
        """Picture progress: tiles done of the total."""
        self.view.done, self.view.total = done, total
        self.stage("upscaling", done, total)

    def frames(self, done: int, total: int) -> None:
        """Video progress: frames done of the total and the time left at this run's speed."""
        self.view.done, self.view.total = done, total
        now = time.monotonic()
        if self._frames_from is None or done < self._frames_from[1]:
            self._frames_from = (now, done)  # the first report: frames resumed are not speed
        t0, d0 = self._frames_from
        eta = None
        if done > d0 and total:
            eta = (total - done) * (now - t0) / (done - d0)
        elif total and self.view.estimate is not None:
            eta = self.view.estimate * (1 - done / total)
        self.show_frames(done, total, eta)

    def show_frames(self, done: int, total: int, eta: float | None) -> None:
        """Show video progress with ``eta`` seconds left (None: not known yet)."""
        show(self.tools, self.view.job, frames_text(self.tr, done, total, eta, item=self._item))
