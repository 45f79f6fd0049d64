"""What to do with a video beyond the image options: the encoder, its quality and speed,
the segment length that sets how much a resume can lose, and the output container."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import UsageError
from .sniff import OUTPUT_CONTAINERS

__all__ = ["CODEC_NAMES", "VideoOptions"]

#: The short codec names ``--video-codec`` takes (an FFmpeg encoder name works too).
CODEC_NAMES: tuple[str, ...] = ("h264", "hevc", "av1", "vp9")


@dataclass(frozen=True)
class VideoOptions:
    """Video settings, next to :class:`~upscaler_edge.options.Options` (model, scale, tile,
    device). Built once at the edge and passed down.

    ``codec``: ``h264``, ``hevc``, ``av1``, ``vp9`` or an FFmpeg encoder name; None picks by
    container and bit depth (see ``codecs``). ``crf``/``preset``: the encoder's quality and
    speed, None for our defaults. ``segment_seconds``: the output is encoded in independent
    pieces of about this length, each starting with a keyframe; a resume redoes at most one.
    ``resume``: False starts over, discarding what an earlier run left. ``container``: the
    FFmpeg muxer name (mp4, mov, matroska, webm); None takes it from the output's suffix, else
    the input's.
    """

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    segment_seconds: float = 10.0
    resume: bool = True
    container: str | None = None

    def __post_init__(self) -> None:
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise UsageError(f"crf {self.crf} is out of range 0..63")
        if not self.segment_seconds > 0:
            raise UsageError("the segment length must be positive")
        if self.container is not None and self.container not in OUTPUT_CONTAINERS:
            raise UsageError(
                f"cannot write video container {self.container!r}: "
                f"use one of {', '.join(OUTPUT_CONTAINERS)}"
            )
        if self.preset is not None and not self.preset.strip():
            raise UsageError("the preset must not be empty")

    def replace(self, **changes: object) -> VideoOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
