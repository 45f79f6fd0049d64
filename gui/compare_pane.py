"""The compare column: a title bar (caption, zoom, Fit / 100% / Open / Folder) over the
before/after picture.

Layout only. Controllers tell it what to show through the intent methods (``show_pair``,
``show_message``, ``show_loading``, ``set_result_actions``); Open and Folder are reported as
``open_requested`` / ``folder_requested``. Fit, 100% and the zoom readout are its own business.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from .compare import CompareView
from .loaders import LoadedPair

__all__ = ["ComparePane"]


class ComparePane(QFrame):
    """Signals: ``open_requested()`` (open the result), ``folder_requested()``."""

    open_requested = Signal()
    folder_requested = Signal()
    #: the user picked another frame of a video on the timeline slider
    frame_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CompareColumn")
        self.setMinimumWidth(470)
        cl = QVBoxLayout(self)
        cl.setContentsMargins(12, 16, 16, 12)
        cl.setSpacing(10)
        bar = QHBoxLayout()
        title = QLabel("Compare")
        title.setObjectName("PaneTitle")
        self._caption = QLabel("")
        self._caption.setObjectName("Muted")
        self._caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._zoom = QLabel("")
        self._zoom.setObjectName("Muted")
        self._zoom.setMinimumWidth(48)
        self._zoom.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._fit = QPushButton("Fit")
        self._fit.setToolTip("Show the whole image (Ctrl+0)")
        self._actual = QPushButton("100%")
        self._actual.setToolTip("One result pixel per screen pixel (Ctrl+1)")
        #: public so tests can see it follow the selection
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the result in your image viewer")
        self._folder = QPushButton("Folder")
        self._folder.setToolTip("Show the folder holding the result")
        for b in (self._fit, self._actual, self.open_button, self._folder):
            b.setObjectName("ToolbarButton")
            b.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        bar.addWidget(title)
        bar.addWidget(self._caption, 1)
        bar.addWidget(self._zoom)
        bar.addWidget(self._fit)
        bar.addWidget(self._actual)
        bar.addSpacing(8)
        bar.addWidget(self.open_button)
        bar.addWidget(self._folder)
        cl.addLayout(bar)
        #: the picture itself (a view of its own: zoom, split, pan)
        self.view = CompareView()
        frame = QFrame()
        frame.setObjectName("CompareFrame")
        fl = QVBoxLayout(frame)
        fl.setContentsMargins(1, 1, 1, 1)
        fl.addWidget(self.view)
        cl.addWidget(frame, 1)
        #: a finished video's timeline: which frame the pair shows (hidden for images)
        self.frame_row = QWidget()
        rl = QHBoxLayout(self.frame_row)
        rl.setContentsMargins(0, 0, 0, 0)
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setTracking(False)  # a frame per release, not per pixel dragged
        self.frame_slider.setToolTip("Pick the video frame to compare")
        self._frame_label = QLabel("")
        self._frame_label.setObjectName("Muted")
        rl.addWidget(self.frame_slider, 1)
        rl.addWidget(self._frame_label)
        self.frame_row.hide()
        cl.addWidget(self.frame_row)
        #: the video frame index of the pair on screen (None: a still image or nothing)
        self.shown_frame: int | None = None
        #: the pair on screen (None: none)
        self.shown_pair: LoadedPair | None = None
        self.frame_slider.valueChanged.connect(self.frame_requested)
        self.frame_slider.sliderMoved.connect(self._show_frame_number)

        self._fit.clicked.connect(self.view.zoom_fit)
        self._actual.clicked.connect(self.view.zoom_actual)
        self.open_button.clicked.connect(self.open_requested)
        self._folder.clicked.connect(self.folder_requested)
        self.view.zoom_changed.connect(self._show_zoom)
        self._update_tools()

    # --- intent --------------------------------------------------------------------------

    def is_showing_pair(self) -> bool:
        """True while a before/after pair is on screen."""
        return self.view.has_images()

    def show_message(self, caption: str, message: str) -> None:
        """No pair: ``message`` in the picture's place, ``caption`` beside the title."""
        self._caption.setText(caption)
        self.view.clear(message)
        self.shown_frame = None
        self.shown_pair = None
        self.hide_frames()
        self._update_tools()

    def show_loading(self, caption: str) -> None:
        """A pair is on its way: keep the one on screen until it comes, else say so."""
        self._caption.setText(caption)
        if not self.view.has_images():
            self.view.clear("Loading…")
        self._update_tools()

    def show_frames(self, count: int | None, index: int) -> None:
        """Show the timeline slider over ``count`` frames at ``index`` (None or 0: hide it)."""
        if not count:
            self.hide_frames()
            return
        slider = self.frame_slider
        slider.blockSignals(True)
        slider.setRange(0, max(0, count - 1))
        slider.setValue(min(index, count - 1))
        slider.blockSignals(False)
        self._show_frame_number(slider.value())
        self.frame_row.show()

    def hide_frames(self) -> None:
        """No timeline (an image, or nothing selected)."""
        self.frame_row.hide()

    def _show_frame_number(self, index: int) -> None:
        self._frame_label.setText(f"Frame {index + 1} / {self.frame_slider.maximum() + 1}")

    def show_pair(self, pair: LoadedPair, caption: str) -> None:
        """Show ``pair``, captioned with its sizes."""
        self.shown_frame = pair.frame
        self.shown_pair = pair
        self.view.set_images(pair.before, pair.after, pair.before_preview, pair.after_preview)
        self.view.set_labels(
            f"Before  {pair.before.width()}×{pair.before.height()}",
            f"After  {pair.after.width()}×{pair.after.height()}",
        )
        self._caption.setText(caption)
        self._update_tools()

    def set_result_actions(self, *, can_open: bool, can_show_folder: bool) -> None:
        """Whether Open (the result) and Folder apply to the selected row."""
        self.open_button.setEnabled(can_open)
        self._folder.setEnabled(can_show_folder)

    # --- own widgets ---------------------------------------------------------------------

    def _update_tools(self) -> None:
        shown = self.view.has_images()
        self._fit.setEnabled(shown)
        self._actual.setEnabled(shown)
        self._show_zoom(self.view.zoom())

    def _show_zoom(self, zoom: float) -> None:
        self._zoom.setText(f"{round(zoom * 100)}%" if self.view.has_images() else "")
