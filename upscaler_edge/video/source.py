"""A video file -> its facts (:class:`VideoInfo`) and its frames as RGB arrays, in order.

Frames come out as ``(H, W, 3)`` uint8 (8-bit sources) or uint16 (deeper ones, decoded to
``rgb48le``) in *displayed* orientation: a rotation tag (display matrix) is applied to the
pixels. The colour conversion uses the stream's own matrix and range; transfer and primaries
are not touched (HDR stays PQ/HLG code values), the encoder converts back with the same
matrix, so the round trip keeps the colours whatever the tags say.

Timestamps are the stream's own, in its time base, made strictly increasing (a repeated or
backwards timestamp moves one tick past the previous one); each frame's duration is the gap
to the next frame (containers often state a nominal one), the last frame keeps its own.

FFmpeg reads every video container; animated WebP (which FFmpeg cannot decode) and GIF are
read with Pillow, in milliseconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import ImageTooLargeError, InputError
from .sniff import sniff

__all__ = ["ColorTags", "FrameReader", "ResumePoint", "SourceFrame", "VideoInfo", "probe_video"]

log = logging.getLogger(__name__)

_CHROMA = {(1, 1): "420", (1, 0): "422", (0, 0): "444"}


@dataclass(frozen=True)
class ColorTags:
    """FFmpeg's colour enums (AVColorPrimaries, AVColorTransferCharacteristic, AVColorSpace,
    AVColorRange); 2 / 0 mean unspecified."""

    primaries: int = 2
    trc: int = 2
    matrix: int = 2
    range: int = 0


@dataclass(frozen=True)
class VideoInfo:
    """What a video is. Sizes are as displayed (after ``rotation``)."""

    path: Path
    container: str  # FFmpeg's demuxer name, or "gif" / "webp" for Pillow-read animations
    codec: str
    width: int
    height: int
    rotation: int  # degrees counter-clockwise the stored picture is turned for display
    time_base: Fraction
    frames: int | None  # from the header (exact) or duration x rate (estimate); None unknown
    rate: Fraction | None
    duration: float | None  # seconds
    depth: int  # 8, or 16 for sources deeper than 8 bits (decoded to 16-bit RGB)
    chroma: str  # "420", "422", "444" (RGB and palette sources count as 420)
    colors: ColorTags
    mastering_display: bytes | None = None  # AVMasteringDisplayMetadata, as FFmpeg lays it out
    content_light: bytes | None = None  # AVContentLightMetadata
    animation: bool = False  # read with Pillow

    @property
    def default_frame_duration(self) -> int:
        """One frame at the average rate, in time-base ticks (at least 1)."""
        rate = self.rate or Fraction(25)
        return max(1, round(1 / (rate * self.time_base)))


@dataclass
class SourceFrame:
    """One decoded frame: ``index`` from 0, ``pts``/``duration`` in the time base."""

    index: int
    pts: int
    duration: int
    rgb: np.ndarray
    raw_pts: int | None = None  # as decoded; differs from pts where pts had to be fixed


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run picks up: after ``frames`` frames, the last of which had ``pts``
    (normalised) and ``raw_pts`` (as decoded); ``seek_pts`` is a safe place to seek to."""

    frames: int
    pts: int
    raw_pts: int | None
    seek_pts: int | None


def _input_error(path: Path, exc: BaseException) -> InputError:
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split())[:160]
    return InputError(f"cannot read {path.name} as a video: {text or type(exc).__name__}")


def probe_video(path: str | Path, *, max_pixels: int | None = None) -> VideoInfo:
    """Open ``path``, read its first frame and return what it is. Raises InputError for
    anything that is not a readable video (or animation), ImageTooLargeError when a frame
    has more than ``max_pixels``."""
    path = Path(path)
    with open_reader(path) as reader:
        info = reader.info
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise ImageTooLargeError(
            f"{path.name}: frames are {info.width}x{info.height}, over the "
            f"{max_pixels / 1e6:g} MP cap"
        )
    return info


def open_reader(path: Path) -> FrameReader:
    """The reader for ``path``: Pillow for GIF/WebP, FFmpeg for the rest."""
    if sniff(path) == "animation":
        return _PillowReader(path)
    return _AvReader(path)


class FrameReader:
    """Frames of one video, decoded in presentation order. Use as a context manager."""

    info: VideoInfo

    def frames(self, resume: ResumePoint | None = None, *, skip: int = 0) -> Iterator[SourceFrame]:
        """The frames after ``resume`` (None: from the first), less the next ``skip`` ones:
        those are decoded for their timestamps (so the rest are timed exactly as in a pass
        over the whole video) but never converted or yielded."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.rot90(rgb, rotation // 90) if rotation else rgb


def _timed(
    frames: Iterator[tuple[int | None, int, Any]], info: VideoInfo, last_pts: int | None = None
) -> Iterator[tuple[int, int | None, int, Any]]:
    """(raw_pts, nominal duration, frame) -> (pts, raw_pts, duration, frame): pts strictly
    increasing (after ``last_pts``, the frame before these), each duration the gap to the
    next frame."""
    prev: tuple[int, int | None, int, Any] | None = None
    for raw, nominal, frame in frames:
        if raw is None:
            pts = 0 if last_pts is None else last_pts + info.default_frame_duration
        else:
            pts = raw if last_pts is None or raw > last_pts else last_pts + 1
        if prev is not None:
            yield prev[0], prev[1], pts - prev[0], prev[3]
        prev = (pts, raw, nominal, frame)
        last_pts = pts
    if prev is not None:
        yield prev[0], prev[1], max(1, prev[2] or info.default_frame_duration), prev[3]


class _AvReader(FrameReader):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._container: Any = av.open(str(path), metadata_errors="replace")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise _input_error(path, exc) from exc
        try:
            self.info = self._probe()
        except BaseException:
            self._container.close()
            raise

    def close(self) -> None:
        self._container.close()

    def _stream(self) -> Any:
        streams = [s for s in self._container.streams.video if not _is_cover_art(s)]
        if not streams:
            raise InputError(f"{self.path.name} has no video stream")
        return streams[0]

    def _probe(self) -> VideoInfo:
        c = self._container
        if c.format.name.endswith("_pipe") or c.format.name == "image2":
            raise InputError(f"{self.path.name} is a still image, not a video")
        vs = self._stream()
        try:
            first = next(self._decode(vs), None)
        except (av.FFmpegError, OSError) as exc:
            raise _input_error(self.path, exc) from exc
        if first is None:
            raise InputError(f"{self.path.name}: no video frame could be decoded")
        fmt = first.format
        depth = 16 if fmt.components and max(comp.bits for comp in fmt.components) > 8 else 8
        chroma = "420"
        if not fmt.is_rgb and fmt.name not in ("pal8", "gray", "gray10le", "gray16le"):
            cw = int(math.log2(max(1, fmt.width // max(1, fmt.chroma_width(fmt.width)))))
            ch = int(math.log2(max(1, fmt.height // max(1, fmt.chroma_height(fmt.height)))))
            chroma = _CHROMA.get((cw, ch), "420")
        rotation = _rotation_of(first)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        rate = vs.average_rate or vs.guessed_rate
        tb = vs.time_base or Fraction(1, 1000)
        duration = None
        if vs.duration is not None and vs.duration > 0:
            duration = float(vs.duration * tb)
        elif c.duration:
            duration = c.duration / 1_000_000
        frames = vs.frames or None
        if frames is None and duration is not None and rate:
            frames = max(1, round(duration * rate))
        mdm = cll = None
        for sd in first.side_data:
            name = getattr(sd.type, "name", "")
            if name == "MASTERING_DISPLAY_METADATA":
                mdm = bytes(sd)
            elif name == "CONTENT_LIGHT_LEVEL":
                cll = bytes(sd)
        cc = vs.codec_context
        colors = ColorTags(
            primaries=int(first.color_primaries or cc.color_primaries or 2),
            trc=int(first.color_trc or cc.color_trc or 2),
            matrix=int(first.colorspace or cc.colorspace or 2),
            range=int(first.color_range or cc.color_range or 0),
        )
        info = VideoInfo(
            path=self.path,
            container=c.format.name.split(",")[0],
            codec=cc.name,
            width=w,
            height=h,
            rotation=rotation,
            time_base=tb,
            frames=frames,
            rate=Fraction(rate) if rate else None,
            duration=duration,
            depth=depth,
            chroma=chroma,
            colors=colors,
            mastering_display=mdm,
            content_light=cll,
        )
        # start again from the top for the real pass
        self._container.close()
        self._container = av.open(str(self.path), metadata_errors="replace")
        return info

    @staticmethod
    def _decode(vs: Any) -> Iterator[Any]:
        container = vs.container
        for packet in container.demux(vs):
            yield from packet.decode()

    def frames(self, resume: ResumePoint | None = None, *, skip: int = 0) -> Iterator[SourceFrame]:
        """Decode every frame (after ``resume``, less ``skip``), converted to RGB and rotated
        for display."""
        info = self.info
        fmt = "rgb48le" if info.depth == 16 else "rgb24"
        start = 0
        vs = self._stream()
        vs.thread_type = "AUTO"
        decoded: Iterator[Any] = self._decode(vs)
        if resume is not None and resume.frames > 0:
            decoded, start = self._skip(vs, resume)
        index = start
        first = start + skip
        last = resume.pts if resume is not None and resume.frames > 0 else None
        timed = _timed(((f.pts, f.duration, f) for f in decoded), info, last)
        try:
            for pts, raw, duration, frame in timed:
                if index < first:
                    index += 1
                    continue
                rgb = frame.to_ndarray(format=fmt)
                yield SourceFrame(index, pts, duration, _rotate(rgb, info.rotation), raw)
                index += 1
        except (av.FFmpegError, OSError) as exc:
            at = f" at frame {index + 1}"
            raise InputError(
                f"{self.path.name} is damaged or truncated{at}: {_short(exc)}"
            ) from exc

    def _skip(self, vs: Any, resume: ResumePoint) -> tuple[Iterator[Any], int]:
        """Frames after the resume point, and the index of the first one. Seeks to a keyframe
        when the finished part had clean timestamps and the landing is verifiable (the first
        frame decoded is a keyframe at or before the last finished frame); else decodes from
        the start and drops the finished frames."""
        if resume.seek_pts is not None and resume.raw_pts is not None:
            try:
                self._container.seek(resume.seek_pts, stream=vs, backward=True)
                frames = self._decode(vs)
                first = next(frames, None)
                if (
                    first is not None
                    and first.key_frame
                    and first.pts is not None
                    and first.pts <= resume.raw_pts
                ):
                    it = _after(first, frames, resume.raw_pts)
                    if it is not None:
                        return it, resume.frames
            except (av.FFmpegError, OSError):
                log.debug("seek for resume failed; decoding from the start", exc_info=True)
            self._container.close()
            self._container = av.open(str(self.path), metadata_errors="replace")
            vs = self._stream()
            vs.thread_type = "AUTO"
        frames = self._decode(vs)
        for _ in range(resume.frames):
            if next(frames, None) is None:
                break
        return frames, resume.frames


def _after(first: Any, frames: Iterator[Any], raw_pts: int) -> Iterator[Any] | None:
    """``frames`` from just after the one whose pts is ``raw_pts``; None if it never comes."""
    frame = first
    while frame.pts is not None and frame.pts < raw_pts:
        frame = next(frames, None)
        if frame is None:
            return None
    if frame.pts != raw_pts:
        return None
    return frames


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def _is_cover_art(stream: Any) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _rotation_of(frame: Any) -> int:
    """The display rotation, counter-clockwise, as a multiple of 90 (others are ignored)."""
    try:
        angle = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    turns = round(angle / 90)
    if abs(angle - 90 * turns) > 1:
        log.warning("display rotation of %.1f degrees is not a multiple of 90; ignored", angle)
        return 0
    return (turns * 90) % 360


class _PillowReader(FrameReader):
    """GIF and WebP animations: Pillow composes each frame; times in milliseconds."""

    def __init__(self, path: Path) -> None:
        from PIL import Image

        self.path = path
        try:
            self._im = Image.open(path)
            n = int(getattr(self._im, "n_frames", 1))
            durations = []
            for i in range(n):
                self._im.seek(i)
                durations.append(int(self._im.info.get("duration") or 100))
            self._im.seek(0)
        except Exception as exc:
            raise _input_error(path, exc) from exc
        self._durations = durations
        total_ms = sum(durations)
        self.info = VideoInfo(
            path=path,
            container=(self._im.format or "gif").lower(),
            codec=(self._im.format or "gif").lower(),
            width=self._im.width,
            height=self._im.height,
            rotation=0,
            time_base=Fraction(1, 1000),
            frames=n,
            rate=Fraction(n * 1000, total_ms) if total_ms else None,
            duration=total_ms / 1000,
            depth=8,
            chroma="420",
            colors=ColorTags(),
            animation=True,
        )

    def close(self) -> None:
        self._im.close()

    def frames(self, resume: ResumePoint | None = None, *, skip: int = 0) -> Iterator[SourceFrame]:
        start = (resume.frames if resume is not None else 0) + skip
        pts = sum(self._durations[:start])
        try:
            for i in range(start, len(self._durations)):
                self._im.seek(i)
                rgb = np.asarray(self._im.convert("RGB"))
                yield SourceFrame(i, pts, self._durations[i], rgb)
                pts += self._durations[i]
        except Exception as exc:
            raise InputError(f"{self.path.name} is damaged or truncated: {_short(exc)}") from exc
