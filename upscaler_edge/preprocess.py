"""What one tile's model input is, and where its output goes: the models' own arithmetic.

Pure numpy, no ncnn. A :class:`~upscaler_edge.tiling.Tile` says which input pixels a tile keeps
(its core) and reads (its window, up to ``edge_pad`` pixels beyond the image's edges). A model
may need more than that (see :class:`~upscaler_edge.models.ModelSpec`):

- its window's offset from the padded image's corner and its sides in multiples of ``align``
  (the net's strides: a tile then computes exactly the values the whole image computes there);
  the window grows left/up and right/down to the next multiple, never past the padded image
  on the left/top, and on the right/bottom by at most ``align - 1`` pixels, as the references
  pad the whole image;
- pixels beyond the image made by ``border`` (mirrored or repeated);
- the net eats ``prepadding`` pixels on each side, so its output covers the window less that
  margin.

The whole image is the one-tile case, so a tiled run and a whole-image run agree wherever the
model itself is local (and, for squeeze-and-excitation models, once ``se_sync`` shares the
whole-image averages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .models import ModelSpec
    from .tiling import Tile

__all__ = ["cut", "model_window", "output_crop", "tta_forward", "tta_inverse", "whole_window"]

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge"}


def _align_axis(w0: int, w1: int, corner: int, align: int) -> tuple[int, int]:
    """[w0, w1) grown so that its start is ``corner`` plus a multiple of ``align`` and its
    length a multiple of ``align``."""
    a0 = w0 - (w0 - corner) % align
    a1 = a0 + -(-(w1 - a0) // align) * align
    return a0, a1


def model_window(t: Tile, spec: ModelSpec) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the input pixels the model reads for tile ``t``, aligned."""
    corner = -spec.edge_pad
    x0, x1 = _align_axis(t.wx0, t.wx1, corner, spec.align)
    y0, y1 = _align_axis(t.wy0, t.wy1, corner, spec.align)
    return x0, y0, x1, y1


def whole_window(width: int, height: int, spec: ModelSpec) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): what one whole-image inference reads (the image, padded)."""
    e = spec.edge_pad
    corner = -e
    x0, x1 = _align_axis(-e, width + e, corner, spec.align)
    y0, y1 = _align_axis(-e, height + e, corner, spec.align)
    return x0, y0, x1, y1


def cut(
    src: np.ndarray, window: tuple[int, int, int, int], spec: ModelSpec, maxval: float
) -> np.ndarray:
    """``window`` of ``src`` (H, W, 3), padded beyond the image's edges as ``spec.border``
    says, as the model's input: float32 (3, h, w) in [0, 1]."""
    h, w = src.shape[:2]
    wx0, wy0, wx1, wy1 = window
    win = src[max(wy0, 0) : min(wy1, h), max(wx0, 0) : min(wx1, w)]
    if wx0 < 0 or wy0 < 0 or wx1 > w or wy1 > h:
        pads = ((max(-wy0, 0), max(wy1 - h, 0)), (max(-wx0, 0), max(wx1 - w, 0)), (0, 0))
        mode = _NUMPY_MODE[spec.border]
        if mode == "reflect" and min(win.shape[:2]) < 2:
            mode = "edge"  # nothing to mirror in a one-pixel row or column
        win = np.pad(win, pads, mode=mode)  # type: ignore[call-overload]
    x = np.ascontiguousarray(win.transpose(2, 0, 1), dtype=np.float32)
    x *= 1.0 / maxval
    return x


def output_crop(t: Tile, spec: ModelSpec) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the tile's core within the model's output for its window, in
    output pixels."""
    s, p = spec.scale, spec.prepadding
    ax0, ay0, _, _ = model_window(t, spec)
    return (
        (t.x0 - ax0 - p) * s,
        (t.y0 - ay0 - p) * s,
        (t.x1 - ax0 - p) * s,
        (t.y1 - ay0 - p) * s,
    )


# the 8 flips/transposes of a (C, H, W) array (k: bit 4 transpose, then bit 2 flip rows, bit 1
# flip columns) and their inverses: the references' TTA
def tta_forward(x: np.ndarray, k: int) -> np.ndarray:
    if k & 4:
        x = x.transpose(0, 2, 1)
    if k & 2:
        x = x[:, ::-1, :]
    if k & 1:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x)


def tta_inverse(y: np.ndarray, k: int) -> np.ndarray:
    if k & 1:
        y = y[:, :, ::-1]
    if k & 2:
        y = y[:, ::-1, :]
    if k & 4:
        y = y.transpose(0, 2, 1)
    return y
