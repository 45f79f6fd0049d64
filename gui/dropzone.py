"""The drop target and the rules for turning dropped or pasted things into image paths."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QMimeData, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from upscaler_edge.naming import IMAGE_SUFFIXES as _CORE_SUFFIXES
from upscaler_edge.naming import find_images

__all__ = ["IMAGE_SUFFIXES", "DropZone", "collect_images", "mime_has_paths", "paths_from_mime"]

log = logging.getLogger(__name__)

#: File name suffixes offered in File > Open and picked up from dropped folders (the core's).
IMAGE_SUFFIXES = tuple(sorted(_CORE_SUFFIXES))

_MAX_FILES = 10_000


def collect_images(paths: Iterable[Path]) -> list[Path]:
    """Files as given (any suffix: the core decides), folders walked for image files.

    Hidden files and folders are skipped; the result is in a stable, sorted order per folder
    and without duplicates.
    """
    seen: set[Path] = set()
    out: list[Path] = []

    def add(p: Path) -> None:
        key = p.resolve() if p.exists() else p
        if key not in seen and len(out) < _MAX_FILES:
            seen.add(key)
            out.append(p)

    for path in paths:
        if path.is_dir():
            for found in find_images(path):
                add(found)
        elif path.is_file():
            add(path)
        else:
            log.info("skipping %s: not a file or folder", path)
    return out


def paths_from_mime(mime: QMimeData) -> list[Path]:
    """Local paths in ``mime``: its file URLs, else text lines that name existing paths."""
    if mime.hasUrls():
        return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if mime.hasText():
        paths = []
        for line in mime.text().splitlines():
            text = line.strip().strip('"')
            if not text:
                continue
            if text.startswith("file:"):
                text = QUrl(text).toLocalFile()
            p = Path(text).expanduser()
            if p.exists():
                paths.append(p)
        return paths
    return []


def mime_has_paths(mime: QMimeData) -> bool:
    """Whether a drag carries anything :func:`paths_from_mime` would accept."""
    return any(u.isLocalFile() for u in mime.urls()) if mime.hasUrls() else False


class DropZone(QWidget):
    """A large dashed target: "Drop images or folders here". Clicking it asks for files.

    Signals: ``dropped(list[Path])`` with the dropped local paths (not yet expanded),
    ``clicked()``.
    """

    dropped = Signal(list)
    clicked = Signal()

    def __init__(self, parent: QWidget | None = None, *, compact: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("DropZone")
        self.setAcceptDrops(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._compact = compact
        self._hover = False
        self.setMinimumHeight(64 if compact else 220)
        self.setSizePolicy(
            QSizePolicy.Policy.Expanding,
            QSizePolicy.Policy.Fixed if compact else QSizePolicy.Policy.Expanding,
        )
        self.title = "Drop images or folders here"
        self.subtitle = "or click to browse  ·  Ctrl+V pastes"

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept drags that carry local files or folders."""
        if mime_has_paths(event.mimeData()):
            event.acceptProposedAction()
            self._hover = True
            self.update()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        """Keep accepting while over the zone."""
        if mime_has_paths(event.mimeData()):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        """Drop the highlight."""
        self._hover = False
        self.update()

    def dropEvent(self, event: QDropEvent) -> None:
        """Emit ``dropped`` with the local paths."""
        self._hover = False
        self.update()
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.dropped.emit(paths)
        else:
            event.ignore()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """A click opens the file dialog (through the controller)."""
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.clicked.emit()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Rounded dashed border, an upload arrow and two lines of text."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        accent = QColor("#8b7dff")
        rect = QRectF(self.rect()).adjusted(6, 6, -6, -6)
        p.setBrush(QColor(139, 125, 255, 38 if self._hover else 12))
        pen = QPen(accent if self._hover else QColor("#3a3f4b"), 2, Qt.PenStyle.DashLine)
        pen.setDashPattern([5, 4])
        p.setPen(pen)
        p.drawRoundedRect(rect, 14, 14)

        title_font = QFont(self.font())
        title_font.setBold(True)
        title_font.setPointSizeF(title_font.pointSizeF() * (1.0 if self._compact else 1.25))
        sub_font = QFont(self.font())
        sub_font.setPointSizeF(sub_font.pointSizeF() * 0.92)
        if self._compact:
            p.setPen(QColor("#c9cedb"))
            p.setFont(title_font)
            p.drawText(
                rect.adjusted(0, 0, 0, -16), Qt.AlignmentFlag.AlignCenter, "+  Add more images"
            )
            p.setPen(QColor("#7d8596"))
            p.setFont(sub_font)
            p.drawText(
                rect.adjusted(0, 22, 0, 0), Qt.AlignmentFlag.AlignCenter, "drop, click or paste"
            )
            p.end()
            return
        cx, cy = rect.center().x(), rect.center().y() - 34
        # a cloud-less upload glyph: a circle with an arrow
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(139, 125, 255, 46))
        p.drawEllipse(QRectF(cx - 34, cy - 34, 68, 68))
        p.setPen(QPen(accent, 4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QRectF(cx, cy - 16, 0, 32).topLeft(), QRectF(cx, cy + 14, 0, 0).topLeft())
        p.drawLine(QRectF(cx - 12, cy - 4, 0, 0).topLeft(), QRectF(cx, cy - 16, 0, 0).topLeft())
        p.drawLine(QRectF(cx + 12, cy - 4, 0, 0).topLeft(), QRectF(cx, cy - 16, 0, 0).topLeft())
        p.setPen(QColor("#eef0f5"))
        p.setFont(title_font)
        p.drawText(
            QRectF(rect.x(), cy + 46, rect.width(), 30), Qt.AlignmentFlag.AlignHCenter, self.title
        )
        p.setPen(QColor("#8a92a3"))
        p.setFont(sub_font)
        p.drawText(
            QRectF(rect.x(), cy + 78, rect.width(), 24),
            Qt.AlignmentFlag.AlignHCenter,
            self.subtitle,
        )
        p.drawText(
            QRectF(rect.x(), cy + 100, rect.width(), 24),
            Qt.AlignmentFlag.AlignHCenter,
            "PNG · JPEG · WebP · TIFF · BMP · GIF",
        )
        p.end()
