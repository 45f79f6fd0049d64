"""The queue list: how a row looks (thumbnail, name, sizes, state chip, a thin progress bar)
and which rows are current and selected."""

from __future__ import annotations

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from .queue_model import ITEM_ROLE, ItemState, QueueItem

__all__ = ["STATE_COLORS", "QueueDelegate", "QueueView"]

#: Chip colour per state.
STATE_COLORS = {
    ItemState.QUEUED: QColor("#7d8596"),
    ItemState.RUNNING: QColor("#8b7dff"),
    ItemState.DONE: QColor("#3ecf8e"),
    ItemState.FAILED: QColor("#ff6b6b"),
    ItemState.CANCELLED: QColor("#e0a44a"),
}

_ROW_HEIGHT = 76
_THUMB = 56
_PAD = 10


class QueueDelegate(QStyledItemDelegate):
    """Paints one :class:`QueueItem` (read through ``ITEM_ROLE``)."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        """Fixed-height rows."""
        return QSize(200, _ROW_HEIGHT)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        """Card background, thumbnail, two text lines, state chip, progress bar."""
        item: QueueItem | None = index.data(ITEM_ROLE)
        if item is None:
            return
        p = painter
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(option.rect).adjusted(4, 3, -4, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hover = bool(option.state & QStyle.StateFlag.State_MouseOver)
        bg = QColor("#2a2740") if selected else QColor("#23262e") if hover else QColor("#1d2026")
        p.setPen(QPen(QColor("#6d5dfc") if selected else QColor("#2b2f38"), 1))
        p.setBrush(bg)
        p.drawRoundedRect(r, 10, 10)

        # thumbnail
        thumb_rect = QRectF(r.x() + _PAD, r.y() + (r.height() - _THUMB) / 2, _THUMB, _THUMB)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#2b2f38"))
        p.drawRoundedRect(thumb_rect, 6, 6)
        if item.thumbnail is not None and not item.thumbnail.isNull():
            img = item.thumbnail
            scale = min(_THUMB / img.width(), _THUMB / img.height())
            w, h = img.width() * scale, img.height() * scale
            target = QRectF(
                thumb_rect.x() + (_THUMB - w) / 2, thumb_rect.y() + (_THUMB - h) / 2, w, h
            )
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(target, img)
        else:
            p.setPen(QColor("#596070"))
            p.drawText(thumb_rect, Qt.AlignmentFlag.AlignCenter, "?")

        color = STATE_COLORS[item.state]
        text_x = thumb_rect.right() + 12
        chip_text = {
            ItemState.QUEUED: "Queued",
            ItemState.RUNNING: f"{int(item.progress * 100)}%",
            ItemState.DONE: "Done",
            ItemState.FAILED: "Failed",
            ItemState.CANCELLED: "Cancelled",
        }[item.state]
        small = QFont(option.font)
        small.setPointSizeF(option.font.pointSizeF() * 0.86)
        small_bold = QFont(small)
        small_bold.setBold(True)
        chip_w = QFontMetrics(small_bold).horizontalAdvance(chip_text) + 18
        chip = QRectF(r.right() - _PAD - chip_w, r.y() + 10, chip_w, 20)
        chip_bg = QColor(color)
        chip_bg.setAlpha(40)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(chip_bg)
        p.drawRoundedRect(chip, 10, 10)
        p.setPen(color)
        p.setFont(small_bold)
        p.drawText(chip, Qt.AlignmentFlag.AlignCenter, chip_text)

        # name
        name_font = QFont(option.font)
        name_font.setBold(True)
        p.setFont(name_font)
        p.setPen(QColor("#eef0f5"))
        name_rect = QRect(int(text_x), int(r.y() + 9), int(chip.x() - text_x - 8), 20)
        p.drawText(
            name_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            QFontMetrics(name_font).elidedText(
                item.name, Qt.TextElideMode.ElideMiddle, name_rect.width()
            ),
        )

        # sizes
        p.setFont(small)
        p.setPen(QColor("#9aa1ad"))
        width = int(r.right() - _PAD - text_x)
        size_line = item.size_text()
        if item.model and item.state is not ItemState.QUEUED:
            size_line += f"  ·  {item.model} ×{item.scale}"
        p.drawText(
            QRect(int(text_x), int(r.y() + 30), width, 18),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            QFontMetrics(small).elidedText(size_line, Qt.TextElideMode.ElideRight, width),
        )

        # state line or progress bar
        bottom = QRectF(text_x, r.y() + 52, width, 14)
        if item.state is ItemState.RUNNING:
            track = QRectF(bottom.x(), bottom.y() + 4, bottom.width(), 6)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#2f3340"))
            p.drawRoundedRect(track, 3, 3)
            fill = QRectF(track.x(), track.y(), max(6.0, track.width() * item.progress), 6)
            p.setBrush(color)
            p.drawRoundedRect(fill, 3, 3)
        else:
            line = item.state_text()
            if item.state is ItemState.DONE and item.dst is not None:
                line = f"{line}  ·  {item.dst.name}"
            p.setPen(color if item.state is ItemState.FAILED else QColor("#7d8596"))
            p.drawText(
                bottom.toRect().adjusted(0, -2, 0, 2),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                QFontMetrics(small).elidedText(line, Qt.TextElideMode.ElideRight, width),
            )
        p.restore()


class QueueView(QListView):
    """The queue list: cards, multi-selection; rows are addressed by number.

    Signals: ``current_row_changed(row)`` (-1: none), ``menu_requested(row, pos)`` on a
    right-click over a row (``pos`` in the view's coordinates).
    """

    current_row_changed = Signal(int)
    menu_requested = Signal(int, QPoint)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("QueueView")
        self.setItemDelegate(QueueDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setUniformItemSizes(True)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setSpacing(0)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.customContextMenuRequested.connect(self._on_menu)

    def currentChanged(
        self,
        current: QModelIndex | QPersistentModelIndex,
        previous: QModelIndex | QPersistentModelIndex,
    ) -> None:
        """Report the new current row."""
        super().currentChanged(current, previous)
        self.current_row_changed.emit(current.row() if current.isValid() else -1)

    def _on_menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        if index.isValid():
            self.menu_requested.emit(index.row(), pos)

    # --- intent --------------------------------------------------------------------------

    def current_row(self) -> int:
        """The current row, -1 when there is none."""
        index = self.currentIndex()
        return index.row() if index.isValid() else -1

    def selected_rows(self) -> list[int]:
        """The selected rows, top to bottom."""
        selection = self.selectionModel()
        return sorted(i.row() for i in selection.selectedRows()) if selection else []

    def select_row(self, row: int) -> None:
        """Make ``row`` the current and only selected row."""
        model = self.model()
        if model is not None and 0 <= row < model.rowCount():
            self.selectionModel().setCurrentIndex(
                model.index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
            )
