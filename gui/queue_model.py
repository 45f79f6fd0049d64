"""The upscale queue as a Qt list model: one row per input image and its state.

The model owns the rows and nothing else: it never starts work, never touches the disk
(thumbnails and sizes arrive through :meth:`QueueModel.update`). Controllers change it; views
read it through :data:`ITEM_ROLE`.
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QImage

__all__ = ["ITEM_ROLE", "ItemState", "QueueItem", "QueueModel", "format_size", "scaled_size"]

log = logging.getLogger(__name__)

#: Role under which :meth:`QueueModel.data` returns the row's :class:`QueueItem`.
ITEM_ROLE = int(Qt.ItemDataRole.UserRole) + 1

_Index = QModelIndex | QPersistentModelIndex


class ItemState(enum.Enum):
    """Where an item is in its life: queued -> running -> done | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the item will not change without the user asking (retry)."""
        return self in (ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED)


def format_size(size: tuple[int, int] | None) -> str:
    """``(w, h)`` as ``"w×h"``; ``"?"`` when unknown."""
    return f"{size[0]}×{size[1]}" if size else "?"


def scaled_size(size: tuple[int, int] | None, scale: int) -> tuple[int, int] | None:
    """``size`` times ``scale`` (the predicted output size); None when unknown."""
    return (size[0] * scale, size[1] * scale) if size else None


@dataclass(frozen=True)
class QueueItem:
    """One input image in the queue. Frozen: the model swaps whole values on update.

    ``in_size``/``out_size`` are (width, height); ``out_size`` is a prediction (input size
    times scale) until the item is done, then what was written. ``progress`` is 0..1.
    """

    id: int
    src: Path
    state: ItemState = ItemState.QUEUED
    progress: float = 0.0
    in_size: tuple[int, int] | None = None
    out_size: tuple[int, int] | None = None
    error: str | None = None
    dst: Path | None = None
    model: str | None = None
    scale: int | None = None
    device: str | None = None
    seconds: float | None = None
    #: a video (frames, not tiles): ``detail`` is its progress line, ``frames`` its count
    is_video: bool = False
    detail: str | None = None
    frames: int | None = None
    thumbnail: QImage | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The file name shown in the list."""
        return self.src.name

    def state_text(self) -> str:
        """The state in the user's words: ``Running 42%``, ``Failed: <reason>``, ..."""
        if self.state is ItemState.RUNNING:
            if self.detail:
                return f"Running {int(self.progress * 100)}% · {self.detail}"
            return f"Running {int(self.progress * 100)}%"
        if self.state is ItemState.DONE:
            if self.seconds is None:
                took = ""
            elif self.seconds < 1:
                took = f" in {self.seconds * 1000:.0f} ms"
            else:
                took = f" in {self.seconds:.1f} s"
            return f"Done{took}"
        if self.state is ItemState.FAILED:
            return f"Failed: {self.error or 'unknown error'}"
        if self.state is ItemState.CANCELLED:
            return "Cancelled"
        return "Queued"

    def size_text(self) -> str:
        """``in -> out`` sizes, e.g. ``640×480 → 2560×1920``."""
        if self.in_size is None:
            return "size unknown"
        if self.out_size is None:
            return format_size(self.in_size)
        return f"{format_size(self.in_size)} → {format_size(self.out_size)}"


class QueueModel(QAbstractListModel):
    """Rows of :class:`QueueItem`, addressed by their stable ``id``.

    Emits ``item_changed(id)`` after every update and ``counts_changed()`` when states or the
    number of rows change, so controllers can refresh buttons and the overall progress.
    """

    item_changed = Signal(int)
    counts_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[QueueItem] = []
        self._ids = itertools.count(1)

    # --- Qt model API --------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt idiom)
        """Number of rows (a flat list: children of a valid parent are none)."""
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """The row's name, tooltip, thumbnail or whole :class:`QueueItem` (:data:`ITEM_ROLE`)."""
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == ITEM_ROLE:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return item.name
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(item.src), item.size_text(), item.state_text()]
            if item.dst is not None:
                lines.append(f"→ {item.dst}")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.DecorationRole:
            return item.thumbnail
        return None

    # --- reading --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[QueueItem]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def item(self, item_id: int) -> QueueItem | None:
        """The item with this id, or None when it was removed."""
        row = self.row_of(item_id)
        return None if row < 0 else self._items[row]

    def item_at(self, row: int) -> QueueItem:
        """The item in this row."""
        return self._items[row]

    def row_of(self, item_id: int) -> int:
        """The row of this id, -1 when absent."""
        for row, item in enumerate(self._items):
            if item.id == item_id:
                return row
        return -1

    def next_queued(self) -> QueueItem | None:
        """The first queued item, in list order."""
        return next((i for i in self._items if i.state is ItemState.QUEUED), None)

    def count(self, *states: ItemState) -> int:
        """How many items are in any of these states."""
        return sum(1 for i in self._items if i.state in states)

    def has_pending(self, src: Path) -> bool:
        """True when ``src`` is already queued or running (adding it again would duplicate)."""
        return any(
            i.src == src and i.state in (ItemState.QUEUED, ItemState.RUNNING) for i in self._items
        )

    # --- changing -------------------------------------------------------------------------

    def add(self, paths: Iterable[Path]) -> list[int]:
        """Append one queued row per path; returns the new ids (duplicates of pending skipped)."""
        new: list[QueueItem] = []
        for path in paths:
            if self.has_pending(path) or any(path == n.src for n in new):
                log.info("already in the queue: %s", path)
                continue
            new.append(QueueItem(id=next(self._ids), src=path))
        if not new:
            return []
        first = len(self._items)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        self._items.extend(new)
        self.endInsertRows()
        self.counts_changed.emit()
        return [i.id for i in new]

    def update(self, item_id: int, **changes: Any) -> QueueItem | None:
        """Replace fields of one item (see :class:`QueueItem`); None when it is gone."""
        row = self.row_of(item_id)
        if row < 0:
            return None
        old = self._items[row]
        new = replace(old, **changes)
        self._items[row] = new
        index = self.index(row)
        self.dataChanged.emit(index, index)
        self.item_changed.emit(item_id)
        if old.state is not new.state:
            self.counts_changed.emit()
        return new

    def remove(self, item_ids: Iterable[int]) -> None:
        """Drop rows by id (a running item must be cancelled first; it is kept)."""
        wanted = set(item_ids)
        for row in reversed(range(len(self._items))):
            item = self._items[row]
            if item.id in wanted and item.state is not ItemState.RUNNING:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._items[row]
                self.endRemoveRows()
        self.counts_changed.emit()

    def remove_finished(self) -> None:
        """Drop every done, failed or cancelled row."""
        self.remove([i.id for i in self._items if i.state.finished])

    def cancel_queued(self) -> list[int]:
        """Mark every queued item cancelled ("clear the rest"); returns their ids."""
        ids = [i.id for i in self._items if i.state is ItemState.QUEUED]
        for item_id in ids:
            self.update(item_id, state=ItemState.CANCELLED, progress=0.0)
        return ids
