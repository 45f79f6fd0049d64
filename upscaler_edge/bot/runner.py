"""The job runner: takes jobs from the durable queue one at a time and answers each once.

:class:`JobRunner` outlives any one Telegram connection: the connection loop (``app.py``)
attaches a connected client and detaches it when the connection drops; the runner only starts
a job while one is attached, and each job's Telegram calls wait out drops (:mod:`.link`).
Each claimed job is one :class:`~.attempt.JobAttempt`; an exception that escapes even that is
logged and the runner goes on with the next job.

A clean stop (:meth:`JobRunner.shutdown`) starts no new job and lets the running one finish
within a grace period, then cancels it and puts it back in line for the next start.
Handlers reach the runner through :class:`~.context.RunnerControls` only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ..jobs import QUEUED, RUNNING, Job, JobQueue
from .attempt import JobAttempt, JobView, Tools
from .config import BotConfig
from .context import QueueStatus, UserJob
from .eta import Running, estimate_seconds, seconds_until_done
from .link import TelegramLink
from .prefs import Prefs
from .progress import StatusEditor, format_eta
from .stores import AsyncJobQueue, AsyncPrefs
from .telegram import send_text
from .telethon_api import TelegramClient
from .upscaling import Core
from .waiting import until

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)

CLAIM_RETRY_S = 5.0  # the queue file could not be read: try again after this


class JobRunner:
    """Runs queued jobs through ``core.upscale`` and replies through the attached client.

    ``queue`` and ``prefs`` are the blocking stores (for start-up code and tests); the runner
    itself reaches them through their non-blocking facades.
    """

    def __init__(
        self, config: BotConfig, queue: AsyncJobQueue, prefs: AsyncPrefs, core: Core
    ) -> None:
        self.config = config
        self._queue = queue
        self._prefs = prefs
        self.device_name = core.device_name
        self._stop = asyncio.Event()  # start no new job
        self._stop_now = asyncio.Event()  # abandon the running job's waits too
        self._wake = asyncio.Event()
        self.link = TelegramLink(self._stop_now)
        self.editor = StatusEditor(self.link.edit, interval=config.progress_interval)
        self._tools = Tools(config, queue, prefs, self.link, self.editor, core)
        self.current: JobView | None = None
        self._messages: dict[int, Any] = {}  # job id -> Message from the live update
        self._task: asyncio.Task[None] | None = None

    @property
    def queue(self) -> JobQueue:
        return self._queue.blocking

    @property
    def prefs(self) -> Prefs:
        return self._prefs.blocking

    # -- connection -----------------------------------------------------------------------
    def attach(self, client: TelegramClient) -> None:
        """A connected, authorised client: jobs may run."""
        self.link.attach(client)
        self.wake()

    def detach(self) -> None:
        """The connection is gone: no job starts, Telegram calls wait until :meth:`attach`."""
        self.link.detach()

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` was called: no new job starts."""
        return self._stop.is_set()

    def wake(self) -> None:
        """Tell the runner there may be work (a new job, a reconnect)."""
        self._wake.set()

    # -- controls for handlers (RunnerControls) -------------------------------------------
    async def queued_text(self, job: Job) -> str:
        cur = self.current
        running = (
            None if cur is None else Running(cur.job.params, cur.estimate, cur.done, cur.total)
        )
        return await asyncio.to_thread(self._queued_text, job.id, running)

    def _queued_text(self, job_id: int, running: Running | None) -> str:  # in a thread
        queue, prefs, device = self._queue.blocking, self._prefs.blocking, self.config.device

        def estimate(params: Mapping[str, Any]) -> float | None:
            return estimate_seconds(params, prefs.speed(params.get("model", ""), device))

        pos = queue.position(job_id)
        place = f"#{pos} in line" if pos is not None else "in line"
        eta = seconds_until_done(job_id, queue.line(), running, estimate)
        return f"queued ({place}, {format_eta(eta)})"

    async def enqueue(self, job: Job, *, message: Any, status_message_id: int | None) -> None:
        if status_message_id is not None:
            await self._queue.set_status_message(job.id, status_message_id)
            self.editor.note_sent(job.chat_id)
        self._messages[job.id] = message
        self.wake()

    async def cancel(self, user_id: int) -> int:
        jobs = await self._queue.cancel_for_user(user_id)
        for job in jobs:
            self._messages.pop(job.id, None)
            cur = self.current
            if job.state == RUNNING:
                if cur is not None and cur.job.user_id == user_id:
                    cur.cancel.set()
            elif job.status_message_id is not None:
                self.editor.show(job.chat_id, job.chat_address, job.status_message_id, "cancelled")
        return len(jobs)

    async def status(self, user_id: int) -> QueueStatus:
        counts = await self._queue.counts()
        mine = await self._queue.jobs_for_user(user_id, (QUEUED, RUNNING))
        lines: list[UserJob] = []
        for job in mine:
            name = job.params.get("file_name", "image")
            if job.state == RUNNING:
                cur = self.current
                known = cur is not None and cur.job.id == job.id and cur.total
                percent = 100 * cur.done // cur.total if known and cur else None
                lines.append(UserJob(name, running=True, percent=percent))
            else:
                position = await self._queue.position(job.id)
                lines.append(UserJob(name, running=False, position=position))
        return QueueStatus(
            device=self.device_name,
            waiting=counts[QUEUED],
            running=counts[RUNNING],
            stopping=self.stopping,
            jobs=tuple(lines),
        )

    # -- the loop -------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Start the runner task (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="job-runner")
        return self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            if not self.link.connected:
                await until(self.link.wait_connected(), self._stop)
                continue
            self._wake.clear()  # before claiming: a job added meanwhile wakes the next wait
            try:
                job = await self._queue.claim()
            except Exception:
                log.exception("could not take the next job from the queue")
                await until(asyncio.sleep(CLAIM_RETRY_S), self._stop)
                continue
            if job is None:
                await until(self._wake.wait(), self._stop)
                continue
            try:
                await self._process(job)
            except Exception:  # never let one job stop the runner
                log.exception("job %s: unexpected error in the runner", job.id)

    async def _process(self, job: Job) -> None:
        speed = await self._prefs.speed(job.params.get("model", ""), self.config.device)
        view = JobView(job, estimate=estimate_seconds(job.params, speed))
        attempt = JobAttempt(
            self._tools,
            view,
            message=self._messages.pop(job.id, None),
            device_name=self.device_name,
        )
        self.current = view
        log.info("job %s: start (attempt %s, user %s)", job.id, job.attempts, job.user_id)
        try:
            result = await attempt.produce()
        finally:
            self.current = None
        if result is None:
            return
        if result.device:
            self.device_name = result.device
        await attempt.deliver(result)

    async def shutdown(self, grace: float) -> None:
        """Start no new job; give the running one ``grace`` seconds, then cancel and requeue it."""
        self._stop.set()
        self._wake.set()
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if done:
            return
        cur = self.current
        if cur is not None:
            log.info("job %s did not finish within %.0f s; it goes back in line", cur.job.id, grace)
            cur.stopping = True
            cur.cancel.set()
        self._stop_now.set()
        done, _ = await asyncio.wait({task}, timeout=15)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=5)

    # -- start-up ---------------------------------------------------------------------------
    async def notify_failed(self, jobs: list[Job]) -> None:
        """Tell users about jobs that :meth:`JobQueue.recover` failed (once each)."""
        for job in jobs:
            if job.reply_message_id is None:
                await self._tell_failed(job)

    async def _tell_failed(self, job: Job) -> None:
        text = f"Sorry: {job.error or 'the job failed'}."
        reply_id = await self.link.call(
            "send reply",
            lambda c: send_text(
                c,
                job.chat_address,
                text,
                random_id=job.reply_random_id,
                reply_to=job.request_message_id,
            ),
        )
        if reply_id is not None:
            await self._queue.record_reply(job.id, reply_id)
