"""A supervised child process that owns the engine and runs file-to-file jobs.

Vulkan driver faults can kill a whole process (ncnn issues 5741, 5478, 4237). The GUI and the
bot therefore never call ncnn themselves: a spawned child does, and the parent only waits on a
pipe. If the child dies (signal, exit code) or runs past the job's timeout, the parent says
which, removes any temporary file the child left, and starts a fresh child for the next job.
It never hangs: every wait has a deadline or watches the child's liveness.

Messages (tuples over a multiprocessing Pipe):
  parent -> child: ("job", id, src, dst, Options) | ("video", id, src, dst, Options,
                   VideoOptions) | ("segment", id, src, dst, Options, SegmentPlan, index)
                   | ("cancel", id) | ("stop",)
  child -> parent: ("progress", id, done, total) | ("done", id, UpscaleResult | VideoResult
                   | segment metadata dict) | ("error", id, error class name, message)
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import Cancelled, JobFailed, UpscalerError
from .imageio import remove_leftovers
from .options import Options
from .pipeline import CancelToken, Progress, UpscaleResult

if TYPE_CHECKING:  # the video package loads PyAV lazily; the worker imports it only for jobs
    from .video import VideoOptions, VideoResult
    from .video.distributed import SegmentPlan

__all__ = ["TileHook", "Worker", "serve"]

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 10.0  # a cancelled job that does not stop by then is killed
_POLL_S = 0.05


#: Called in the child after each tile: (source path, tiles done, tiles total); for a video
#: job after each frame (frames done, frames total or 0).
TileHook = Callable[[str, int, int], None]


def serve(conn: Connection, log_level: int, on_tile: TileHook | None = None) -> None:
    """The child's loop: run each job it is sent, answer with its result or error.

    The default child entry point; a test may start a child whose entry point calls this
    with ``on_tile`` (to crash or hang at a chosen moment): see ``Worker(child_entry=...)``.
    """
    logging.basicConfig(level=log_level, format="worker %(levelname)s %(name)s: %(message)s")
    from .pipeline import Upscaler

    jobs: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    cancel = threading.Event()
    current: list[int | None] = [None]

    def reader() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the parent is gone: nothing left to serve
                os._exit(0)
            if msg[0] == "cancel":
                if msg[1] == current[0]:
                    cancel.set()
            elif msg[0] in ("job", "video", "segment"):
                jobs.put(msg)
            else:
                jobs.put(None)
                return

    threading.Thread(target=reader, daemon=True, name="worker-reader").start()
    up = Upscaler()
    try:
        while (msg := jobs.get()) is not None:
            kind, job_id, src, dst, options = msg[:5]
            cancel.clear()
            current[0] = job_id

            def progress(done: int, total: int, job_id: int = job_id, src: str = src) -> None:
                conn.send(("progress", job_id, done, total))
                if on_tile is not None:
                    on_tile(src, done, total)

            def frames(p: Any, job_id: int = job_id, src: str = src) -> None:  # VideoProgress
                conn.send(("progress", job_id, p.frames_done, p.frames_total or 0))
                if on_tile is not None:
                    on_tile(src, p.frames_done, p.frames_total or 0)

            try:
                result: Any
                if kind == "video":
                    from .video import upscale_video

                    result = upscale_video(
                        Path(src), Path(dst), options, msg[5], frames, cancel, upscaler=up
                    )
                elif kind == "segment":
                    from .video.distributed import encode_segment

                    result = encode_segment(
                        Path(src),
                        msg[5],
                        msg[6],
                        Path(dst),
                        options,
                        progress=frames,
                        cancel=cancel,
                        upscaler=up,
                    )
                else:
                    result = up.upscale_file(Path(src), Path(dst), options, progress, cancel)
                conn.send(("done", job_id, result))
            except UpscalerError as exc:
                conn.send(("error", job_id, type(exc).__name__, str(exc)))
            except Exception as exc:  # a bug must cost one job, not the worker
                log.exception("unexpected error in job %s", job_id)
                conn.send(("error", job_id, "UpscalerError", f"internal error: {exc}"))
            finally:
                current[0] = None
    finally:
        up.close()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start the child without re-importing the parent's main script.

    ``spawn`` normally runs the parent's ``__main__`` again in the child. The child needs none
    of it (its entry point lives in this module), and it costs: a GUI launched from its console
    script would load Qt into every worker, and a script without an ``if __name__ ==
    "__main__"`` guard would start itself again.
    """
    main = sys.modules.get("__main__")
    saved: dict[str, Any] = {
        k: main.__dict__[k]
        for k in ("__file__", "__spec__")
        if main is not None and k in main.__dict__
    }
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            if "__spec__" in saved:
                main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Worker:
    """Runs jobs in a supervised child process (spawned on first use, replaced after a crash).

    ``run`` blocks and is meant for one thread at a time (the GUI's worker thread, the bot's
    executor). Progress callbacks run in the calling thread.
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        options: Options | None = None,
        child_entry: Callable[[Connection, int], None] = serve,
    ) -> None:
        self.timeout = timeout
        self.options = options or Options()
        self._entry = child_entry
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- child lifetime --------------------------------------------------------------------
    def _ensure_child(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._discard_child()
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=self._entry,
            args=(child, logging.getLogger().getEffectiveLevel()),
            name="upscaler-worker",
            daemon=True,
        )
        with _main_module_hidden():
            proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        log.debug("started worker process %s", proc.pid)

    def _discard_child(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
        if conn is not None:
            conn.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def close(self) -> None:
        with self._lock:
            proc, conn = self._proc, self._conn
            if proc is not None and proc.is_alive() and conn is not None:
                with contextlib.suppress(OSError):
                    conn.send(("stop",))
                proc.join(5)
            self._discard_child()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ------------------------------------------------------------------------------
    def run(
        self,
        src: Path | str,
        dst: Path | str,
        options: Options | None = None,
        *,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        timeout: float | None = None,
    ) -> UpscaleResult:
        """Upscale ``src`` into ``dst`` in the child. Raises what the pipeline raises,
        Cancelled, or JobFailed when the child died or timed out (no output is left then)."""
        opts = options or self.options
        result: UpscaleResult = self._run(
            ("job", str(src), str(dst), opts), Path(dst), progress, cancel, timeout
        )
        return result

    def run_video(
        self,
        src: Path | str,
        dst: Path | str,
        options: Options | None = None,
        video: VideoOptions | None = None,
        *,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        timeout: float | None = None,
    ) -> VideoResult:
        """Upscale the video ``src`` into ``dst`` in the child (``upscale_video``).

        ``progress(frames_done, frames_total)`` (total 0 while unknown). A crash, timeout or
        cancel keeps the finished segments beside ``dst``: the same call again resumes.
        Raises like :meth:`run`."""
        from .video import VideoOptions

        opts = options or self.options
        result: VideoResult = self._run(
            ("video", str(src), str(dst), opts, video or VideoOptions()),
            Path(dst),
            progress,
            cancel,
            timeout,
        )
        return result

    def run_segment(
        self,
        src: Path | str,
        plan_json: dict[str, Any] | SegmentPlan,
        index: int,
        dst: Path | str,
        options: Options | None = None,
        *,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Make segment ``index`` of a video's plan (``SegmentPlan.to_json()``'s dict) into
        ``dst`` in the child (``video.distributed.encode_segment``); returns its metadata.

        ``progress(frames_done, frames_total)`` counts this segment's frames. A malformed
        plan is an InputError before the child sees it. Raises like :meth:`run`; after a
        crash, timeout or cancel nothing is left at ``dst`` or beside it."""
        from .video.distributed import SegmentPlan

        plan = plan_json if isinstance(plan_json, SegmentPlan) else SegmentPlan.from_json(plan_json)
        dst = Path(dst)
        result: dict[str, Any] = self._run(
            ("segment", str(src), str(dst), options or self.options, plan, index),
            dst,
            progress,
            cancel,
            timeout,
            leftovers=(dst.with_name(dst.name + ".tmp"),),
        )
        return result

    def _run(
        self,
        job: tuple[Any, ...],
        dst: Path,
        progress: Progress | None,
        cancel: CancelToken | None,
        timeout: float | None,
        leftovers: tuple[Path, ...] = (),
    ) -> Any:
        limit = timeout if timeout is not None else self.timeout
        with self._lock:
            self._ensure_child()
            assert self._conn is not None and self._proc is not None
            job_id = next(self._ids)
            self._conn.send((job[0], job_id, *job[1:]))
            started = time.monotonic()
            cancel_sent_at: float | None = None
            while True:
                msg = None
                try:
                    if self._conn.poll(_POLL_S):
                        msg = self._conn.recv()
                except (EOFError, OSError):
                    self._proc.join(2)
                if msg is not None and msg[1] == job_id:
                    if msg[0] == "done":
                        return msg[2]
                    if msg[0] == "error":
                        raise errors.error_from(msg[2], msg[3])
                    if progress is not None:
                        progress(msg[2], msg[3])
                elif msg is None and not self._proc.is_alive():
                    reason = _describe_exit(self._proc.exitcode)
                    self._fail(dst, leftovers)
                    raise JobFailed(
                        f"the upscaling process crashed ({reason}); try again or use -d cpu"
                    )
                # checked on every pass, also while progress messages keep coming
                now = time.monotonic()
                if cancel is not None and cancel.is_set():
                    if cancel_sent_at is None:
                        cancel_sent_at = now
                        self._conn.send(("cancel", job_id))
                    elif now - cancel_sent_at > CANCEL_GRACE_S:
                        self._fail(dst, leftovers)
                        raise Cancelled("cancelled")
                if limit is not None and now - started > limit:
                    self._fail(dst, leftovers)
                    raise JobFailed(f"the job ran past its {limit:g} s time limit and was stopped")

    def _fail(self, dst: Path, leftovers: tuple[Path, ...] = ()) -> None:
        """Kill the child and remove the temporary files it may have left beside ``dst``
        (and ``leftovers``, the job's own temporary files)."""
        self._discard_child()
        remove_leftovers({dst, dst.with_suffix(".png")})
        for path in leftovers:
            with contextlib.suppress(OSError):
                path.unlink()
