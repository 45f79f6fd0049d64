"""RGB frames -> encoded packets in segments: one fresh encoder per segment, so each begins
with a keyframe and can be joined to the others without re-encoding."""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from .codecs import EncoderChoice, new_encoder
from .segments import Packet, SegmentWriter

__all__ = ["SegmentEncoder"]

# AVColorSpace -> swscale's SWS_CS_* (the matrix used to go back from RGB to YUV)
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


class SegmentEncoder:
    """Encodes one segment's frames into a :class:`SegmentWriter`."""

    def __init__(self, choice: EncoderChoice, writer: SegmentWriter) -> None:
        self.choice, self.writer = choice, writer
        self._cc: Any = new_encoder(choice)
        self._durations: dict[int, int] = {}
        self._rgb_format = "rgb48le" if choice.depth == 16 else "rgb24"
        _, _, matrix, rng = choice.colors
        self._matrix = _SWS_MATRIX.get(matrix, 5)
        self._range = rng or 1

    def add(self, rgb: np.ndarray, pts: int, duration: int, raw_pts: int | None) -> None:
        """Encode one frame (presentation order; ``pts``/``duration`` in the time base)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=self._rgb_format)
        yuv = frame.reformat(
            format=self.choice.pix_fmt,
            dst_colorspace=self._matrix,
            dst_color_range=self._range,
        )
        yuv.pts = pts
        yuv.time_base = self.choice.time_base
        self._durations[pts] = duration
        self.writer.add_frame(pts, duration, raw_pts)
        self._write(self._cc.encode(yuv))

    def finish(self) -> bytes | None:
        """Flush the encoder; returns its header (extradata) for the output's stream."""
        self._write(self._cc.encode(None))
        extradata = self._cc.extradata
        self._cc = None
        return bytes(extradata) if extradata else None

    def _write(self, packets: list[Any]) -> None:
        for p in packets:
            duration = self._durations.pop(p.pts, 0) if p.pts is not None else 0
            self.writer.write(Packet(p.pts, p.dts, duration, bool(p.is_keyframe), bytes(p)))
