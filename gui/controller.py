"""Puts one window together: its queue model, its controllers and its settings.

:class:`MainController` builds the parts and connects them; each part owns one idea:
:class:`~upscaler_edge_gui.queue_controller.QueueController` (rows, selection),
:class:`~upscaler_edge_gui.run_controller.RunController` (running the queue),
:class:`~upscaler_edge_gui.compare_controller.CompareController` (the compare pane),
:class:`~upscaler_edge_gui.file_actions.FileActions` (dialogs, paste, opening results) and
:class:`~upscaler_edge_gui.devices.DeviceProbe` (the device list). What is left here is what
needs two of them at once (adding files during a run, the row menu) and the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QPoint, QSettings, Signal, Slot

from .cluster_status import ClusterStatus
from .compare_controller import CompareController
from .devices import FALLBACK_DEVICES, DeviceChoice, DeviceProbe, auto_choice
from .file_actions import FileActions
from .main_window import MainWindow, MenuEntry, WindowLayout
from .model_choice import load_model_entries
from .queue_controller import QueueController
from .queue_model import ItemState, QueueModel
from .run_controller import RunController
from .settings import GuiSettings, load_settings, save_settings
from .workers import WorkerLike

__all__ = ["MainController"]

log = logging.getLogger(__name__)


def _default_worker_factory() -> WorkerLike:
    from upscaler_edge.worker import Worker

    return Worker()


class MainController(QObject):
    """Drives one :class:`MainWindow`.

    Signals (for tests and the screenshot mode): ``item_finished(id)`` after an item ends in
    any state, ``queue_idle()`` when a run has nothing left to do, ``compare_ready(id)`` when
    the compare view shows that item, ``devices_ready()`` after the device probe.

    ``cluster_address_file``: where this PC keeps a cluster's address (the app passes
    ``upscaler_edge.cluster.cli.address_file()``); when it exists, "Send to the cluster" is
    offered. None (tests' default): local work only.
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
        cluster_address_file: Path | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.model = QueueModel(self)
        self._qsettings = qsettings
        self._closed = False
        window.queue_view.setModel(self.model)

        entries, models_error = load_model_entries()
        window.panel.set_models(entries)
        self.settings = load_settings(qsettings)
        window.panel.apply(self.settings)
        s = self.settings
        window.restore_layout(WindowLayout(s.geometry, s.window_state, s.splitter))

        self.queue = QueueController(window, self.model)
        cluster = None
        if cluster_address_file is not None and cluster_address_file.is_file():
            from .cluster_run import cluster_client_factory

            cluster = cluster_client_factory(cluster_address_file)
        self.runs = RunController(
            window, self.model, self._current_settings, worker_factory, cluster
        )
        #: the cluster's workers in the status bar while "Send to the cluster" is on
        self.cluster_status: ClusterStatus | None = None
        if self.runs.cluster is not None:
            self.cluster_status = ClusterStatus(window, self.runs.cluster.workers)
        self.compare = CompareController(window, self.model)
        self.files = FileActions(
            window, self.model, self.add_paths, self.queue.current_item, paste_dir
        )
        self.devices = DeviceProbe(self)
        self._wire()

        window.show_status("Drop images or folders to start")
        if models_error:
            window.show_status(models_error)
        if probe_devices:
            self.devices.start()
        else:
            self._on_devices(list(FALLBACK_DEVICES))

    def _wire(self) -> None:
        w = self.window
        w.files_dropped.connect(self.add_paths)
        w.retry_action.triggered.connect(self.retry_selected)
        w.queue_view.menu_requested.connect(self._item_menu)
        w.panel.changed.connect(self._on_panel_changed)
        w.closing.connect(self.shutdown)
        self.runs.item_finished.connect(self.item_finished)
        self.runs.queue_idle.connect(self.queue_idle)
        self.runs.item_done.connect(self.compare.show_result)
        self.compare.compare_ready.connect(self.compare_ready)
        self.devices.ready.connect(self._on_devices)

    def _current_settings(self) -> GuiSettings:
        return self.window.panel.values(self.settings)

    # --- what tests, the screenshot and the command line use -----------------------------

    @property
    def compare_shown(self) -> int | None:
        """Id of the item whose pair the compare view shows (None: none)."""
        return self.compare.shown

    def is_running(self) -> bool:
        """True while a run is in progress (an item running or about to)."""
        return self.runs.is_running()

    def start(self) -> None:
        """Upscale every queued item, one after another."""
        self.runs.start()

    def cancel_current(self) -> None:
        """Stop the running item between tiles; the queue goes on with the next one."""
        self.runs.cancel_current()

    def select(self, item_id: int) -> None:
        """Make ``item_id`` the current row (and show it in the compare view)."""
        self.compare.select(item_id)

    @Slot(list)
    def add_paths(self, paths: list[Path]) -> list[int]:
        """Queue files (folders are walked for images); returns the new item ids."""
        ids, found = self.queue.add(paths)
        running = self.runs.is_running()
        if ids:
            self.runs.adopt(ids)
            plural = "s" if len(ids) != 1 else ""
            hint = "" if running else " — press Upscale to start"
            self.window.show_status(f"Added {len(ids)} image{plural}{hint}", 5000)
        elif found:
            self.window.show_status("Those images are already in the queue", 5000)
        else:
            self.window.show_status("No images found in what was dropped", 5000)
        return ids

    def retry_selected(self) -> None:
        """Queue the selected finished items again (they join a run in progress)."""
        self.runs.adopt(self.queue.requeue_selected())

    # --- reacting ------------------------------------------------------------------------

    @Slot(int, QPoint)
    def _item_menu(self, row: int, pos: QPoint) -> None:
        item = self.model.item_at(row)
        entries: list[MenuEntry] = []
        if item.state is ItemState.DONE:
            entries += [
                ("Open result", self.files.open_result),
                ("Show in folder", self.files.show_in_folder),
                None,
            ]
        if item.state is ItemState.RUNNING:
            entries.append(("Cancel", self.runs.cancel_current))
        if item.state in (ItemState.FAILED, ItemState.CANCELLED):
            entries.append(("Retry", self.retry_selected))
        elif item.state is ItemState.DONE:
            entries.append(("Upscale again", self.retry_selected))
        if item.state is not ItemState.RUNNING:
            entries.append(("Remove from queue", self.queue.remove_selected))
        self.window.popup_item_menu(pos, entries)

    def _on_panel_changed(self) -> None:
        self.settings = self._current_settings()
        save_settings(self._qsettings, self.settings)
        self.queue.predict_sizes(self.settings.scale)

    @Slot(list)
    def _on_devices(self, choices: list[DeviceChoice]) -> None:
        panel = self.window.panel
        panel.set_devices(choices)
        panel.apply(self.settings)
        auto = auto_choice(choices)
        self.window.set_device_status(f"Auto device: {auto.label}" if auto else "")
        self.devices_ready.emit()

    # --- shutdown ------------------------------------------------------------------------

    def save(self) -> None:
        """Write the panel's values and the window layout to QSettings."""
        self.settings = self._current_settings()
        layout = self.window.saved_layout()
        self.settings.geometry = layout.geometry
        self.settings.window_state = layout.state
        self.settings.splitter = layout.splitter
        save_settings(self._qsettings, self.settings)

    @Slot()
    def shutdown(self) -> None:
        """Save settings, cancel work and stop every worker (idempotent)."""
        if self._closed:
            return
        self.save()
        self._closed = True
        self.devices.stop()
        if self.cluster_status is not None:
            self.cluster_status.stop()
        self.runs.shutdown()
