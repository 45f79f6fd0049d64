"""Before/after compare: the result with the original beneath, split by a draggable line.

Both images are drawn into the same rectangle (the original scaled up to the result's size),
the original left of the split and the result right of it. Zoom is "fit" or a factor (1.0 is
100%: one result pixel per screen pixel); pan by dragging (or the middle button), zoom with the
wheel around the cursor, double-click toggles fit / 100%.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

__all__ = ["CompareView"]

log = logging.getLogger(__name__)

_HANDLE_RADIUS = 16
_GRAB_DISTANCE = 12
_MIN_ZOOM = 0.02
_MAX_ZOOM = 16.0


def _checkerboard(cell: int = 12) -> QPixmap:
    pm = QPixmap(cell * 2, cell * 2)
    pm.fill(QColor("#1b1e24"))
    p = QPainter(pm)
    p.fillRect(0, 0, cell, cell, QColor("#22262e"))
    p.fillRect(cell, cell, cell, cell, QColor("#22262e"))
    p.end()
    return pm


class CompareView(QWidget):
    """Shows a before/after pair. Signals: ``zoom_changed(float)`` (the effective factor),
    ``split_changed(float)`` (0..1 of the widget width)."""

    zoom_changed = Signal(float)
    split_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CompareView")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self._before: QImage | None = None
        self._after: QImage | None = None
        self._before_preview: QImage | None = None
        self._after_preview: QImage | None = None
        self._split = 0.5
        self._fit = True
        self._zoom = 1.0
        self._center = QPointF()  # image point (result pixels) at the widget centre
        self._drag: str | None = None  # "split" | "pan"
        self._last_pos = QPointF()
        self._message = "Select a finished image to compare it with the original"
        self._labels = ("Before", "After")
        self._board = QBrush(_checkerboard())

    # --- content -------------------------------------------------------------------------

    def set_images(
        self,
        before: QImage,
        after: QImage,
        before_preview: QImage | None = None,
        after_preview: QImage | None = None,
    ) -> None:
        """Show a pair. ``*_preview`` are optional smaller copies used when zoomed out."""
        self._before, self._after = before, after
        self._before_preview, self._after_preview = before_preview, after_preview
        self._center = QPointF(after.width() / 2, after.height() / 2)
        self._message = ""
        self.update()
        self.zoom_changed.emit(self.zoom())

    def set_labels(self, before: str, after: str) -> None:
        """Captions drawn in the top corners (e.g. ``Original 640×480``)."""
        self._labels = (before, after)
        self.update()

    def clear(self, message: str = "") -> None:
        """Show no image, only ``message`` (e.g. "Loading…")."""
        self._before = self._after = self._before_preview = self._after_preview = None
        self._message = message
        self.update()

    def has_images(self) -> bool:
        """True when a pair is shown."""
        return self._after is not None

    def message(self) -> str:
        """The text shown in place of a pair ('' while a pair is shown)."""
        return self._message

    # --- split ---------------------------------------------------------------------------

    def split(self) -> float:
        """Where the split line is, 0 (left edge: all result) .. 1 (right edge: all original)."""
        return self._split

    def set_split(self, fraction: float) -> None:
        """Move the split line (clamped to 0..1)."""
        fraction = min(1.0, max(0.0, fraction))
        if fraction != self._split:
            self._split = fraction
            self.update()
            self.split_changed.emit(fraction)

    # --- zoom and pan --------------------------------------------------------------------

    def is_fit(self) -> bool:
        """True in fit mode (the whole image visible, re-fitted on resize)."""
        return self._fit

    def fit_zoom(self) -> float:
        """The factor that fits the whole result in the widget."""
        if self._after is None or self._after.width() == 0 or self._after.height() == 0:
            return 1.0
        return min(self.width() / self._after.width(), self.height() / self._after.height())

    def zoom(self) -> float:
        """The effective factor (screen pixels per result pixel)."""
        return self.fit_zoom() if self._fit else self._zoom

    def zoom_fit(self) -> None:
        """Fit the whole image (and keep fitting as the widget resizes)."""
        self._fit = True
        if self._after is not None:
            self._center = QPointF(self._after.width() / 2, self._after.height() / 2)
        self.update()
        self.zoom_changed.emit(self.zoom())

    def zoom_actual(self) -> None:
        """100%: one result pixel per screen pixel, centred where the view is now."""
        self.set_zoom(1.0)

    def set_zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``factor``, keeping the image point under ``anchor`` (widget coords) still."""
        if self._after is None:
            return
        factor = min(_MAX_ZOOM, max(_MIN_ZOOM, factor))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        image_pt = self._to_image(anchor)
        self._fit = False
        self._zoom = factor
        # keep image_pt under anchor: centre = image_pt - (anchor - widget centre) / zoom
        mid = QPointF(self.width() / 2, self.height() / 2)
        self._center = image_pt - (anchor - mid) / factor
        self._clamp_center()
        self.update()
        self.zoom_changed.emit(factor)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the view by a widget-pixel offset (drag direction)."""
        if self._fit or self._after is None:
            return
        self._center -= QPointF(dx, dy) / self._zoom
        self._clamp_center()
        self.update()

    def center(self) -> QPointF:
        """The image point at the widget centre (result pixels)."""
        return QPointF(self._center)

    def _clamp_center(self) -> None:
        if self._after is None:
            return
        z = self.zoom()
        half_w = self.width() / (2 * z)
        half_h = self.height() / (2 * z)
        w, h = self._after.width(), self._after.height()
        cx = w / 2 if half_w * 2 >= w else min(max(self._center.x(), half_w), w - half_w)
        cy = h / 2 if half_h * 2 >= h else min(max(self._center.y(), half_h), h - half_h)
        self._center = QPointF(cx, cy)

    def image_rect(self) -> QRectF:
        """Where the whole result lies, in widget coordinates."""
        if self._after is None:
            return QRectF()
        z = self.zoom()
        center = (
            QPointF(self._after.width() / 2, self._after.height() / 2)
            if self._fit
            else self._center
        )
        x = self.width() / 2 - center.x() * z
        y = self.height() / 2 - center.y() * z
        return QRectF(x, y, self._after.width() * z, self._after.height() * z)

    def _to_image(self, pos: QPointF) -> QPointF:
        rect = self.image_rect()
        z = self.zoom()
        return QPointF((pos.x() - rect.x()) / z, (pos.y() - rect.y()) / z)

    def _split_x(self) -> float:
        return self._split * self.width()

    # --- painting ------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        """A comfortable default size."""
        return QSize(800, 600)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Checkerboard, the original left of the split, the result right of it, the handle."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        frame = QPainterPath()
        frame.addRoundedRect(QRectF(self.rect()), 11, 11)
        p.setClipPath(frame)
        p.fillRect(self.rect(), self._board)
        if self._after is None or self._before is None:
            self._paint_message(p)
            p.end()
            return
        rect = self.image_rect()
        z = self.zoom()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, z < 4)
        use_preview = (
            self._after_preview is not None
            and self._before_preview is not None
            and self._after_preview.width() >= rect.width()
        )
        after = self._after_preview if use_preview else self._after
        before = self._before_preview if use_preview else self._before
        assert after is not None and before is not None
        visible = rect.intersected(QRectF(self.rect()))
        split_x = self._split_x()
        # the result, right of the split
        right = QRectF(split_x, visible.y(), visible.right() - split_x, visible.height())
        self._draw_part(p, after, rect, right.intersected(visible))
        # the original, left of the split, stretched to the result's rectangle
        left = QRectF(visible.x(), visible.y(), split_x - visible.x(), visible.height())
        self._draw_part(p, before, rect, left.intersected(visible))
        self._paint_handle(p, split_x)
        self._paint_labels(p, split_x)
        p.end()

    @staticmethod
    def _draw_part(p: QPainter, image: QImage, full: QRectF, target: QRectF) -> None:
        """Draw the part of ``image`` (stretched over ``full``) that falls into ``target``."""
        if target.width() <= 0 or target.height() <= 0:
            return
        sx = image.width() / full.width()
        sy = image.height() / full.height()
        source = QRectF(
            (target.x() - full.x()) * sx,
            (target.y() - full.y()) * sy,
            target.width() * sx,
            target.height() * sy,
        )
        p.drawImage(target, image, source)

    def _paint_message(self, p: QPainter) -> None:
        if not self._message:
            return
        p.setPen(QColor("#8a92a3"))
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        p.setFont(font)
        p.drawText(
            self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message
        )

    def _paint_handle(self, p: QPainter, x: float) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(0, 0, 0, 90), 4))
        p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        p.setPen(QPen(QColor("#ffffff"), 2))
        p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        cy = self.height() / 2
        p.setBrush(QColor("#ffffff"))
        p.setPen(QPen(QColor(0, 0, 0, 60), 1))
        p.drawEllipse(QPointF(x, cy), _HANDLE_RADIUS, _HANDLE_RADIUS)
        # two small arrowheads: drag me sideways
        p.setBrush(QColor("#6d5dfc"))
        p.setPen(Qt.PenStyle.NoPen)
        for direction in (-1, 1):
            tip = x + direction * 10
            path = QPainterPath()
            path.moveTo(tip, cy)
            path.lineTo(tip - direction * 6, cy - 6)
            path.lineTo(tip - direction * 6, cy + 6)
            path.closeSubpath()
            p.drawPath(path)

    def _paint_labels(self, p: QPainter, split_x: float) -> None:
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        metrics = p.fontMetrics()
        for text, left in ((self._labels[0], True), (self._labels[1], False)):
            w = metrics.horizontalAdvance(text) + 20
            h = metrics.height() + 10
            x = 14 if left else self.width() - w - 14
            if (left and split_x < x + w) or (not left and split_x > x):
                continue  # hide a label whose side is (almost) gone
            box = QRectF(x, 14, w, h)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(12, 14, 18, 190))
            p.drawRoundedRect(box, h / 2, h / 2)
            p.setPen(QColor("#f1f3f7"))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # --- interaction ---------------------------------------------------------------------

    def _near_split(self, pos: QPointF) -> bool:
        return abs(pos.x() - self._split_x()) <= max(_GRAB_DISTANCE, _HANDLE_RADIUS)

    def _can_pan(self) -> bool:
        if self._after is None or self._fit:
            return False
        rect = self.image_rect()
        return rect.width() > self.width() or rect.height() > self.height()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Left on the line: drag the split; left elsewhere or middle: pan (or jump the split
        when there is nothing to pan)."""
        pos = event.position()
        self._last_pos = pos
        if not self.has_images():
            return
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton
            and not self._near_split(pos)
            and self._can_pan()
        ):
            self._drag = "pan"
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif event.button() == Qt.MouseButton.LeftButton:
            self._drag = "split"
            self.set_split(pos.x() / max(1, self.width()))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Drag the split or pan; otherwise show what a press would do with the cursor."""
        pos = event.position()
        if self._drag == "split":
            self.set_split(pos.x() / max(1, self.width()))
        elif self._drag == "pan":
            delta = pos - self._last_pos
            self.pan_by(delta.x(), delta.y())
        elif self.has_images():
            if self._near_split(pos):
                self.setCursor(Qt.CursorShape.SplitHCursor)
            elif self._can_pan():
                self.setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.unsetCursor()
        self._last_pos = pos

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """End a drag."""
        self._drag = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Toggle fit / 100% around the clicked point."""
        if not self.has_images():
            return
        if self._fit:
            self.set_zoom(1.0, event.position())
        else:
            self.zoom_fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Zoom in or out by 25% per notch around the cursor."""
        if not self.has_images():
            return
        steps = event.angleDelta().y() / 120
        if steps:
            self.set_zoom(self.zoom() * (1.25**steps), event.position())
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Re-fit (fit mode) or keep the centre inside the image."""
        super().resizeEvent(event)
        if self._fit:
            self.zoom_changed.emit(self.zoom())
        else:
            self._clamp_center()
