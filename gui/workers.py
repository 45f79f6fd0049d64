"""Everything that runs off the UI thread: upscale jobs, thumbnails, image loads, device probe.

Each worker reports through Qt signals only and always ends a piece of work with exactly one of
returned / errored / cancelled followed by ``finished``, so no view waits forever. No ncnn call
happens in this process: jobs go through :class:`upscaler_edge.worker.Worker` (a supervised child
process, so a Vulkan driver crash fails one item instead of the window) and the device list comes
from a short-lived child process.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import (
    QObject,
    QProcess,
    QRunnable,
    QSize,
    Qt,
    QThread,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QImage, QImageReader

if TYPE_CHECKING:
    from upscaler_edge.options import Options

__all__ = [
    "DeviceChoice",
    "DeviceProbe",
    "Job",
    "JobRunner",
    "PairLoader",
    "RunnerHost",
    "ThumbnailLoader",
    "WorkerLike",
    "auto_choice",
    "parse_devices",
]

log = logging.getLogger(__name__)

THUMB_SIZE = 112
PREVIEW_MAX_SIDE = 2400


class WorkerLike(Protocol):
    """What :class:`JobRunner` needs of :class:`upscaler_edge.worker.Worker`."""

    def run(
        self,
        src: Path,
        dst: Path,
        options: Options | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Any = None,
        timeout: float | None = None,
    ) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Job:
    """One upscale: ``src`` to ``dst`` with ``options``; set ``cancel`` to stop between tiles."""

    item_id: int
    src: Path
    dst: Path
    options: Options
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


class JobRunner(QObject):
    """Runs jobs one at a time on the thread it lives on, through one ``Worker``.

    Signals carry the queue item id. For every job exactly one of ``returned`` (the core's
    ``UpscaleResult``), ``errored`` (a one-line reason) or ``cancelled`` is emitted, then
    ``finished``. ``progress`` is (item id, tiles done, tiles total), throttled to whole percent.
    """

    started = Signal(int)
    progress = Signal(int, int, int)
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
            result = worker.run(
                job.src, job.dst, job.options, progress=on_progress, cancel=job.cancel
            )
        except Cancelled:
            log.info("cancelled: %s", job.src)
            self.cancelled.emit(job.item_id)
        except UpscalerError as exc:
            log.warning("failed: %s: %s", job.src, exc)
            self.errored.emit(job.item_id, str(exc) or type(exc).__name__)
        except Exception as exc:
            log.exception("unexpected error upscaling %s", job.src)
            self.errored.emit(job.item_id, f"unexpected error: {exc}")
        else:
            self.returned.emit(job.item_id, result)
        finally:
            self.finished.emit(job.item_id)

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
        self.thread = QThread()
        self.thread.setObjectName(f"upscale-{device}")
        self.runner = JobRunner(worker_factory)
        self.runner.moveToThread(self.thread)
        self._submit.connect(self.runner.run, Qt.ConnectionType.QueuedConnection)
        self.thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job`` on the runner's thread; returns at once."""
        self._submit.emit(job)

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Stop the thread (after its current job) and the worker process."""
        self.thread.quit()
        if not self.thread.wait(wait_ms):
            # a job is still blocked in the child: killing the child ends run() with JobFailed
            log.warning("upscale thread %s still busy; stopping its worker", self.device)
            self.runner.close_worker()
            self.thread.wait(wait_ms)
        self.runner.close_worker()


# --- thumbnails and images ---------------------------------------------------------------


class _Signals(QObject):
    """Signals for a QRunnable (which is not a QObject)."""

    thumbnail = Signal(int, object, object)  # item id, QSize | None, QImage | None
    pair = Signal(int, object)  # request id, LoadedPair | None (None: unreadable)


def _read_image(path: Path, max_side: int | None = None) -> QImage:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    if max_side is not None:
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > max_side:
            reader.setScaledSize(
                size.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio)
            )
    image = reader.read()
    if image.isNull():
        log.debug("Qt cannot read %s: %s", path, reader.errorString())
    return image


class _ThumbnailTask(QRunnable):
    def __init__(self, item_id: int, path: Path, signals: _Signals) -> None:
        super().__init__()
        self._id, self._path, self._signals = item_id, path, signals

    def run(self) -> None:
        size: QSize | None = None
        image: QImage | None = None
        try:
            reader = QImageReader(str(self._path))
            reader.setAutoTransform(True)
            raw = reader.size()
            if raw.isValid():
                size = raw
                thumb = _read_image(self._path, THUMB_SIZE * 2)
                if not thumb.isNull():
                    image = thumb.scaled(
                        THUMB_SIZE,
                        THUMB_SIZE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                    # EXIF rotation swaps the header's width and height
                    if (image.width() > image.height()) != (size.width() > size.height()):
                        size = size.transposed()
        except Exception:
            log.exception("thumbnail failed for %s", self._path)
        self._signals.thumbnail.emit(self._id, size, image)


class ThumbnailLoader(QObject):
    """Reads each input's size and a small thumbnail on the global thread pool.

    ``loaded(item_id, QSize | None, QImage | None)``: None where Qt cannot read the file
    (the core may still be able to, e.g. HEIC; it decides whether the item fails).
    """

    loaded = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._signals = _Signals()
        self._signals.thumbnail.connect(self.loaded)

    def request(self, item_id: int, path: Path) -> None:
        """Start loading; ``loaded`` follows on the UI thread."""
        QThreadPool.globalInstance().start(_ThumbnailTask(item_id, path, self._signals))


@dataclass
class LoadedPair:
    """Before and after images for the compare view, with display-sized previews."""

    before: QImage
    after: QImage
    before_preview: QImage
    after_preview: QImage


class _PairTask(QRunnable):
    def __init__(self, request_id: int, before: Path, after: Path, signals: _Signals) -> None:
        super().__init__()
        self._id, self._before, self._after, self._signals = request_id, before, after, signals

    def run(self) -> None:
        pair: LoadedPair | None = None
        try:
            after = _read_image(self._after)
            before = _read_image(self._before)
            if not after.isNull() and not before.isNull():
                after = after.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
                before = before.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
                preview_size = after.size().scaled(
                    PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio
                )
                if preview_size.width() >= after.width():
                    preview_size = after.size()
                smooth = Qt.TransformationMode.SmoothTransformation
                ignore = Qt.AspectRatioMode.IgnoreAspectRatio
                pair = LoadedPair(
                    before=before,
                    after=after,
                    before_preview=before.scaled(preview_size, ignore, smooth),
                    after_preview=after
                    if preview_size == after.size()
                    else after.scaled(preview_size, ignore, smooth),
                )
        except Exception:
            log.exception("loading %s / %s failed", self._before, self._after)
        self._signals.pair.emit(self._id, pair)


class PairLoader(QObject):
    """Loads a before/after pair off the UI thread; only the latest request is delivered.

    ``loaded(request_id, LoadedPair | None)``.
    """

    loaded = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._signals = _Signals()
        self._signals.pair.connect(self._on_pair)
        self._latest = 0

    def request(self, before: Path, after: Path) -> int:
        """Start loading; returns the request id that ``loaded`` will carry."""
        self._latest += 1
        QThreadPool.globalInstance().start(_PairTask(self._latest, before, after, self._signals))
        return self._latest

    @Slot(int, object)
    def _on_pair(self, request_id: int, pair: object) -> None:
        if request_id == self._latest:
            self.loaded.emit(request_id, pair)


# --- devices -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceChoice:
    """One entry of the device picker: ``value`` is what ``Options.device`` takes."""

    value: str
    label: str
    kind: str = ""


_PROBE_CODE = """
import json
from upscaler_edge.engine import list_devices
print(json.dumps([[d.index, d.name, d.kind] for d in list_devices()]))
"""


def parse_devices(text: str) -> list[DeviceChoice]:
    """Picker entries from the probe's JSON (``[[index, name, kind], ...]``), "auto" first."""
    choices = [DeviceChoice("auto", "Auto (best available)", "auto")]
    for index, name, kind in json.loads(text.strip().splitlines()[-1]):
        if int(index) < 0 or kind == "cpu":
            label = name if str(name).upper().startswith("CPU") else f"CPU ({name})"
            choices.append(DeviceChoice("cpu", label, "cpu"))
        else:
            slow = ", slow" if kind == "software" else ""
            choices.append(DeviceChoice(str(index), f"GPU {index}: {name} ({kind}{slow})", kind))
    if not any(c.value == "cpu" for c in choices):
        choices.append(DeviceChoice("cpu", "CPU", "cpu"))
    return choices


def auto_choice(choices: list[DeviceChoice]) -> DeviceChoice | None:
    """What "auto" runs on, by the engine's rule: discrete, integrated, another hardware GPU
    (never a software one), else the CPU."""
    for kinds in (("discrete",), ("integrated",), ("virtual", "")):
        for c in choices:
            if c.value not in ("auto", "cpu") and c.kind in kinds:
                return c
    return next((c for c in choices if c.value == "cpu"), None)


class DeviceProbe(QObject):
    """Lists compute devices in a child process, so a broken Vulkan driver cannot take the
    window down and ncnn never loads into the UI process. ``ready(list[DeviceChoice])`` always
    fires (just auto + CPU when the probe fails)."""

    ready = Signal(list)

    def __init__(self, parent: QObject | None = None, timeout_ms: int = 30_000) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._timeout_ms = timeout_ms
        self._started = 0.0

    def start(self) -> None:
        """Start the probe; returns at once."""
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(["-c", _PROBE_CODE])
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self._process = proc
        self._started = time.monotonic()
        proc.start()
        QTimer.singleShot(self._timeout_ms, self._on_timeout)

    def _on_timeout(self) -> None:
        if self._process is not None:
            log.warning("device probe still running after %d ms; killing it", self._timeout_ms)
            self._process.kill()  # finished() follows and reports the fallback list

    def _fallback(self) -> list[DeviceChoice]:
        return [
            DeviceChoice("auto", "Auto (best available)", "auto"),
            DeviceChoice("cpu", "CPU", "cpu"),
        ]

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        proc = self._process
        if proc is None:
            return
        self._process = None
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace")
        proc.deleteLater()
        choices = self._fallback()
        if code == 0 and status == QProcess.ExitStatus.NormalExit:
            try:
                choices = parse_devices(out)
            except (ValueError, TypeError, IndexError):
                log.warning("device probe printed something unexpected: %r", out[-200:])
        else:
            log.warning("device probe failed (exit %s): %s", code, err.strip()[-500:])
        log.info(
            "devices (%.1f s): %s", time.monotonic() - self._started, [c.label for c in choices]
        )
        self.ready.emit(choices)

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            log.warning("cannot start the device probe: %s", self._process.errorString())
            self._process.deleteLater()
            self._process = None
            self.ready.emit(self._fallback())

    def stop(self) -> None:
        """Kill a probe still running (at exit)."""
        if self._process is not None:
            proc, self._process = self._process, None
            proc.kill()
            proc.waitForFinished(1000)
