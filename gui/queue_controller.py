"""The queue's rows: adding files, their thumbnails and predicted sizes, selection, removal.

It changes the :class:`~upscaler_edge_gui.queue_model.QueueModel` and tells the window what
the queue looks like (``show_queue``, ``set_queue_summary``); it never starts work.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Slot
from PySide6.QtGui import QImage

from .dropzone import collect_images
from .loaders import ThumbnailLoader
from .main_window import MainWindow
from .queue_model import ItemState, QueueItem, QueueModel, scaled_size
from .video import is_video

__all__ = ["QueueController"]


class QueueController(QObject):
    """Keeps one window's queue column in step with its model."""

    def __init__(self, window: MainWindow, model: QueueModel) -> None:
        super().__init__(window)
        self._window = window
        self._model = model
        self._thumbnails = ThumbnailLoader(self)
        self._thumbnails.loaded.connect(self._on_thumbnail)
        model.counts_changed.connect(self.refresh)
        window.clear_finished_action.triggered.connect(model.remove_finished)
        window.remove_action.triggered.connect(self.remove_selected)
        self.refresh()

    # --- adding --------------------------------------------------------------------------

    def add(self, paths: Iterable[Path]) -> tuple[list[int], int]:
        """Queue files (folders are walked for images) and start reading their thumbnails.

        Returns the new item ids and how many images were found (the difference were
        already queued)."""
        files = collect_images(Path(p) for p in paths)
        ids = self._model.add(files)
        for item_id in ids:
            item = self._model.item(item_id)
            if item is not None:
                if is_video(item.src):
                    self._model.update(item_id, is_video=True)
                self._thumbnails.request(item_id, item.src)
        self.refresh()
        return ids, len(files)

    @Slot(int, object, object)
    def _on_thumbnail(self, item_id: int, size: QSize | None, image: QImage | None) -> None:
        item = self._model.item(item_id)
        if item is None:
            return
        in_size = (size.width(), size.height()) if size is not None else item.in_size
        changes: dict[str, object] = {"thumbnail": image, "in_size": in_size}
        if item.state in (ItemState.QUEUED, ItemState.RUNNING):
            scale = item.scale or self._window.panel.values().scale
            changes["out_size"] = scaled_size(in_size, scale)
        self._model.update(item_id, **changes)

    def predict_sizes(self, scale: int) -> None:
        """Queued rows show their output size at ``scale`` (the panel's scale changed)."""
        for item in self._model:
            if item.state is ItemState.QUEUED:
                self._model.update(item.id, out_size=scaled_size(item.in_size, scale))

    # --- selection -----------------------------------------------------------------------

    def current_item(self) -> QueueItem | None:
        """The row the user is on (None: none)."""
        row = self._window.queue_view.current_row()
        return self._model.item_at(row) if row >= 0 else None

    def selected_ids(self) -> list[int]:
        """Ids of the selected rows, in list order."""
        return [self._model.item_at(r).id for r in self._window.queue_view.selected_rows()]

    def requeue_selected(self) -> list[int]:
        """Queue the selected finished items again (done ones run again with the current
        settings, into a new file unless overwriting is on); returns their ids."""
        again = []
        for item_id in self.selected_ids():
            item = self._model.item(item_id)
            if item is not None and item.state.finished:
                self._model.update(
                    item_id, state=ItemState.QUEUED, error=None, progress=0.0, dst=None
                )
                again.append(item_id)
        return again

    def remove_selected(self) -> None:
        """Remove the selected items that are not running."""
        self._model.remove(self.selected_ids())

    # --- showing -------------------------------------------------------------------------

    def refresh(self) -> None:
        """The drop zone or the list, the "2 of 3 done" count, "Clear finished"."""
        m = self._model
        total = len(m)
        self._window.show_queue(total > 0)
        done = m.count(ItemState.DONE)
        failed = m.count(ItemState.FAILED)
        summary = f"{done} of {total} done" if total else ""
        if failed:
            summary += f"  ·  {failed} failed"
        finished = m.count(ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED)
        self._window.set_queue_summary(summary, can_clear=finished > 0)
