"""Small helpers shared by the window tests (real drag-and-drop events, waiting on the queue)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget
from upscaler_edge_gui.controller import MainController
from upscaler_edge_gui.queue_model import ItemState

JOB_TIMEOUT_MS = 60_000


def drop_paths(widget: QWidget, paths: Iterable[Path]) -> QMimeData:
    """Drag ``paths`` onto ``widget`` and drop them, as a file manager would: a QMimeData with
    file URLs, a drag-enter the widget must accept, then the drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.rect().center())
    with warnings.catch_warnings():
        # Qt 6 marks the QPoint constructor deprecated but PySide6 offers no QPointF one
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            pos.toPoint(),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the drop target refused the drag"
    drop = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, drop)
    assert drop.isAccepted(), "the drop was not accepted"
    return mime


def run_queue(qtbot, controller: MainController, timeout: int = JOB_TIMEOUT_MS) -> None:
    """Press Upscale and wait until the run has nothing left to do."""
    with qtbot.waitSignal(controller.queue_idle, timeout=timeout):
        controller.window.panel.start_button.click()


def states(controller: MainController) -> dict[str, ItemState]:
    """File name -> state, for every row."""
    return {item.name: item.state for item in controller.model}
