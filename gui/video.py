"""Videos in the window: telling them from images, their default output name, one frame of
them as a QImage (PyAV: seek + decode), and the queue row's progress text.

Nothing here needs PyAV to import; frame reads return None when it is missing or the file
cannot be decoded (the row then fails with the core's or :data:`MISSING_PYAV`'s reason).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QImage

if TYPE_CHECKING:
    from upscaler_edge.video import VideoProgress

__all__ = [
    "MISSING_PYAV",
    "VIDEO_SUFFIXES",
    "is_video",
    "progress_text",
    "read_frame",
    "video_output_name",
]

log = logging.getLogger(__name__)

#: File name suffixes offered as videos in File > Open (content decides for others).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".mov")

#: The one line a video row fails with where PyAV is not installed.
MISSING_PYAV = 'videos need PyAV: pip install "upscaler-edge[video]"'


def is_video(path: Path) -> bool:
    """True for a video: content that ``sniff`` calls a video, or a video suffix where the
    content says nothing. Image suffixes are taken at their word (no disk read for them, so
    queueing a big folder of photos stays quick)."""
    from upscaler_edge.naming import IMAGE_SUFFIXES
    from upscaler_edge.video import sniff

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False

    kind = sniff(path)
    if kind is not None:
        return kind == "video"
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_available() -> bool:
    """True when PyAV can be imported."""
    from upscaler_edge.video import available

    return available()


def video_output_name(src: Path, scale: int) -> str:
    """``NAME_xS.ext`` in the input's container (as ``default_video_output`` names it),
    without loading PyAV: MP4 for inputs whose container we do not write, Matroska for
    Matroska-like content."""
    from upscaler_edge.naming import output_name
    from upscaler_edge.video import container_for_suffix
    from upscaler_edge.video.sniff import CONTAINER_SUFFIX

    container = container_for_suffix(src)
    if container is None:
        try:
            with open(src, "rb") as fh:
                container = "matroska" if fh.read(4) == b"\x1a\x45\xdf\xa3" else "mp4"
        except OSError:
            container = "mp4"
    return output_name(src, scale, CONTAINER_SUFFIX[container])


def _to_qimage(frame: Any) -> QImage:
    rgb = frame.to_ndarray(format="rgb24")
    h, w = rgb.shape[:2]
    return QImage(rgb.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def frame_count(path: Path) -> int | None:
    """The number of frames the container declares (None when unknown or unreadable)."""
    try:
        import av

        with av.open(str(path)) as container:
            vs = container.streams.video[0]
            if vs.frames:
                return int(vs.frames)
            if vs.duration and vs.average_rate:
                return max(1, round(float(vs.duration * vs.time_base * vs.average_rate)))
    except Exception:
        log.debug("cannot count the frames of %s", path, exc_info=True)
    return None


def read_frame(path: Path, index: int = 0) -> QImage | None:
    """Frame ``index`` (0-based, in display order) of ``path`` as an RGB QImage: a seek to the
    keyframe before it, then decoding up to it. None when PyAV is missing or it cannot be read;
    past the end gives the last frame."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            rate = float(vs.average_rate or vs.guessed_rate or 25)
            tb = float(vs.time_base) if vs.time_base else 0.0
            start = (vs.start_time or 0) * tb
            target = start + index / rate
            if index > 0 and tb > 0:
                try:
                    container.seek(int(target / tb), stream=vs, backward=True, any_frame=False)
                except av.error.FFmpegError:
                    container.seek(0)
            last = None
            position = 0
            for frame in container.decode(vs):
                last = frame
                if frame.time is not None and tb > 0:
                    if frame.time >= target - 0.5 / rate:
                        break
                else:  # no timestamps: count from the start
                    if position >= index:
                        break
                    position += 1
            return _to_qimage(last) if last is not None else None
    except Exception:
        log.debug("cannot read frame %d of %s", index, path, exc_info=True)
        return None


def progress_text(p: VideoProgress) -> str:
    """A video row's progress: ``frame 12/300 · 3.4 fps · 1:25 left`` (or joining)."""
    if p.phase == "joining":
        return "joining segments"
    total = f"/{p.frames_total}" if p.frames_total else ""
    parts = [f"frame {p.frames_done}{total}"]
    if p.fps > 0:
        parts.append(f"{p.fps:.1f} fps")
    if p.eta_seconds is not None:
        s = round(p.eta_seconds)
        parts.append(f"{s // 60}:{s % 60:02d} left")
    return " · ".join(parts)
