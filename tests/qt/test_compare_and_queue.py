"""The compare widget and the queue model on their own (no jobs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage
from upscaler_edge_gui.compare import CompareView
from upscaler_edge_gui.queue_model import ItemState, QueueModel


def _solid(w: int, h: int, color: str) -> QImage:
    image = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(color))
    return image


@pytest.fixture
def view(qtbot) -> CompareView:
    v = CompareView()
    qtbot.addWidget(v)
    v.resize(400, 300)
    v.show()
    qtbot.waitExposed(v)
    v.set_images(_solid(400, 300, "#ff0000"), _solid(1600, 1200, "#0000ff"))
    return v


def test_split_shows_before_left_and_after_right(view):
    shot = view.grab().toImage()
    assert shot.pixelColor(100, 200).red() > 200  # before (red), away from labels and handle
    assert shot.pixelColor(300, 200).blue() > 200  # after (blue)
    view.set_split(0.1)
    shot = view.grab().toImage()
    assert shot.pixelColor(100, 200).blue() > 200


def test_dragging_the_split_line(qtbot, view):
    assert view.split() == 0.5
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(200, 150))
    qtbot.mouseMove(view, QPoint(100, 150))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 150))
    assert view.split() == pytest.approx(0.25)


def test_zoom_fit_and_100_percent(view):
    assert view.is_fit() and view.zoom() == pytest.approx(0.25)
    view.zoom_actual()
    assert not view.is_fit() and view.zoom() == 1.0
    assert view.image_rect().width() == 1600
    view.zoom_fit()
    assert view.is_fit() and view.image_rect().width() == pytest.approx(400)


def test_pan_by_dragging_when_zoomed_in(qtbot, view):
    view.zoom_actual()
    assert view.center() == QPointF(800, 600)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(50, 50))
    qtbot.mouseMove(view, QPoint(90, 80))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(90, 80))
    assert view.center() == QPointF(760, 570)
    assert view.split() == 0.5  # panning does not move the split
    view.pan_by(-10_000, -10_000)  # clamped at the image's edge
    assert view.center() == QPointF(1400, 1050)


def test_zoom_keeps_the_point_under_the_cursor(view):
    anchor = QPointF(100, 75)  # image point (400, 300) in fit mode
    view.set_zoom(2.0, anchor)
    rect = view.image_rect()
    assert (anchor.x() - rect.x()) / 2.0 == pytest.approx(400)
    assert (anchor.y() - rect.y()) / 2.0 == pytest.approx(300)


def test_double_click_toggles_fit_and_100(qtbot, view):
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=QPoint(300, 100))
    assert not view.is_fit() and view.zoom() == 1.0
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=QPoint(300, 100))
    assert view.is_fit()


def test_clear_shows_a_message_and_ignores_the_mouse(qtbot, view):
    view.clear("Loading…")
    assert not view.has_images()
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    assert view.split() == 0.5


def test_queue_model_rows_and_states(qtbot):
    model = QueueModel()
    ids = model.add([Path("/a.png"), Path("/b.png"), Path("/a.png")])
    assert len(ids) == 2 and model.rowCount() == 2
    assert model.add([Path("/a.png")]) == []  # already queued
    with qtbot.waitSignal(model.dataChanged):
        model.update(ids[0], state=ItemState.RUNNING, progress=0.42)
    assert model.item(ids[0]).state_text() == "Running 42%"
    assert model.next_queued().id == ids[1]
    assert model.cancel_queued() == [ids[1]]
    assert model.item(ids[1]).state_text() == "Cancelled"
    model.remove(ids)  # the running row stays
    assert [i.id for i in model] == [ids[0]]
    model.update(ids[0], state=ItemState.FAILED, error="bad header")
    assert model.item(ids[0]).state_text() == "Failed: bad header"
    assert "bad header" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    model.remove_finished()
    assert len(model) == 0


def test_pyside_refcount_guard_survives_many_calls(tmp_path):
    """Thousands of void calls and emits must not abort the interpreter (PySide6 6.12.0 on
    Python < 3.12 drops a reference to None/True on each; the package guards against it)."""
    import subprocess
    import sys

    code = (
        "import upscaler_edge_gui\n"
        "from PySide6.QtCore import QObject, Signal\n"
        "class P(QObject):\n"
        "    s = Signal()\n"
        "p = P()\n"
        "for _ in range(50_000):\n"
        "    p.setObjectName('x')\n"
        "    p.s.emit()\n"
        "print('alive')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip() == "alive"
