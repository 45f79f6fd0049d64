"""The main window's layout: sidebar | queue | compare, menus and the status bar.

Layout only: the window owns its widgets and actions and re-emits drops as ``files_dropped``;
:class:`upscaler_edge_gui.controller.MainController` decides what everything does.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
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
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from .compare import CompareView
from .dropzone import DropZone, mime_has_paths, paths_from_mime
from .panels import SettingsPanel
from .queue_view import QueueView

__all__ = ["MainWindow"]


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

        # compare column
        compare_col = QFrame()
        compare_col.setObjectName("CompareColumn")
        compare_col.setMinimumWidth(470)
        cl = QVBoxLayout(compare_col)
        cl.setContentsMargins(12, 16, 16, 12)
        cl.setSpacing(10)
        bar = QHBoxLayout()
        self.compare_title = QLabel("Compare")
        self.compare_title.setObjectName("PaneTitle")
        self.compare_info = QLabel("")
        self.compare_info.setObjectName("Muted")
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("Muted")
        self.zoom_label.setMinimumWidth(48)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.fit_button = QPushButton("Fit")
        self.actual_button = QPushButton("100%")
        self.open_result_button = QPushButton("Open")
        self.open_result_button.setToolTip("Open the result in your image viewer")
        self.show_folder_button = QPushButton("Folder")
        for b in (
            self.fit_button,
            self.actual_button,
            self.open_result_button,
            self.show_folder_button,
        ):
            b.setObjectName("ToolbarButton")
            b.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.show_folder_button.setToolTip("Show the folder holding the result")
        self.fit_button.setToolTip("Show the whole image (Ctrl+0)")
        self.actual_button.setToolTip("One result pixel per screen pixel (Ctrl+1)")
        self.compare_info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar.addWidget(self.compare_title)
        bar.addWidget(self.compare_info, 1)
        bar.addWidget(self.zoom_label)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        bar.addSpacing(8)
        bar.addWidget(self.open_result_button)
        bar.addWidget(self.show_folder_button)
        cl.addLayout(bar)
        self.compare = CompareView()
        frame = QFrame()
        frame.setObjectName("CompareFrame")
        fl = QVBoxLayout(frame)
        fl.setContentsMargins(1, 1, 1, 1)
        fl.addWidget(self.compare)
        cl.addWidget(frame, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("MainSplitter")
        self.splitter.addWidget(queue_col)
        self.splitter.addWidget(compare_col)
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
        self.status.addPermanentWidget(self.device_status)
        self.setStatusBar(self.status)

        self._build_actions()
        self._shown_once = False

    def _build_actions(self) -> None:
        """Menus and shortcuts (triggered signals are wired by the controller)."""

        def action(text: str, shortcut: QKeySequence | str | None = None) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            self.addAction(a)  # shortcuts work even with the menu bar hidden
            return a

        self.open_action = action("&Open images…", QKeySequence.StandardKey.Open)
        self.open_folder_action = action("Open &folder…", "Ctrl+Shift+O")
        self.paste_action = action("&Paste images", QKeySequence.StandardKey.Paste)
        self.quit_action = action("&Quit", QKeySequence.StandardKey.Quit)
        self.start_action = action("&Upscale", "Ctrl+Return")
        self.cancel_action = action("&Cancel current", "Esc")
        self.cancel_all_action = action("Cancel &all (clear the rest)", "Ctrl+Shift+Esc")
        self.retry_action = action("&Retry", "Ctrl+R")
        self.remove_action = action("&Remove from queue", QKeySequence.StandardKey.Delete)
        self.clear_finished_action = action("Clear &finished")
        self.fit_action = action("Zoom to &fit", "Ctrl+0")
        self.actual_action = action("Zoom &100%", "Ctrl+1")
        self.about_action = action("&About Upscaler Edge")

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for a in (self.open_action, self.open_folder_action, self.paste_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        queue_menu = menus.addMenu("&Queue")
        for a in (self.start_action, self.cancel_action, self.cancel_all_action):
            queue_menu.addAction(a)
        queue_menu.addSeparator()
        for a in (self.retry_action, self.remove_action, self.clear_finished_action):
            queue_menu.addAction(a)
        view_menu = menus.addMenu("&View")
        view_menu.addAction(self.fit_action)
        view_menu.addAction(self.actual_action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def show_queue(self, has_items: bool) -> None:
        """The big drop zone while the queue is empty, the list afterwards."""
        self.queue_stack.setCurrentIndex(1 if has_items else 0)

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
