"""Image reads off the UI thread: queue thumbnails and the compare view's before/after pairs.

Both run on Qt's global thread pool and report through signals on the UI thread; a file Qt
cannot read yields None, never an exception (the core decides whether the item fails).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QImageReader

from .video import is_video, read_frame

__all__ = ["PREVIEW_MAX_SIDE", "THUMB_SIZE", "LoadedPair", "PairLoader", "ThumbnailLoader"]

log = logging.getLogger(__name__)

THUMB_SIZE = 112
PREVIEW_MAX_SIDE = 2400


class _Signals(QObject):
    """Signals for a QRunnable (which is not a QObject)."""

    thumbnail = Signal(int, object, object)  # item id, QSize | None, QImage | None
    pair = Signal(int, int, object)  # request number, item id, LoadedPair | None


def _read_image(path: Path, max_side: int | None = None) -> QImage:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    if max_side is not None:
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > max_side:
            reader.setScaledSize(
                size.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio)
            )
    image = reader.read()
    if image.isNull():
        log.debug("Qt cannot read %s: %s", path, reader.errorString())
    return image


class _ThumbnailTask(QRunnable):
    def __init__(self, item_id: int, path: Path, signals: _Signals) -> None:
        super().__init__()
        self._id, self._path, self._signals = item_id, path, signals

    def run(self) -> None:
        size: QSize | None = None
        image: QImage | None = None
        try:
            if is_video(self._path):
                frame = read_frame(self._path, 0)
                if frame is not None:
                    size = frame.size()
                    image = frame.scaled(
                        THUMB_SIZE,
                        THUMB_SIZE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                self._signals.thumbnail.emit(self._id, size, image)
                return
            reader = QImageReader(str(self._path))
            reader.setAutoTransform(True)
            raw = reader.size()
            if raw.isValid():
                size = raw
                thumb = _read_image(self._path, THUMB_SIZE * 2)
                if not thumb.isNull():
                    image = thumb.scaled(
                        THUMB_SIZE,
                        THUMB_SIZE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                    # EXIF rotation swaps the header's width and height
                    if (image.width() > image.height()) != (size.width() > size.height()):
                        size = size.transposed()
        except Exception:
            log.exception("thumbnail failed for %s", self._path)
        self._signals.thumbnail.emit(self._id, size, image)


class ThumbnailLoader(QObject):
    """Reads each input's size and a small thumbnail on the global thread pool.

    ``loaded(item_id, QSize | None, QImage | None)``: None where Qt cannot read the file
    (the core may still be able to, e.g. HEIC; it decides whether the item fails).
    """

    loaded = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._signals = _Signals()
        self._signals.thumbnail.connect(self.loaded)

    def request(self, item_id: int, path: Path) -> None:
        """Start loading; ``loaded`` follows on the UI thread."""
        QThreadPool.globalInstance().start(_ThumbnailTask(item_id, path, self._signals))


@dataclass
class LoadedPair:
    """Before and after images for the compare view, with display-sized previews."""

    before: QImage
    after: QImage
    before_preview: QImage
    after_preview: QImage
    #: the video frame index shown (None: a still image)
    frame: int | None = None


class _PairTask(QRunnable):
    def __init__(
        self,
        number: int,
        item_id: int,
        before: Path,
        after: Path,
        signals: _Signals,
        frame: int | None = None,
    ) -> None:
        super().__init__()
        self._number, self._id, self._signals = number, item_id, signals
        self._before, self._after, self._frame = before, after, frame

    def _read(self, path: Path) -> QImage:
        if self._frame is None:
            return _read_image(path)
        return read_frame(path, self._frame) or QImage()

    def run(self) -> None:
        pair: LoadedPair | None = None
        try:
            after = self._read(self._after)
            before = self._read(self._before)
            if not after.isNull() and not before.isNull():
                after = after.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
                before = before.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
                preview_size = after.size().scaled(
                    PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio
                )
                if preview_size.width() >= after.width():
                    preview_size = after.size()
                smooth = Qt.TransformationMode.SmoothTransformation
                ignore = Qt.AspectRatioMode.IgnoreAspectRatio
                pair = LoadedPair(
                    frame=self._frame,
                    before=before,
                    after=after,
                    before_preview=before.scaled(preview_size, ignore, smooth),
                    after_preview=after
                    if preview_size == after.size()
                    else after.scaled(preview_size, ignore, smooth),
                )
        except Exception:
            log.exception("loading %s / %s failed", self._before, self._after)
        self._signals.pair.emit(self._number, self._id, pair)


class PairLoader(QObject):
    """Loads a before/after pair off the UI thread; only the latest request is delivered.

    ``loaded(item_id, LoadedPair | None)``: None when either file cannot be read.
    """

    loaded = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._signals = _Signals()
        self._signals.pair.connect(self._on_pair)
        self._latest = 0

    def request(self, item_id: int, before: Path, after: Path, frame: int | None = None) -> None:
        """Start loading ``item_id``'s pair (of videos: frame ``frame`` of each); ``loaded``
        follows unless a newer request does."""
        self._latest += 1
        task = _PairTask(self._latest, item_id, before, after, self._signals, frame)
        QThreadPool.globalInstance().start(task)

    @Slot(int, int, object)
    def _on_pair(self, number: int, item_id: int, pair: object) -> None:
        if number == self._latest:
            self.loaded.emit(item_id, pair)
