"""The main window's layout: sidebar | queue | compare, menus and the status bar.

Layout only. The window owns its widgets; controllers see its actions (``*_action``), its
signals (``files_dropped``, ``closing``), its sub-views with their own intent methods
(``panel``, ``queue_view``, ``compare_pane``) and the intent methods below (``show_status``,
``set_queue_summary``, ``popup_item_menu``, ...), never the labels and buttons inside. Buttons
that repeat an action (Open, Folder, Clear finished, the drop zones' click) trigger that
action, so a controller wires each thing once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QByteArray, QPoint, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from .compare_pane import ComparePane
from .dropzone import DropZone, mime_has_paths, paths_from_mime
from .panels import SettingsPanel
from .queue_view import QueueView

__all__ = ["MainWindow", "MenuEntry", "WindowLayout"]

#: One context-menu row: its text and what it does; None draws a separator.
MenuEntry = tuple[str, Callable[[], object]] | None


@dataclass(frozen=True)
class WindowLayout:
    """What Qt saves of the window: geometry, dock/toolbar state and the splitter."""

    geometry: QByteArray
    state: QByteArray
    splitter: QByteArray


class MainWindow(QMainWindow):
    """Signals: ``files_dropped(list[Path])`` (anywhere on the window), ``closing()``."""

    files_dropped = Signal(list)
    closing = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.setWindowTitle("Upscaler Edge")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.setMinimumSize(1090, 620)

        self.panel = SettingsPanel()

        # queue column
        queue_col = QFrame()
        queue_col.setObjectName("QueueColumn")
        queue_col.setMinimumWidth(300)
        ql = QVBoxLayout(queue_col)
        ql.setContentsMargins(16, 16, 12, 12)
        ql.setSpacing(10)
        header = QHBoxLayout()
        self.queue_title = QLabel("Queue")
        self.queue_title.setObjectName("PaneTitle")
        self.queue_count = QLabel("")
        self.queue_count.setObjectName("Muted")
        self.clear_finished_button = QPushButton("Clear finished")
        self.clear_finished_button.setObjectName("FlatButton")
        header.addWidget(self.queue_title)
        header.addWidget(self.queue_count)
        header.addStretch(1)
        header.addWidget(self.clear_finished_button)
        ql.addLayout(header)
        self.queue_stack = QStackedWidget()
        self.drop_zone = DropZone()
        list_page = QWidget()
        lp = QVBoxLayout(list_page)
        lp.setContentsMargins(0, 0, 0, 0)
        lp.setSpacing(8)
        self.queue_view = QueueView()
        self.add_more_zone = DropZone(compact=True)
        lp.addWidget(self.queue_view, 1)
        lp.addWidget(self.add_more_zone)
        self.queue_stack.addWidget(self.drop_zone)
        self.queue_stack.addWidget(list_page)
        ql.addWidget(self.queue_stack, 1)

        self.compare_pane = ComparePane()
        #: the before/after picture (a view of its own; the screenshot drives it directly)
        self.compare = self.compare_pane.view

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("MainSplitter")
        self.splitter.addWidget(queue_col)
        self.splitter.addWidget(self.compare_pane)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 720])
        self.splitter.setChildrenCollapsible(False)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.panel)
        row.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.status = QStatusBar()
        self.status.setSizeGripEnabled(False)
        self.device_status = QLabel("")
        self.device_status.setObjectName("Muted")
        self.cluster_status = QLabel("")
        self.cluster_status.setObjectName("Muted")
        self.cluster_status.setVisible(False)
        self.status.addPermanentWidget(self.cluster_status)
        self.status.addPermanentWidget(self.device_status)
        self.setStatusBar(self.status)

        self._build_actions()
        self._wire_own()
        self._shown_once = False

    def _build_actions(self) -> None:
        """Menus and shortcuts (triggered signals are wired by the controllers)."""

        def action(
            text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None
        ) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            self.addAction(a)  # shortcuts work even with the menu bar hidden
            return a

        self.open_action = action("&Open images…", QKeySequence.StandardKey.Open)
        self.open_folder_action = action("Open &folder…", "Ctrl+Shift+O")
        self.paste_action = action("&Paste images", QKeySequence.StandardKey.Paste)
        self.import_model_action = action("&Import model…")
        self.quit_action = action("&Quit", QKeySequence.StandardKey.Quit)
        self.start_action = action("&Upscale", "Ctrl+Return")
        self.cancel_action = action("&Cancel current", "Esc")
        self.cancel_all_action = action("Cancel &all (clear the rest)", "Ctrl+Shift+Esc")
        self.retry_action = action("&Retry", "Ctrl+R")
        self.remove_action = action("&Remove from queue", QKeySequence.StandardKey.Delete)
        self.clear_finished_action = action("Clear &finished")
        self.fit_action = action("Zoom to &fit", "Ctrl+0")
        self.actual_action = action("Zoom &100%", "Ctrl+1")
        self.open_result_action = action("Open result")
        self.show_folder_action = action("Show in folder")
        self.about_action = action("&About Upscaler Edge")
        self.cluster_action = action("Send to the &cluster")
        self.cluster_action.setCheckable(True)  # off by default, and not remembered
        self.cluster_action.setToolTip(
            "Send the whole batch to the cluster's worker PCs instead of upscaling here"
        )
        self.cluster_action.setVisible(False)  # offered once a cluster is set up

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for a in (self.open_action, self.open_folder_action, self.paste_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.import_model_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        queue_menu = menus.addMenu("&Queue")
        for a in (self.start_action, self.cancel_action, self.cancel_all_action):
            queue_menu.addAction(a)
        queue_menu.addSeparator()
        for a in (self.retry_action, self.remove_action, self.clear_finished_action):
            queue_menu.addAction(a)
        queue_menu.addSeparator()
        queue_menu.addAction(self.cluster_action)
        view_menu = menus.addMenu("&View")
        view_menu.addAction(self.fit_action)
        view_menu.addAction(self.actual_action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _wire_own(self) -> None:
        """Keep the window's own widgets consistent: buttons repeat actions, zoom shows."""
        self.drop_zone.dropped.connect(self.files_dropped)
        self.add_more_zone.dropped.connect(self.files_dropped)
        for zone in (self.drop_zone, self.add_more_zone):
            zone.clicked.connect(self.open_action.trigger)
        self.quit_action.triggered.connect(self.close)
        self.about_action.triggered.connect(self.show_about)
        self.clear_finished_button.clicked.connect(self.clear_finished_action.trigger)
        self.fit_action.triggered.connect(self.compare.zoom_fit)
        self.actual_action.triggered.connect(self.compare.zoom_actual)
        self.compare_pane.open_requested.connect(self.open_result_action.trigger)
        self.compare_pane.folder_requested.connect(self.show_folder_action.trigger)

    # --- intent: status bar and queue column ---------------------------------------------

    def show_status(self, text: str, timeout_ms: int = 0) -> None:
        """A line in the status bar (0: until the next one)."""
        self.status.showMessage(text, timeout_ms)

    def set_device_status(self, text: str) -> None:
        """The permanent note at the right of the status bar (what "auto" runs on)."""
        self.device_status.setText(text)

    def set_cluster_status(self, text: str, details: str = "") -> None:
        """The cluster's workers at the right of the status bar, ``details`` as its tooltip
        (one line per worker); an empty ``text`` hides it."""
        self.cluster_status.setText(text)
        self.cluster_status.setToolTip(details)
        self.cluster_status.setVisible(bool(text))

    def show_queue(self, has_items: bool) -> None:
        """The big drop zone while the queue is empty, the list afterwards."""
        self.queue_stack.setCurrentIndex(1 if has_items else 0)

    def set_queue_summary(self, text: str, *, can_clear: bool) -> None:
        """The count beside the queue's title, and whether "Clear finished" is offered."""
        self.queue_count.setText(text)
        self.clear_finished_button.setVisible(can_clear)

    def offer_cluster(self, available: bool) -> None:
        """Show "Send to the cluster" (unchecked) when this PC knows a cluster."""
        self.cluster_action.setVisible(available)
        if not available:
            self.cluster_action.setChecked(False)

    def set_run_actions(self, *, can_start: bool, can_cancel: bool, can_cancel_all: bool) -> None:
        """Enable the Queue menu's run entries that make sense now."""
        self.start_action.setEnabled(can_start)
        self.cancel_action.setEnabled(can_cancel)
        self.cancel_all_action.setEnabled(can_cancel_all)

    def popup_item_menu(self, pos: QPoint, entries: list[MenuEntry]) -> None:
        """A context menu at ``pos`` (queue view coordinates) with these entries."""
        menu = QMenu(self)
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            else:
                menu.addAction(*entry)
        menu.popup(self.queue_view.viewport().mapToGlobal(pos))

    # --- intent: compare column ----------------------------------------------------------

    @property
    def open_result_button(self) -> QPushButton:
        """The compare bar's Open button (tests check that it follows the selection)."""
        return self.compare_pane.open_button

    def set_result_actions(self, *, can_open: bool, can_show_folder: bool) -> None:
        """Whether Open (the result) and Show in folder apply to the selected row."""
        self.compare_pane.set_result_actions(can_open=can_open, can_show_folder=can_show_folder)
        self.open_result_action.setEnabled(can_open)
        self.show_folder_action.setEnabled(can_show_folder)

    def show_about(self) -> None:
        """Help > About."""
        QMessageBox.about(
            self,
            "About Upscaler Edge",
            "<b>Upscaler Edge</b><br>Real-ESRGAN super-resolution on your own machine, "
            "through ncnn (any Vulkan GPU, or the CPU).<br><br>Models by Xintao Wang et al. "
            "(BSD-3-Clause).",
        )

    # --- layout kept between runs --------------------------------------------------------

    def saved_layout(self) -> WindowLayout:
        """The window's geometry, state and splitter position, for settings."""
        return WindowLayout(self.saveGeometry(), self.saveState(), self.splitter.saveState())

    def restore_layout(self, layout: WindowLayout) -> None:
        """Put back what :meth:`saved_layout` gave (empty parts are skipped)."""
        if not layout.geometry.isEmpty():
            self.restoreGeometry(layout.geometry)
        if not layout.state.isEmpty():
            self.restoreState(layout.state)
        if not layout.splitter.isEmpty():
            self.splitter.restoreState(layout.splitter)

    # --- drops anywhere on the window ----------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept local files and folders."""
        if mime_has_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """Keep accepting."""
        if mime_has_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Re-emit the dropped paths as ``files_dropped``."""
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            event.ignore()

    def showEvent(self, event: QShowEvent) -> None:
        """Start with the focus on the picture, not on the first combo box."""
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.compare.setFocus()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Let the controller save settings and stop workers first."""
        self.closing.emit()
        super().closeEvent(event)
