"""Runs the queue: one item at a time on the runner for the chosen device, to the batch's end.

With "Send to the cluster" on (offered when this PC has a cluster's address), a run sends
every queued item to the cluster at once instead (:class:`~.cluster_run.ClusterBatch`), so
each worker PC takes a share; items added during that run are sent as they come.

Each item takes the panel's settings when it starts (a change applies to the next image), and
every outcome becomes a row state and a status-bar line: success, a failed row with a one-line
reason, or cancelled. Nothing here lets an exception reach Qt's event loop or stop a batch:
whatever goes wrong with one file fails that row and the queue moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from .cluster_run import ClientLike, ClusterBatch
from .main_window import MainWindow
from .outputs import output_path_for, video_output_path_for
from .queue_model import ItemState, QueueItem, QueueModel, format_size, scaled_size
from .settings import GuiSettings
from .video import MISSING_PYAV, progress_text, video_available
from .workers import Job, RunnerHost, WorkerLike, one_line

if TYPE_CHECKING:
    from upscaler_edge.options import Options
    from upscaler_edge.pipeline import UpscaleResult
    from upscaler_edge.video import VideoOptions, VideoProgress

__all__ = ["RunController", "options_for"]

log = logging.getLogger(__name__)


class _CannotStart(Exception):
    """An item that cannot be sent (its reason is the message)."""


def options_for(s: GuiSettings) -> Options:
    """The core's options for one job with the window's settings ``s``."""
    from upscaler_edge.options import Options

    return Options(
        model=s.model,
        scale=s.scale,
        denoise=s.denoise,
        tile=s.tile,
        device=s.device,
        format=s.format,
        quality=s.quality,
        tta=s.tta,
        overwrite=s.overwrite,
    )


class RunController(QObject):
    """Drives the queue of one window.

    Signals: ``item_finished(id)`` after an item ends in any state, ``item_done(id)`` when one
    produced a result, ``queue_idle()`` when a run has nothing left to do.
    """

    item_finished = Signal(int)
    item_done = Signal(int)
    queue_idle = Signal()

    def __init__(
        self,
        window: MainWindow,
        model: QueueModel,
        settings: Callable[[], GuiSettings],
        worker_factory: Callable[[], WorkerLike],
        cluster_factory: Callable[[], ClientLike] | None = None,
    ) -> None:
        super().__init__(window)
        self._window = window
        self._model = model
        self._settings = settings
        self._worker_factory = worker_factory
        self._runners: dict[str, RunnerHost] = {}
        self._current: Job | None = None
        self._running = False
        self._closed = False
        #: videos' encoder and segment settings (None: the library's defaults)
        self.video_options: VideoOptions | None = None
        #: ids of the items this run counts for the overall bar
        self._batch: set[int] = set()
        #: the cluster's side of this window (None: no cluster set up on this PC)
        self._cluster: ClusterBatch | None = None
        #: items sent to the cluster in this run and not finished yet (None: a local run)
        self._sent: dict[int, Job] | None = None
        if cluster_factory is not None:
            self._cluster = c = ClusterBatch(cluster_factory)
            c.progress.connect(self._on_cluster_progress)
            c.returned.connect(self._on_returned)
            c.errored.connect(self._on_errored)
            c.cancelled.connect(self._on_cancelled)
            c.finished.connect(self._on_cluster_finished)
        window.offer_cluster(self._cluster is not None)

        panel = window.panel
        for start in (window.start_action.triggered, panel.start_requested):
            start.connect(self.start)
        for cancel in (window.cancel_action.triggered, panel.cancel_requested):
            cancel.connect(self.cancel_current)
        for cancel_all in (window.cancel_all_action.triggered, panel.cancel_all_requested):
            cancel_all.connect(self.cancel_all)
        model.counts_changed.connect(self.refresh)
        model.item_changed.connect(self._on_item_changed)
        self.refresh()

    # --- asking --------------------------------------------------------------------------

    def is_running(self) -> bool:
        """True while a run is in progress (an item running or about to)."""
        return self._running

    def hosts(self) -> list[RunnerHost]:
        """The runner threads started so far (one per device used)."""
        return list(self._runners.values())

    # --- commands ------------------------------------------------------------------------

    def start(self) -> None:
        """Upscale every queued item, one after another."""
        if self._running or self._model.next_queued() is None:
            return
        self._running = True
        self._batch = {i.id for i in self._model if i.state is ItemState.QUEUED}
        if self._cluster is not None and self._window.cluster_action.isChecked():
            self._sent = {}
            self._send_queued()
            return
        self._dispatch_next()

    def adopt(self, item_ids: Iterable[int]) -> None:
        """Items queued while a run is going join it (and its overall bar)."""
        if self._running:
            self._batch.update(item_ids)
            if self._sent is not None:
                self._send_queued()

    def cancel_current(self) -> None:
        """Stop the running item between tiles; the queue goes on with the next one. (On
        the cluster every item of the run is running at once: all of them stop.)"""
        if self._sent:
            self._cancel_sent()
            return
        if self._current is not None:
            self._current.cancel.set()
            self._window.show_status("Cancelling…")

    def cancel_all(self) -> None:
        """Stop the running item and mark every queued one cancelled ("clear the rest")."""
        for item_id in self._model.cancel_queued():
            self.item_finished.emit(item_id)
        if self._sent:
            self._cancel_sent()
        elif self._current is not None:
            self._current.cancel.set()
            self._window.show_status("Cancelling the current image and the rest…")
        else:
            self._running = False
            self.refresh()

    @property
    def cluster(self) -> ClusterBatch | None:
        """The cluster's side of this window (None: no cluster set up on this PC)."""
        return self._cluster

    def shutdown(self) -> None:
        """Cancel everything and stop every runner thread and worker process (idempotent)."""
        self._closed = True
        self._model.cancel_queued()
        if self._current is not None:
            self._current.cancel.set()
        for host in self._runners.values():
            host.shutdown()
        self._runners.clear()
        if self._cluster is not None:
            self._cluster.shutdown()

    # --- dispatch ------------------------------------------------------------------------

    def _runner(self, device: str) -> RunnerHost:
        host = self._runners.get(device)
        if host is None:
            host = RunnerHost(device, self._worker_factory)
            r = host.runner
            r.progress.connect(self._on_progress)
            r.video_progress.connect(self._on_video_progress)
            r.returned.connect(self._on_returned)
            r.errored.connect(self._on_errored)
            r.cancelled.connect(self._on_cancelled)
            r.finished.connect(self._on_finished)
            self._runners[device] = host
        return host

    def _dispatch_next(self) -> None:
        """Submit the next queued item; an item that cannot even start fails on its row and
        the next one is tried (a loop, so a long run of bad items cannot recurse deep)."""
        from upscaler_edge.errors import UpscalerError

        while self._current is None and not self._closed:
            item = self._model.next_queued() if self._running else None
            if item is None:
                self._end_run()
                return
            s = self._settings()
            try:
                if item.is_video:
                    if not video_available():
                        self._fail_to_start(item, MISSING_PYAV)
                        continue
                    dst = video_output_path_for(item.src, s)
                else:
                    dst = output_path_for(item.src, s)
                job = Job(
                    item.id,
                    item.src,
                    dst,
                    options_for(s),
                    video=item.is_video,
                    video_options=self.video_options if item.is_video else None,
                )
                self._current = job
                self._model.update(
                    item.id,
                    state=ItemState.RUNNING,
                    progress=0.0,
                    error=None,
                    detail=None,
                    model=s.model,
                    scale=s.scale,
                    device=s.device,
                    out_size=scaled_size(item.in_size, s.scale),
                )
                self._window.panel.set_current_image(item.name)
                self._window.show_status(f"Upscaling {item.name}…")
                self._runner(s.device).submit(job)
            except UpscalerError as exc:
                log.warning("cannot start %s: %s", item.src, exc)
                self._fail_to_start(item, one_line(str(exc)) or type(exc).__name__)
            except Exception as exc:
                log.exception("internal error starting %s", item.src)
                self._fail_to_start(item, f"internal error: {one_line(str(exc))}")
            else:
                self.refresh()

    # --- the cluster ---------------------------------------------------------------------

    def _send_queued(self) -> None:
        """Send every queued item to the cluster in one go (each worker takes a share)."""
        from upscaler_edge.errors import UpscalerError

        assert self._cluster is not None and self._sent is not None
        jobs: list[Job] = []
        s = self._settings()
        while (item := self._model.next_queued()) is not None:
            try:
                if item.is_video and not video_available():
                    raise _CannotStart(MISSING_PYAV)
                if item.is_video:
                    dst = video_output_path_for(item.src, s)
                else:
                    dst = output_path_for(item.src, s)
                dst = self._unclaimed(dst, s.overwrite)
                job = Job(
                    item.id,
                    item.src,
                    dst,
                    options_for(s),
                    video=item.is_video,
                    video_options=self.video_options if item.is_video else None,
                )
            except _CannotStart as exc:
                self._fail_now(item, str(exc))
                continue
            except UpscalerError as exc:
                self._fail_now(item, one_line(str(exc)) or type(exc).__name__)
                continue
            self._model.update(
                item.id,
                state=ItemState.RUNNING,
                progress=0.0,
                error=None,
                detail="waiting for a cluster worker",
                model=s.model,
                scale=s.scale,
                device="cluster",
                out_size=scaled_size(item.in_size, s.scale),
            )
            self._sent[item.id] = job
            jobs.append(job)
        if jobs:
            n = len(jobs)
            self._window.show_status(f"Sent {n} file{'s' if n != 1 else ''} to the cluster…")
            self._cluster.send(jobs)
        elif not self._sent:
            self._end_run()
        self.refresh()

    def _unclaimed(self, dst: Path, overwrite: bool) -> Path:
        """``dst``, or the next free ``NAME-2.ext`` when another file of this run will be
        written there (they are all sent before any is written: ``a.png`` and ``a.jpg``
        must not both become ``a_x4.png``)."""
        assert self._sent is not None
        taken = {job.dst for job in self._sent.values()}
        n = 2
        candidate = dst
        while candidate in taken or (candidate != dst and candidate.exists() and not overwrite):
            candidate = dst.with_name(f"{dst.stem}-{n}{dst.suffix}")
            n += 1
        return candidate

    def _fail_now(self, item: QueueItem, reason: str) -> None:
        self._fail(item.id, reason)
        self.item_finished.emit(item.id)

    def _cancel_sent(self) -> None:
        assert self._cluster is not None and self._sent is not None
        for job in self._sent.values():
            job.cancel.set()
        self._cluster.cancel(list(self._sent))
        self._window.show_status("Cancelling the files sent to the cluster…")

    @Slot(int, int, int)
    def _on_cluster_progress(self, item_id: int, done: int, total: int) -> None:
        if self._sent is None or item_id not in self._sent:
            return
        item = self._model.item(item_id)
        if item is None or item.state is not ItemState.RUNNING:
            return
        detail = f"frame {done} of {total}" if self._sent[item_id].video and total else None
        self._model.update(item_id, progress=done / total if total else 0.0, detail=detail)
        self._window.panel.set_item_progress(int(100 * done / total) if total else 0)

    @Slot(int)
    def _on_cluster_finished(self, item_id: int) -> None:
        if self._sent is None or self._sent.pop(item_id, None) is None:
            return
        self.item_finished.emit(item_id)
        if not self._sent:
            self._sent = None
            self._end_run()

    def _fail_to_start(self, item: QueueItem, reason: str) -> None:
        self._current = None
        self._fail(item.id, reason)
        self.item_finished.emit(item.id)

    def _end_run(self) -> None:
        was_running, self._running = self._running, False
        self._sent = None
        if was_running:
            self._announce_end()
        self._batch.clear()
        self.refresh()
        if was_running:
            self.queue_idle.emit()

    def _announce_end(self) -> None:
        done = self._model.count(ItemState.DONE)
        failed = self._model.count(ItemState.FAILED)
        if failed:
            self._window.show_status(
                f"Finished: {done} done, {failed} failed (see the queue for reasons)"
            )
        elif done:
            self._window.show_status(f"Finished: {done} done")
        self._window.panel.set_current_image(None)
        total = len(self._batch)
        if total:
            self._window.panel.set_overall_progress(100, f"All images: {total} of {total} finished")

    # --- what the runner reports ---------------------------------------------------------

    @Slot(int, int, int)
    def _on_progress(self, item_id: int, done: int, total: int) -> None:
        if self._current is None or self._current.item_id != item_id:
            return
        self._model.update(item_id, progress=done / total if total else 0.0)

    @Slot(int, object)
    def _on_video_progress(self, item_id: int, p: VideoProgress) -> None:
        if self._current is None or self._current.item_id != item_id:
            return
        done = p.frames_done + p.frame_fraction
        fraction = min(1.0, done / p.frames_total) if p.frames_total else 0.0
        self._model.update(item_id, progress=fraction, detail=progress_text(p))

    @Slot(int, object)
    def _on_returned(self, item_id: int, result: UpscaleResult) -> None:
        job = self._sent.get(item_id) if self._sent is not None else self._current
        job_dst = job.dst if job is not None else None
        item = self._model.update(
            item_id,
            state=ItemState.DONE,
            progress=1.0,
            dst=result.dst if result.dst is not None else job_dst,
            in_size=result.in_size,
            out_size=result.out_size,
            seconds=result.seconds,
            detail=None,
            frames=getattr(result, "frames", None),
            **({"device": result.device} if self._sent is not None and result.device else {}),
        )
        if item is not None:
            resumed = getattr(result, "frames_resumed", 0)
            note = f", resumed at frame {resumed + 1}" if resumed else ""
            if self._sent is not None and result.device:
                note += f", on {result.device}"  # the cluster worker that made it
            self._window.show_status(
                f"Saved {item.dst} ({format_size(item.out_size)}, {item.seconds or 0:.1f} s{note})",
                10_000,
            )
            self.item_done.emit(item_id)

    @Slot(int, str)
    def _on_errored(self, item_id: int, reason: str) -> None:
        self._fail(item_id, one_line(reason))

    def _fail(self, item_id: int, reason: str) -> None:
        item = self._model.update(item_id, state=ItemState.FAILED, error=reason, detail=None)
        name = item.name if item else f"item {item_id}"
        self._window.show_status(f"Failed: {name}: {reason}")

    @Slot(int)
    def _on_cancelled(self, item_id: int) -> None:
        self._model.update(item_id, state=ItemState.CANCELLED, progress=0.0, detail=None)
        self._window.show_status("Cancelled", 5000)

    @Slot(int)
    def _on_finished(self, item_id: int) -> None:
        if self._current is not None and self._current.item_id == item_id:
            self._current = None
        self.item_finished.emit(item_id)
        self._dispatch_next()

    # --- showing -------------------------------------------------------------------------

    def _on_item_changed(self, item_id: int) -> None:
        item = self._model.item(item_id)
        if item is None:
            return
        if self._current is not None and self._current.item_id == item_id:
            self._window.panel.set_item_progress(int(item.progress * 100))
        self._update_overall()

    def _update_overall(self) -> None:
        if not self._batch:
            return
        total = 0.0
        finished = 0
        for item_id in self._batch:
            item = self._model.item(item_id)
            if item is None or item.state.finished:
                total += 1.0
                finished += 1
            elif item.state is ItemState.RUNNING:
                total += item.progress
        size = len(self._batch)
        self._window.panel.set_overall_progress(
            int(100 * total / size), f"All images: {finished} of {size}"
        )

    def refresh(self) -> None:
        """Run buttons and menu entries that make sense now; the bars."""
        queued = self._model.count(ItemState.QUEUED) > 0
        self._window.panel.set_running(self._running, queued)
        self._window.set_run_actions(
            can_start=not self._running and queued,
            can_cancel=self._current is not None or bool(self._sent),
            can_cancel_all=self._running or queued,
        )
        if self._running:
            self._update_overall()
        else:
            self._window.panel.set_item_progress(0)
