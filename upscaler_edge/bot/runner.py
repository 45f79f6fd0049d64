"""The job runner: takes jobs from the durable queue and answers each once.

Jobs run one at a time, or as many at once as the core has worker processes (``Core.slots``:
one per device of ``device = "0,1"``), each claimed when a worker is free.

:class:`JobRunner` outlives any one Telegram connection: the connection loop (``app.py``)
attaches a connected client and detaches it when the connection drops; the runner only starts
a job while one is attached, and each job's Telegram calls wait out drops (:mod:`.link`).

Each turn of the loop first sends what is ready (:mod:`.delivery`: a single result at once, an
album once none of its files is still queued or running), then claims the next job. The files
of an album are taken, and sent back, only once no more of it arrived for
:data:`ALBUM_SETTLE_S` (Telegram delivers an album as separate messages, caption on one).
Each claimed job is one :class:`~.attempt.JobAttempt`, whose result makes the job ``ready``;
an exception that escapes even that is logged and the runner goes on with the next job.

A clean stop (:meth:`JobRunner.shutdown`) starts no new job and lets the running one finish
within a grace period, then cancels it and puts it back in line for the next start.
Handlers reach the runner through :class:`~.context.RunnerControls` only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from ..jobs import QUEUED, READY, RUNNING, Job, JobQueue
from .attempt import JobAttempt, JobView
from .config import BotConfig
from .context import ClusterWorker, QueueStatus, UserJob
from .delivery import deliver
from .endings import Tools, end_cancelled, job_translator
from .eta import Running, estimate_seconds, seconds_until_done
from .i18n import Translator
from .link import TelegramLink
from .prefs import Prefs
from .progress import StatusEditor
from .stores import AsyncJobQueue, AsyncPrefs
from .telegram import send_text
from .telethon_api import TelegramClient
from .upscaling import Core
from .waiting import until

__all__ = ["ALBUM_SETTLE_S", "JobRunner"]

log = logging.getLogger(__name__)

CLAIM_RETRY_S = 5.0  # the queue file could not be read: try again after this
ALBUM_SETTLE_S = 1.5  # seconds an album must stop growing before it is started and sent


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
        self._cluster_workers = core.workers
        self._slots = max(1, core.slots)
        self._jobs: dict[asyncio.Task[None], int] = {}  # running job tasks -> job id
        self._stop = asyncio.Event()  # start no new job
        self._stop_now = asyncio.Event()  # abandon the running job's waits too
        self._wake = asyncio.Event()
        self.link = TelegramLink(self._stop_now)
        self.editor = StatusEditor(self.link.edit, interval=config.progress_interval)
        self._tools = Tools(config, queue, prefs, self.link, self.editor, core)
        self.running: dict[int, JobView] = {}  # job id -> view, in start order
        self._messages: dict[int, Any] = {}  # job id -> Message from the live update
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> JobView | None:
        """The running job that started first (None: idle)."""
        return next(iter(self.running.values()), None)

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
    async def queued_text(
        self, job: Job, tr: Translator, *, count: int = 1, first: Job | None = None
    ) -> str:
        cur = self.current
        running = (
            None if cur is None else Running(cur.job.params, cur.estimate, cur.done, cur.total)
        )
        first_id = (first or job).id
        pos, eta = await asyncio.to_thread(self._place, first_id, job.id, running)
        if eta is not None:  # several devices (or cluster workers) work through it side by side
            eta /= await self._side_by_side()
        if count > 1:
            text = tr.ngettext(
                "Album of {n} file queued: #{pos} in line",
                "Album of {n} files queued: #{pos} in line",
                count,
                pos=pos or 1,
            )
        elif pos is not None:
            text = tr.gettext("Queued: #{pos} in line", pos=pos)
        else:
            text = tr.gettext("Queued")
        if eta is not None:
            text += tr.gettext(", ready in about {time}", time=tr.duration(eta))
        return text + "."

    async def _side_by_side(self) -> int:
        """How many jobs really run at once: the slots, or fewer cluster workers."""
        if self._cluster_workers is None:
            return self._slots
        try:
            workers = len(await asyncio.to_thread(self._cluster_workers))
        except Exception:  # the coordinator is away just now: no better guess
            return 1
        return max(1, min(self._slots, workers))

    def _place(
        self, first_id: int, last_id: int, running: Running | None
    ) -> tuple[int | None, float | None]:  # in a thread
        queue, prefs, device = self._queue.blocking, self._prefs.blocking, self.config.device

        def estimate(params: Mapping[str, Any]) -> float | None:
            return estimate_seconds(params, prefs.speed(params.get("model", ""), device))

        return queue.position(first_id), seconds_until_done(
            last_id, queue.line(), running, estimate
        )

    async def enqueue(self, job: Job, *, message: Any, status_message_id: int | None) -> None:
        if status_message_id is not None:
            await self._queue.set_status_message(job.id, status_message_id)
            self.editor.note_sent(job.chat_id)
        self._messages[job.id] = message
        self.wake()

    def show_status(self, job: Job, text: str, *, status_message_id: int) -> None:
        self.editor.show(job.chat_id, job.chat_address, status_message_id, text)

    async def cancel(self, user_id: int) -> int:
        jobs = await self._queue.cancel_for_user(user_id)
        for job in jobs:
            self._messages.pop(job.id, None)
            cur = self.running.get(job.id)
            if job.state == RUNNING:
                if cur is not None:
                    cur.cancel.set()
            elif job.status_message_id is not None:
                text = job_translator(job).gettext("Cancelled.")
                self.editor.show(job.chat_id, job.chat_address, job.status_message_id, text)
        return len(jobs)

    async def status(self, user_id: int) -> QueueStatus:
        counts = await self._queue.counts()
        mine = await self._queue.jobs_for_user(user_id, (QUEUED, RUNNING, READY))
        lines: list[UserJob] = []
        for job in mine:
            name = job.params.get("file_name", "image")
            if job.state == READY:
                lines.append(UserJob(name, running=False, ready=True))
            elif job.state == RUNNING:
                cur = self.running.get(job.id)
                known = cur is not None and cur.total
                percent = 100 * cur.done // cur.total if known and cur else None
                lines.append(UserJob(name, running=True, percent=percent))
            else:
                position = await self._queue.position(job.id)
                lines.append(UserJob(name, running=False, position=position))
        workers: tuple[ClusterWorker, ...] | None = None
        if self._cluster_workers is not None:
            try:
                workers = tuple(await asyncio.to_thread(self._cluster_workers))
            except Exception as exc:  # the coordinator is away just now: say so, go on
                log.warning("could not list the cluster's workers: %s", exc)
        return QueueStatus(
            device=self.device_name,
            waiting=counts[QUEUED],
            running=counts[RUNNING],
            stopping=self.stopping,
            jobs=tuple(lines),
            cluster=self._cluster_workers is not None,
            workers=workers,
        )

    # -- the loop -------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Start the runner task (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="job-runner")
        return self._task

    async def _run(self) -> None:
        try:
            await self._claim_loop()
        finally:
            if self._jobs:  # stopping: the running jobs finish (or are cancelled) first
                await asyncio.wait(set(self._jobs))

    async def _claim_loop(self) -> None:
        while not self._stop.is_set():
            if not self.link.connected:
                await until(self.link.wait_connected(), self._stop)
                continue
            self._wake.clear()  # before claiming: a job added meanwhile wakes the next wait
            try:
                settle_at = await self._deliver_ready()
                settled_before = time.time() - ALBUM_SETTLE_S
                full = len(self._jobs) >= self._slots  # a job's end wakes this loop
                busy = self._stop.is_set() or full
                job = None if busy else await self._queue.claim(settled_before)
                if job is None:
                    growing = await self._queue.growing_album(settled_before)
                    if growing is not None:
                        settle_at = min(settle_at or math.inf, growing + ALBUM_SETTLE_S)
            except Exception:
                log.exception("could not take the next job from the queue")
                await until(asyncio.sleep(CLAIM_RETRY_S), self._stop)
                continue
            if job is None:
                timeout = None if settle_at is None else max(0.05, settle_at - time.time())
                await until(self._wake.wait(), self._stop, timeout=timeout)
                continue
            task = asyncio.get_running_loop().create_task(
                self._process_safely(job), name=f"job-{job.id}"
            )
            self._jobs[task] = job.id
            task.add_done_callback(self._job_ended)

    def _job_ended(self, task: asyncio.Task[None]) -> None:
        self._jobs.pop(task, None)
        self._wake.set()  # a worker is free: claim the next job

    async def _process_safely(self, job: Job) -> None:
        try:
            await self._process(job)
        except Exception:  # never let one job stop the runner
            log.exception("job %s: unexpected error in the runner", job.id)

    async def _deliver_ready(self) -> float | None:
        """Send every result that may go now; returns when an album waiting for more of its
        files may go (Unix time), or None."""
        groups, newest = await self._queue.deliverable(time.time() - ALBUM_SETTLE_S)
        for group in groups:
            if self._stop_now.is_set():
                break
            try:
                await deliver(self._tools, group)
            except Exception:  # never let one reply stop the runner
                log.exception("jobs %s: unexpected error while sending", [j.id for j in group])
        return None if newest is None else newest + ALBUM_SETTLE_S

    async def _process(self, job: Job) -> None:
        speed = await self._prefs.speed(job.params.get("model", ""), self.config.device)
        view = JobView(job, estimate=estimate_seconds(job.params, speed))
        attempt = JobAttempt(
            self._tools,
            view,
            message=self._messages.pop(job.id, None),
            device_name=self.device_name,
        )
        self.running[job.id] = view
        log.info("job %s: start (attempt %s, user %s)", job.id, job.attempts, job.user_id)
        try:
            result = await attempt.produce()
        finally:
            self.running.pop(job.id, None)
        if result is None:
            return
        if result.device and self._slots == 1:  # with several devices, the core's name
            self.device_name = result.device
        if not await self._queue.mark_ready(job.id):  # cancelled while it ran: drop it
            await end_cancelled(self._tools, await self._queue.get(job.id) or job)

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
        for cur in list(self.running.values()):
            log.info("job %s did not finish within %.0f s; it goes back in line", cur.job.id, grace)
            cur.stopping = True
            cur.cancel.set()
        self._stop_now.set()
        done, _ = await asyncio.wait({task}, timeout=15)
        if not done:
            for job_task in list(self._jobs):
                job_task.cancel()
            task.cancel()
            await asyncio.wait({task}, timeout=5)

    # -- start-up ---------------------------------------------------------------------------
    async def notify_failed(self, jobs: list[Job]) -> None:
        """Tell users about jobs that :meth:`JobQueue.recover` failed (once each)."""
        for job in jobs:
            if job.reply_message_id is None:
                await self._tell_failed(job)

    async def _tell_failed(self, job: Job) -> None:
        tr = job_translator(job)
        text = tr.ngettext(
            "Sorry: this picture stopped the bot {n} time, so I gave up on it.",
            "Sorry: this picture stopped the bot {n} times, so I gave up on it.",
            job.attempts,
        )
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
