"""Wires the window to the queue model and the workers; owns what happens when.

The controller is the only object that knows both the widgets and the core. It turns the
panel's values into a core ``Options`` per item (taken when the item starts, so a change
applies to the next image), runs one item at a time on the runner for the chosen device, and
turns every outcome into a row state and a status-bar line: nothing here lets an exception
reach Qt's event loop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPoint,
    QSettings,
    QSize,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from .dropzone import IMAGE_SUFFIXES, collect_images, paths_from_mime
from .main_window import MainWindow
from .panels import ModelEntry
from .queue_model import ItemState, QueueItem, QueueModel, format_size
from .settings import GuiSettings, load_settings, save_settings
from .workers import (
    DeviceChoice,
    DeviceProbe,
    Job,
    LoadedPair,
    PairLoader,
    RunnerHost,
    ThumbnailLoader,
    WorkerLike,
    auto_choice,
)

__all__ = ["MainController", "model_entries", "output_path_for"]

log = logging.getLogger(__name__)

_VARIANT = re.compile(r"-x(\d+)$")


def model_entries(specs: Iterable[object], names: Iterable[str]) -> list[ModelEntry]:
    """Picker rows from the core's ``list_models()`` and ``model_names()``.

    A family name (``realesr-animevideov3``) replaces its ``-x2/-x3/-x4`` variants: the scale
    buttons then pick the variant. Order follows the manifest.
    """
    specs = list(specs)
    spec_names = {s.name for s in specs}  # type: ignore[attr-defined]
    families = [n for n in names if n not in spec_names]
    entries: list[ModelEntry] = []
    emitted: set[str] = set()
    for spec in specs:
        name: str = spec.name  # type: ignore[attr-defined]
        m = _VARIANT.search(name)
        family = name[: m.start()] if m and name[: m.start()] in families else None
        if family is None:
            entries.append(ModelEntry(name, name, spec.description, int(spec.scale)))  # type: ignore[attr-defined]
            continue
        if family in emitted:
            continue
        emitted.add(family)
        variants = [s for s in specs if _VARIANT.sub("", s.name) == family]  # type: ignore[attr-defined]
        top = max(variants, key=lambda s: s.scale)  # type: ignore[attr-defined]
        description = re.sub(r",\s*x\d+\b", "", top.description)  # type: ignore[attr-defined]
        scales = "/".join(f"×{s.scale}" for s in sorted(variants, key=lambda s: s.scale))  # type: ignore[attr-defined]
        entries.append(ModelEntry(family, family, f"{description} — {scales}", int(top.scale)))  # type: ignore[attr-defined]
    return entries


def _unique(path: Path) -> Path:
    """``path``, or ``NAME-2.ext``, ``NAME-3.ext`` ... when it exists."""
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    return path


def output_path_for(src: Path, s: GuiSettings) -> Path:
    """Where ``src``'s result goes: the core's default name, in ``s.output_dir`` or beside the
    input; a free name unless overwriting was asked for."""
    from upscaler_edge.pipeline import default_output_path

    default = default_output_path(src, s.scale, s.format)
    folder = Path(s.output_dir) if s.output_dir else default.parent
    dst = folder / default.name
    return dst if s.overwrite else _unique(dst)


def _default_worker_factory() -> WorkerLike:
    from upscaler_edge.worker import Worker

    return Worker()


class MainController(QObject):
    """Drives one :class:`MainWindow`.

    Signals (for tests and the screenshot mode): ``item_finished(id)`` after an item ends in
    any state, ``queue_idle()`` when a run has nothing left to do, ``compare_ready(id)`` when
    the compare view shows that item, ``devices_ready()`` after the device probe.
    """

    item_finished = Signal(int)
    queue_idle = Signal()
    compare_ready = Signal(int)
    devices_ready = Signal()

    def __init__(
        self,
        window: MainWindow,
        qsettings: QSettings,
        *,
        worker_factory: Callable[[], WorkerLike] = _default_worker_factory,
        probe_devices: bool = True,
        paste_dir: Path | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.panel = window.panel
        self.model = QueueModel(self)
        self._qsettings = qsettings
        self._worker_factory = worker_factory
        self._paste_dir = paste_dir
        self._runners: dict[str, RunnerHost] = {}
        self._current: Job | None = None
        self._running = False
        self._batch: set[int] = set()
        self._compare_item: int | None = None
        self._pair_item = -1
        #: id of the item whose pair the compare view shows (None: none)
        self.compare_shown: int | None = None
        self._compare_auto = True
        self._closed = False

        self.thumbnails = ThumbnailLoader(self)
        self.pairs = PairLoader(self)
        self.devices = DeviceProbe(self)

        window.queue_view.setModel(self.model)
        self._load_models()
        self.settings = load_settings(qsettings)
        self.panel.apply(self.settings)
        if not self.settings.geometry.isEmpty():
            window.restoreGeometry(self.settings.geometry)
        if not self.settings.splitter.isEmpty():
            window.splitter.restoreState(self.settings.splitter)
        self._wire()
        self._refresh()
        self._update_compare_buttons()
        window.status.showMessage("Drop images or folders to start", 0)
        if probe_devices:
            self.devices.start()
        else:
            self._on_devices(
                [
                    DeviceChoice("auto", "Auto (best available)", "auto"),
                    DeviceChoice("cpu", "CPU", "cpu"),
                ]
            )

    # --- setup ---------------------------------------------------------------------------

    def _load_models(self) -> None:
        try:
            from upscaler_edge.models import default_registry

            registry = default_registry()
            entries = model_entries(registry.specs(), registry.names())
        except Exception as exc:
            log.exception("cannot list models")
            self.window.status.showMessage(f"Cannot list models: {exc}", 0)
            entries = [ModelEntry("realesrgan-x4plus", "realesrgan-x4plus", "", 4)]
        self.panel.set_models(entries)

    def _wire(self) -> None:
        w, p = self.window, self.panel
        w.files_dropped.connect(self.add_paths)
        w.drop_zone.dropped.connect(self.add_paths)
        w.add_more_zone.dropped.connect(self.add_paths)
        w.drop_zone.clicked.connect(self.open_files)
        w.add_more_zone.clicked.connect(self.open_files)
        w.open_action.triggered.connect(self.open_files)
        w.open_folder_action.triggered.connect(self.open_folder)
        w.paste_action.triggered.connect(self.paste)
        w.quit_action.triggered.connect(w.close)
        w.start_action.triggered.connect(self.start)
        w.cancel_action.triggered.connect(self.cancel_current)
        w.cancel_all_action.triggered.connect(self.cancel_all)
        w.retry_action.triggered.connect(self.retry_selected)
        w.remove_action.triggered.connect(self.remove_selected)
        w.clear_finished_action.triggered.connect(self.model.remove_finished)
        w.clear_finished_button.clicked.connect(self.model.remove_finished)
        w.fit_action.triggered.connect(w.compare.zoom_fit)
        w.actual_action.triggered.connect(w.compare.zoom_actual)
        w.fit_button.clicked.connect(w.compare.zoom_fit)
        w.actual_button.clicked.connect(w.compare.zoom_actual)
        w.open_result_button.clicked.connect(self.open_result)
        w.show_folder_button.clicked.connect(self.show_in_folder)
        w.about_action.triggered.connect(self._about)
        w.compare.zoom_changed.connect(self._on_zoom)
        w.closing.connect(self.shutdown)
        w.queue_view.customContextMenuRequested.connect(self._context_menu)
        w.queue_view.selectionModel().currentChanged.connect(self._on_current_changed)
        p.start_button.clicked.connect(self.start)
        p.cancel_button.clicked.connect(self.cancel_current)
        p.clear_rest_button.clicked.connect(self.cancel_all)
        p.changed.connect(self._on_panel_changed)
        p.browse_output_requested.connect(self.browse_output)
        self.model.counts_changed.connect(self._refresh)
        self.model.item_changed.connect(self._on_item_changed)
        self.thumbnails.loaded.connect(self._on_thumbnail)
        self.pairs.loaded.connect(self._on_pair)
        self.devices.ready.connect(self._on_devices)

    # --- adding --------------------------------------------------------------------------

    @Slot(list)
    def add_paths(self, paths: list[Path]) -> list[int]:
        """Queue files (folders are walked for images); returns the new item ids."""
        files = collect_images(Path(p) for p in paths)
        ids = self.model.add(files)
        for item_id in ids:
            item = self.model.item(item_id)
            if item is not None:
                self.thumbnails.request(item_id, item.src)
        if ids:
            self.window.status.showMessage(
                f"Added {len(ids)} image{'s' if len(ids) != 1 else ''}"
                + ("" if self._running else " — press Upscale to start"),
                5000,
            )
            if self._running:
                self._batch.update(ids)
        elif files:
            self.window.status.showMessage("Those images are already in the queue", 5000)
        else:
            self.window.status.showMessage("No images found in what was dropped", 5000)
        self._refresh()
        return ids

    def open_files(self) -> None:
        """File > Open: pick images."""
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(
            self.window, "Open images", self._last_dir(), f"Images ({patterns});;All files (*)"
        )
        if files:
            self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        """File > Open folder: every image inside it (recursively)."""
        folder = QFileDialog.getExistingDirectory(self.window, "Open folder", self._last_dir())
        if folder:
            self.add_paths([Path(folder)])

    def _last_dir(self) -> str:
        last = next(reversed(list(self.model)), None)
        return str(last.src.parent) if last else str(Path.home())

    def paste(self) -> None:
        """Edit > Paste: file URLs or paths from the clipboard, else a copied image (saved as a
        PNG in the paste folder, so its result lands there too)."""
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        paths = paths_from_mime(mime) if mime is not None else []
        if paths:
            self.add_paths(paths)
            return
        image = clipboard.image()
        if image.isNull():
            self.window.status.showMessage("Nothing to paste: copy an image or image files", 5000)
            return
        folder = self._paste_dir or Path.home() / "Pictures" / "Upscaler Edge"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.window.status.showMessage(f"Cannot save the pasted image: {exc}", 0)
            return
        path = _unique(folder / time.strftime("pasted-%Y%m%d-%H%M%S.png"))
        if not image.save(str(path), "PNG"):
            self.window.status.showMessage(f"Cannot save the pasted image to {path}", 0)
            return
        self.add_paths([path])

    # --- running -------------------------------------------------------------------------

    def is_running(self) -> bool:
        """True while a run is in progress (an item running or about to)."""
        return self._running

    def start(self) -> None:
        """Upscale every queued item, one after another."""
        if self._running or self.model.next_queued() is None:
            return
        self._running = True
        self._batch = {i.id for i in self.model if i.state is ItemState.QUEUED}
        self._dispatch_next()

    def _options(self, s: GuiSettings) -> object:
        from upscaler_edge.options import Options

        return Options(
            model=s.model,
            scale=s.scale,
            tile=s.tile,
            device=s.device,
            format=s.format,
            quality=s.quality,
            tta=s.tta,
            overwrite=s.overwrite,
        )

    def _runner(self, device: str) -> RunnerHost:
        host = self._runners.get(device)
        if host is None:
            host = RunnerHost(device, self._worker_factory)
            r = host.runner
            r.progress.connect(self._on_progress)
            r.returned.connect(self._on_returned)
            r.errored.connect(self._on_errored)
            r.cancelled.connect(self._on_cancelled)
            r.finished.connect(self._on_finished)
            self._runners[device] = host
        return host

    def _dispatch_next(self) -> None:
        if self._current is not None or self._closed:
            return
        item = self.model.next_queued() if self._running else None
        if item is None:
            was_running, self._running = self._running, False
            if was_running:
                self._announce_end()
            self._batch.clear()
            self._refresh()
            if was_running:
                self.queue_idle.emit()
            return
        s = self.panel.values(self.settings)
        try:
            options = self._options(s)
            dst = output_path_for(item.src, s)
        except Exception as exc:
            log.warning("cannot start %s: %s", item.src, exc)
            self.model.update(item.id, state=ItemState.FAILED, error=str(exc))
            self.window.status.showMessage(f"{item.name}: {exc}", 0)
            self.item_finished.emit(item.id)
            self._dispatch_next()
            return
        job = Job(item.id, item.src, dst, options)  # type: ignore[arg-type]
        self._current = job
        self.model.update(
            item.id,
            state=ItemState.RUNNING,
            progress=0.0,
            error=None,
            model=s.model,
            scale=s.scale,
            device=s.device,
            out_size=self._predict(item.in_size, s.scale),
        )
        self.panel.current_label.setText(f"Current image: {item.name}")
        self.window.status.showMessage(f"Upscaling {item.name}…", 0)
        self._runner(s.device).submit(job)
        self._refresh()

    def cancel_current(self) -> None:
        """Stop the running item between tiles; the queue goes on with the next one."""
        if self._current is not None:
            self._current.cancel.set()
            self.window.status.showMessage("Cancelling…", 0)

    def cancel_all(self) -> None:
        """Stop the running item and mark every queued one cancelled ("clear the rest")."""
        cleared = self.model.cancel_queued()
        for item_id in cleared:
            self.item_finished.emit(item_id)
        if self._current is not None:
            self._current.cancel.set()
            self.window.status.showMessage("Cancelling the current image and the rest…", 0)
        else:
            self._running = False
            self._refresh()

    @Slot(int, int, int)
    def _on_progress(self, item_id: int, done: int, total: int) -> None:
        if self._current is None or self._current.item_id != item_id:
            return
        self.model.update(item_id, progress=done / total if total else 0.0)

    @Slot(int, object)
    def _on_returned(self, item_id: int, result: object) -> None:
        dst = getattr(result, "dst", None)
        in_size = getattr(result, "in_size", None)
        out_size = getattr(result, "out_size", None)
        item = self.model.update(
            item_id,
            state=ItemState.DONE,
            progress=1.0,
            dst=Path(dst) if dst is not None else (self._current.dst if self._current else None),
            in_size=tuple(in_size) if in_size else None,
            out_size=tuple(out_size) if out_size else None,
            seconds=getattr(result, "seconds", None),
        )
        if item is not None:
            self.window.status.showMessage(
                f"Saved {item.dst} ({format_size(item.out_size)}, {item.seconds or 0:.1f} s)", 10000
            )
            if self._compare_auto or self._compare_item is None:
                self.select(item_id, auto=True)

    @Slot(int, str)
    def _on_errored(self, item_id: int, reason: str) -> None:
        item = self.model.update(item_id, state=ItemState.FAILED, error=reason)
        name = item.name if item else f"item {item_id}"
        self.window.status.showMessage(f"Failed: {name}: {reason}", 0)

    @Slot(int)
    def _on_cancelled(self, item_id: int) -> None:
        self.model.update(item_id, state=ItemState.CANCELLED, progress=0.0)
        self.window.status.showMessage("Cancelled", 5000)

    @Slot(int)
    def _on_finished(self, item_id: int) -> None:
        if self._current is not None and self._current.item_id == item_id:
            self._current = None
        self.item_finished.emit(item_id)
        self._dispatch_next()

    def _announce_end(self) -> None:
        done = self.model.count(ItemState.DONE)
        failed = self.model.count(ItemState.FAILED)
        if failed:
            self.window.status.showMessage(
                f"Finished: {done} done, {failed} failed (see the queue for reasons)", 0
            )
        elif done:
            self.window.status.showMessage(f"Finished: {done} done", 0)
        self.panel.current_label.setText("Current image")
        total = len(self._batch)
        if total:
            self.panel.overall_progress.setValue(100)
            self.panel.overall_label.setText(f"All images: {total} of {total} finished")

    # --- queue actions -------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        """Ids of the selected rows, in list order."""
        rows = sorted(i.row() for i in self.window.queue_view.selectionModel().selectedRows())
        return [self.model.item_at(r).id for r in rows]

    def retry_selected(self) -> None:
        """Queue the selected finished items again (done ones run again with the current
        settings, into a new file unless overwriting is on)."""
        for item_id in self.selected_ids():
            item = self.model.item(item_id)
            if item is not None and item.state.finished:
                self.model.update(
                    item_id, state=ItemState.QUEUED, error=None, progress=0.0, dst=None
                )
                if self._running:
                    self._batch.add(item_id)

    def remove_selected(self) -> None:
        """Remove the selected items that are not running."""
        self.model.remove(self.selected_ids())

    def select(self, item_id: int, *, auto: bool = False) -> None:
        """Make ``item_id`` the current row (and show it in the compare view)."""
        row = self.model.row_of(item_id)
        if row < 0:
            return
        view = self.window.queue_view
        view.selectionModel().setCurrentIndex(
            self.model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self._compare_auto = auto

    def _context_menu(self, pos: QPoint) -> None:
        index = self.window.queue_view.indexAt(pos)
        if not index.isValid():
            return
        item = self.model.item_at(index.row())
        menu = QMenu(self.window)
        if item.state is ItemState.DONE:
            menu.addAction("Open result", self.open_result)
            menu.addAction("Show in folder", self.show_in_folder)
            menu.addSeparator()
        if item.state is ItemState.RUNNING:
            menu.addAction("Cancel", self.cancel_current)
        if item.state in (ItemState.FAILED, ItemState.CANCELLED):
            menu.addAction("Retry", self.retry_selected)
        elif item.state is ItemState.DONE:
            menu.addAction("Upscale again", self.retry_selected)
        if item.state is not ItemState.RUNNING:
            menu.addAction("Remove from queue", self.remove_selected)
        menu.popup(self.window.queue_view.viewport().mapToGlobal(pos))

    def _current_item(self) -> QueueItem | None:
        index = self.window.queue_view.currentIndex()
        return self.model.item_at(index.row()) if index.isValid() else None

    def open_result(self) -> None:
        """Open the selected result in the system viewer."""
        item = self._current_item()
        if item is not None and item.dst is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(item.dst)))

    def show_in_folder(self) -> None:
        """Open the folder holding the selected result (or input)."""
        item = self._current_item()
        if item is not None:
            target = item.dst if item.dst is not None else item.src
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target.parent)))

    def browse_output(self) -> None:
        """Pick the output folder."""
        folder = QFileDialog.getExistingDirectory(
            self.window, "Save results to", self.panel.output_dir() or self._last_dir()
        )
        if folder:
            self.panel.set_output_dir(folder)

    def _about(self) -> None:
        QMessageBox.about(
            self.window,
            "About Upscaler Edge",
            "<b>Upscaler Edge</b><br>Real-ESRGAN super-resolution on your own machine, "
            "through ncnn (any Vulkan GPU, or the CPU).<br><br>Models by Xintao Wang et al. "
            "(BSD-3-Clause).",
        )

    # --- reacting ------------------------------------------------------------------------

    @staticmethod
    def _predict(in_size: tuple[int, int] | None, scale: int) -> tuple[int, int] | None:
        return (in_size[0] * scale, in_size[1] * scale) if in_size else None

    @Slot(int, object, object)
    def _on_thumbnail(self, item_id: int, size: QSize | None, image: QImage | None) -> None:
        item = self.model.item(item_id)
        if item is None:
            return
        in_size = (size.width(), size.height()) if size is not None else item.in_size
        changes: dict[str, object] = {"thumbnail": image, "in_size": in_size}
        if item.state in (ItemState.QUEUED, ItemState.RUNNING):
            changes["out_size"] = self._predict(in_size, item.scale or self.panel.values().scale)
        self.model.update(item_id, **changes)

    def _on_panel_changed(self) -> None:
        self.settings = self.panel.values(self.settings)
        save_settings(self._qsettings, self.settings)
        for item in self.model:
            if item.state is ItemState.QUEUED:
                self.model.update(
                    item.id, out_size=self._predict(item.in_size, self.settings.scale)
                )

    @Slot(list)
    def _on_devices(self, choices: list[DeviceChoice]) -> None:
        self.panel.set_devices(choices)
        self.panel.apply(self.settings)
        auto = auto_choice(choices)
        self.window.device_status.setText(f"Auto device: {auto.label}" if auto else "")
        self.devices_ready.emit()

    def _on_item_changed(self, item_id: int) -> None:
        item = self.model.item(item_id)
        if item is None:
            return
        if self._current is not None and self._current.item_id == item_id:
            self.panel.item_progress.setValue(int(item.progress * 100))
        self._update_overall()
        if item_id == self._compare_item and not self.window.compare.has_images():
            self._show_compare(item)

    def _update_overall(self) -> None:
        if not self._batch:
            return
        total = 0.0
        for item_id in self._batch:
            item = self.model.item(item_id)
            if item is None or item.state.finished:
                total += 1.0
            elif item.state is ItemState.RUNNING:
                total += item.progress
        self.panel.overall_progress.setValue(int(100 * total / len(self._batch)))
        finished = sum(
            1 for i in self._batch if (it := self.model.item(i)) is None or it.state.finished
        )
        self.panel.overall_label.setText(f"All images: {finished} of {len(self._batch)}")

    def _refresh(self) -> None:
        has_items = len(self.model) > 0
        self.window.show_queue(has_items)
        queued = self.model.count(ItemState.QUEUED)
        self.panel.set_running(self._running, queued > 0)
        w = self.window
        w.start_action.setEnabled(not self._running and queued > 0)
        w.cancel_action.setEnabled(self._current is not None)
        w.cancel_all_action.setEnabled(self._running or queued > 0)
        total = len(self.model)
        done = self.model.count(ItemState.DONE)
        failed = self.model.count(ItemState.FAILED)
        summary = f"{done} of {total} done" if total else ""
        if failed:
            summary += f"  ·  {failed} failed"
        w.queue_count.setText(summary)
        w.clear_finished_button.setVisible(
            self.model.count(ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED) > 0
        )
        if self._running:
            self._update_overall()
        else:
            self.panel.item_progress.setValue(0)

    # --- compare -------------------------------------------------------------------------

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self._compare_auto = False
        if not current.isValid():
            self._compare_item = None
            self.compare_shown = None
            self.window.compare.clear("Select a finished image to compare it with the original")
            self._update_compare_buttons()
            return
        item = self.model.item_at(current.row())
        self._compare_item = item.id
        self._show_compare(item)

    def _on_zoom(self, zoom: float) -> None:
        shown = self.window.compare.has_images()
        self.window.zoom_label.setText(f"{round(zoom * 100)}%" if shown else "")

    def _update_compare_buttons(self) -> None:
        w = self.window
        shown = w.compare.has_images()
        for b in (w.fit_button, w.actual_button):
            b.setEnabled(shown)
        item = self._current_item()
        w.open_result_button.setEnabled(item is not None and item.dst is not None and shown)
        w.show_folder_button.setEnabled(item is not None)
        if not shown:
            w.zoom_label.setText("")

    def _show_compare(self, item: QueueItem) -> None:
        w = self.window
        w.compare_info.setText(item.name)
        done = item.state is ItemState.DONE and item.dst is not None
        w.open_result_button.setEnabled(done)
        if done:
            if not w.compare.has_images():
                w.compare.clear("Loading…")  # else keep the last pair until this one arrives
            self._pair_item = item.id
            self.pairs.request(item.src, item.dst)  # type: ignore[arg-type]
            return
        messages = {
            ItemState.QUEUED: "Queued — press Upscale to start",
            ItemState.RUNNING: "Upscaling… the comparison appears when it is done",
            ItemState.FAILED: f"Failed: {item.error}",
            ItemState.CANCELLED: "Cancelled — use Retry to queue it again",
        }
        w.compare.clear(messages.get(item.state, ""))
        self.compare_shown = None
        self._update_compare_buttons()

    @Slot(int, object)
    def _on_pair(self, request_id: int, pair: LoadedPair | None) -> None:
        item = self.model.item(self._pair_item)
        if item is None or item.id != self._compare_item:
            return
        w = self.window
        if pair is None:
            w.compare.clear(f"Cannot open {item.dst} for comparison")
            self.compare_shown = None
            self._update_compare_buttons()
            return
        w.compare.set_images(pair.before, pair.after, pair.before_preview, pair.after_preview)
        self.compare_shown = item.id
        self._update_compare_buttons()
        w.compare.set_labels(
            f"Before  {pair.before.width()}×{pair.before.height()}",
            f"After  {pair.after.width()}×{pair.after.height()}",
        )
        w.compare_info.setText(f"{item.name}  →  {item.dst.name if item.dst else ''}")
        self.compare_ready.emit(item.id)

    # --- shutdown ------------------------------------------------------------------------

    def save(self) -> None:
        """Write the panel's values and the window layout to QSettings."""
        self.settings = self.panel.values(self.settings)
        self.settings.geometry = self.window.saveGeometry()
        self.settings.splitter = self.window.splitter.saveState()
        save_settings(self._qsettings, self.settings)

    @Slot()
    def shutdown(self) -> None:
        """Save settings, cancel work and stop every worker (idempotent)."""
        if self._closed:
            return
        self.save()
        self._closed = True
        self.model.cancel_queued()
        if self._current is not None:
            self._current.cancel.set()
        self.devices.stop()
        for host in self._runners.values():
            host.shutdown()
        self._runners.clear()
