"""What the compare pane shows: the current row's before/after pair, or why there is none.

It follows new results until the user picks a row, loads pairs off the UI thread (only the
latest request counts) and keeps Open / Folder in step with the row.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from .loaders import LoadedPair, PairLoader
from .main_window import MainWindow
from .queue_model import ItemState, QueueItem, QueueModel

__all__ = ["CompareController"]

_WAITING = {
    ItemState.QUEUED: "Queued — press Upscale to start",
    ItemState.RUNNING: "Upscaling… the comparison appears when it is done",
    ItemState.CANCELLED: "Cancelled — use Retry to queue it again",
}
_NOTHING_SELECTED = "Select a finished image to compare it with the original"


class CompareController(QObject):
    """Signal: ``compare_ready(id)`` when the pane shows that item's pair."""

    compare_ready = Signal(int)

    def __init__(self, window: MainWindow, model: QueueModel) -> None:
        super().__init__(window)
        self._window = window
        self._pane = window.compare_pane
        self._model = model
        self._pairs = PairLoader(self)
        #: the row the pane is about (None: no current row)
        self._selected: int | None = None
        #: the item whose pair is on screen (None: none)
        self.shown: int | None = None
        #: new results take the pane until the user picks a row
        self._follow = True

        window.queue_view.current_row_changed.connect(self._on_current_row)
        model.item_changed.connect(self._on_item_changed)
        self._pairs.loaded.connect(self._on_pair)
        self._pane.frame_requested.connect(self._on_frame)
        #: the frame of each video item last compared (the slider returns there)
        self._frames: dict[int, int] = {}
        self._update_actions()

    def select(self, item_id: int, *, follow: bool = False) -> None:
        """Make ``item_id`` the current row and show it; ``follow`` keeps following results."""
        row = self._model.row_of(item_id)
        if row < 0:
            return
        self._window.queue_view.select_row(row)
        self._follow = follow

    @Slot(int)
    def show_result(self, item_id: int) -> None:
        """A new result: show it, unless the user is looking at another row."""
        if self._follow or self._selected is None:
            self.select(item_id, follow=True)

    # --- reacting ------------------------------------------------------------------------

    @Slot(int)
    def _on_current_row(self, row: int) -> None:
        self._follow = False
        if row < 0:
            self._selected = None
            self.shown = None
            self._pane.show_message("", _NOTHING_SELECTED)
            self._update_actions()
            return
        item = self._model.item_at(row)
        self._selected = item.id
        self._show(item)

    def _on_item_changed(self, item_id: int) -> None:
        if item_id == self._selected and not self._pane.is_showing_pair():
            item = self._model.item(item_id)
            if item is not None:
                self._show(item)

    def _show(self, item: QueueItem) -> None:
        if item.state is ItemState.DONE and item.dst is not None:
            # keep the last pair on screen until this one arrives
            self._pane.show_loading(item.name)
            self._window.set_result_actions(can_open=True, can_show_folder=True)
            if item.is_video:
                index = self._frames.get(item.id, 0)
                self._pane.show_frames(item.frames, index)
                self._pairs.request(item.id, item.src, item.dst, index)
            else:
                self._pane.hide_frames()
                self._pairs.request(item.id, item.src, item.dst)
            return
        if item.state is ItemState.FAILED:
            message = f"Failed: {item.error}"
        else:
            message = _WAITING.get(item.state, "")
        self._pane.show_message(item.name, message)
        self.shown = None
        self._update_actions()

    @Slot(int)
    def _on_frame(self, index: int) -> None:
        """The timeline slider moved: load that frame of the selected video."""
        item = self._model.item(self._selected) if self._selected is not None else None
        if item is None or not item.is_video or item.dst is None:
            return
        if item.state is not ItemState.DONE:
            return
        self._frames[item.id] = index
        self._pane.show_loading(item.name)
        self._pairs.request(item.id, item.src, item.dst, index)

    @Slot(int, object)
    def _on_pair(self, item_id: int, pair: LoadedPair | None) -> None:
        item = self._model.item(item_id)
        if item is None or item.id != self._selected:
            return
        if pair is None:
            self._pane.show_message(item.name, f"Cannot open {item.dst} for comparison")
            self.shown = None
            self._update_actions()
            return
        caption = f"{item.name}  →  {item.dst.name if item.dst else ''}"
        if pair.frame is not None:
            caption += f"  (frame {pair.frame + 1})"
        self._pane.show_pair(pair, caption)
        self.shown = item.id
        self._update_actions()
        self.compare_ready.emit(item.id)

    def _update_actions(self) -> None:
        item = self._model.item(self._selected) if self._selected is not None else None
        shown = self._pane.is_showing_pair()
        self._window.set_result_actions(
            can_open=item is not None and item.dst is not None and shown,
            can_show_folder=item is not None,
        )
