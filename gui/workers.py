"""Upscale jobs off the UI thread: one QThread per device, each driving one core ``Worker``.

A runner reports through Qt signals only and ends every job with exactly one of returned /
errored / cancelled followed by ``finished``, so no view waits forever and a batch always
reaches its end. No ncnn call happens in this process: jobs go through
:class:`upscaler_edge.worker.Worker` (a supervised child process, so a Vulkan driver crash
fails one item instead of the window).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

if TYPE_CHECKING:
    from upscaler_edge.options import Options
    from upscaler_edge.pipeline import UpscaleResult
    from upscaler_edge.video import VideoOptions, VideoProgress

__all__ = ["Job", "JobRunner", "RunnerHost", "WorkerLike", "one_line"]

log = logging.getLogger(__name__)


def one_line(text: str) -> str:
    """``text`` as a single line: its non-blank lines joined with spaces."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


class WorkerLike(Protocol):
    """What :class:`JobRunner` needs of :class:`upscaler_edge.worker.Worker`."""

    def run(
        self,
        src: Path,
        dst: Path,
        options: Options | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: float | None = None,
    ) -> UpscaleResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Job:
    """One upscale: ``src`` to ``dst`` with ``options``; set ``cancel`` to stop between tiles."""

    item_id: int
    src: Path
    dst: Path
    options: Options
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)
    #: a video: ``upscale_video`` (frames, resumable segments) instead of one image
    video: bool = False
    #: the video's encoder and segment settings (None: the library's defaults)
    video_options: VideoOptions | None = None


class JobRunner(QObject):
    """Runs jobs one at a time on the thread it lives on, through one ``Worker``.

    Signals carry the queue item id. For every job exactly one of ``returned`` (the core's
    ``UpscaleResult``), ``errored`` (a one-line reason) or ``cancelled`` is emitted, then
    ``finished``. ``progress`` is (item id, tiles done, tiles total), throttled to whole percent.
    Any exception other than the core's own becomes ``errored("internal error: ...")`` with its
    traceback in the log.
    """

    started = Signal(int)
    progress = Signal(int, int, int)
    video_progress = Signal(int, object)  # item id, VideoProgress
    returned = Signal(int, object)
    errored = Signal(int, str)
    cancelled = Signal(int)
    finished = Signal(int)

    def __init__(self, worker_factory: Callable[[], WorkerLike]) -> None:
        super().__init__()
        self._worker_factory = worker_factory
        self._worker: WorkerLike | None = None
        self._lock = threading.Lock()

    @Slot(object)
    def run(self, job: Job) -> None:
        """Run one job to completion (blocking this thread; never the UI thread)."""
        from upscaler_edge.errors import Cancelled, UpscalerError

        self.started.emit(job.item_id)
        last_pct = -1

        def on_progress(done: int, total: int) -> None:
            nonlocal last_pct
            pct = int(100 * done / total) if total > 0 else 0
            if pct != last_pct:
                last_pct = pct
                self.progress.emit(job.item_id, done, total)

        try:
            if job.cancel.is_set():
                raise Cancelled("cancelled before it started")
            with self._lock:
                if self._worker is None:
                    self._worker = self._worker_factory()
                worker = self._worker
            if job.video:
                result = self._run_video(job, worker)
            else:
                result = worker.run(
                    job.src, job.dst, job.options, progress=on_progress, cancel=job.cancel
                )
        except Cancelled:
            log.info("cancelled: %s", job.src)
            self.cancelled.emit(job.item_id)
        except UpscalerError as exc:
            log.warning("failed: %s: %s", job.src, exc)
            self.errored.emit(job.item_id, one_line(str(exc)) or type(exc).__name__)
        except Exception as exc:  # a bug costs this file, not the batch
            log.exception("internal error upscaling %s", job.src)
            self.errored.emit(
                job.item_id, f"internal error: {one_line(str(exc)) or type(exc).__name__}"
            )
        else:
            self.returned.emit(job.item_id, result)
        finally:
            self.finished.emit(job.item_id)

    def _run_video(self, job: Job, worker: WorkerLike) -> object:
        """A video job: through the worker's ``run_video`` where it has one, else
        ``upscale_video`` on this thread. Progress reaches ``video_progress`` at most every
        0.1 s (and at every change of phase)."""
        last: list[float | str] = [0.0, ""]

        def on_progress(p: VideoProgress) -> None:
            now = time.monotonic()
            if p.phase != last[1] or now - float(last[0]) >= 0.1:
                last[0], last[1] = now, p.phase
                self.video_progress.emit(job.item_id, p)

        run_video = getattr(worker, "run_video", None)
        if run_video is not None and job.video_options is None:
            from upscaler_edge.video import VideoProgress

            started = time.monotonic()

            def from_worker(done: int, total: int) -> None:  # the child sends frame counts
                elapsed = time.monotonic() - started
                fps = done / elapsed if elapsed > 0 else 0.0
                eta = (total - done) / fps if fps > 0 and total else None
                on_progress(VideoProgress(done, total or None, fps, eta, elapsed))

            return run_video(job.src, job.dst, job.options, progress=from_worker, cancel=job.cancel)
        from upscaler_edge.video import upscale_video

        return upscale_video(
            job.src,
            job.dst,
            job.options,
            job.video_options,
            progress=on_progress,
            cancel=job.cancel,
        )

    def close_worker(self) -> None:
        """Stop the child process (safe from any thread once no job is running)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            try:
                worker.close()
            except Exception:
                log.exception("closing the worker failed")


class RunnerHost(QObject):
    """Owns one :class:`JobRunner` and the QThread it runs on (one per device)."""

    _submit = Signal(object)

    def __init__(self, device: str, worker_factory: Callable[[], WorkerLike]) -> None:
        super().__init__()
        self.device = device
        self._thread = QThread()
        self._thread.setObjectName(f"upscale-{device}")
        self.runner = JobRunner(worker_factory)
        self.runner.moveToThread(self._thread)
        self._submit.connect(self.runner.run, Qt.ConnectionType.QueuedConnection)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job`` on the runner's thread; returns at once."""
        self._submit.emit(job)

    def is_busy(self) -> bool:
        """True while the runner's thread is still running (until :meth:`shutdown` ends it)."""
        return self._thread.isRunning()

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Stop the thread (after its current job) and the worker process."""
        self._thread.quit()
        if not self._thread.wait(wait_ms):
            # a job is still blocked in the child: killing the child ends run() with JobFailed
            log.warning("upscale thread %s still busy; stopping its worker", self.device)
            self.runner.close_worker()
            self._thread.wait(wait_ms)
        self.runner.close_worker()
