"""Whole-image squeeze-and-excitation values for a tiled run, so tiles match one inference.

Real-CUGAN and waifu2x CUNet scale their features by a function of each feature map's global
average (``Pooling`` with global average, the blobs in ``ModelSpec.se_blobs``). A tile that
computes its own averages sees only its part of the image and disagrees with its neighbours
(33-37 dB against the whole image). The reference's accurate ``syncgap`` mode runs every tile
up to the first pool, averages the tiles' values, feeds that average to every tile for the
next pool, and so on; its average is over tiles, not pixels.

We do the same staged passes, but sum each feature map over a partition of the whole image's
feature map: these nets use only valid convolutions, and with each tile's window aligned to the
net's strides (``preprocess.model_window``) a tile's feature map is exactly a rectangle of the
whole image's. Cutting the whole map between neighbouring tiles (in the middle of their
overlap) and adding up every tile's piece gives the whole image's sum, hence its average,
whatever the tile size. One pass per pool (each runs the net only up to that pool), then the
real pass with all averages fed in. With TTA each of the 8 transforms has its own averages, as
in a whole-image TTA run.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .preprocess import cut, model_window, tta_forward, whole_window

if TYPE_CHECKING:
    from .models import ModelSpec
    from .tiling import Tile

__all__ = ["Features", "needed", "passes", "shared_means"]

log = logging.getLogger(__name__)

#: engine.features: (window, blob name, fed blobs) -> (C, h, w) feature map
Features = Callable[[np.ndarray, str, Mapping[str, np.ndarray]], np.ndarray]


def needed(spec: ModelSpec, tiles: Sequence[Tile]) -> bool:
    """Whether a run of ``tiles`` must share squeeze-and-excitation values."""
    return bool(spec.se_blobs) and len(tiles) > 1


def passes(spec: ModelSpec, tiles: Sequence[Tile]) -> int:
    """How many times each tile is visited (for progress): the stats passes, then the run."""
    return 1 + (len(spec.se_blobs) if needed(spec, tiles) else 0)


@functools.lru_cache(maxsize=64)
def _pool_inputs(param_path: Path) -> dict[str, str]:
    from .ncnn_param import global_pools

    return {top: bottom for bottom, top in global_pools(param_path)}


_geometries: dict[tuple[str, str], tuple[Fraction, Fraction]] = {}


def _geometry(features: Features, spec: ModelSpec, blob: str) -> tuple[Fraction, Fraction]:
    """(r, c) with the blob's side = r * n - c for an aligned window side n (probed once per
    model on two small black windows). The probes of later pools are fed the earlier pools'
    values of the same window (what the net computes itself), so they run the same graphs
    as the real passes: an engine that compiles one graph per set of fed blobs compiles no
    extra one for the probe."""
    key = (str(spec.param_path), blob)
    if key not in _geometries:
        step = 4 * spec.align
        n1 = -(-(2 * spec.prepadding + 64) // step) * step
        n2 = n1 + step
        pools = _pool_inputs(spec.param_path)
        fed: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
        for se_blob in spec.se_blobs:
            pooled = pools.get(se_blob)
            if pooled is None:
                break
            maps = [
                features(np.zeros((3, n, n), np.float32), pooled, feeds)
                for n, feeds in zip((n1, n2), fed, strict=True)
            ]
            f1, f2 = maps[0].shape[-1], maps[1].shape[-1]
            r = Fraction(f2 - f1, n2 - n1)
            _geometries[(str(spec.param_path), pooled)] = (r, r * n1 - f1)
            for feeds, f in zip(fed, maps, strict=True):
                feeds[se_blob] = f.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
        if key not in _geometries:
            raise ValueError(f"model {spec.name}: {blob!r} is not a pool's input")
    return _geometries[key]


def _pieces(
    spans: list[tuple[int, int]], whole: tuple[int, int], flipped: bool, r: Fraction, c: Fraction
) -> dict[tuple[int, int], tuple[int, int]] | None:
    """For each window span [a0, a1) along one axis, the part of its feature row it adds to
    the sum, in its own feature coordinates: the pieces partition the whole image's feature
    row. None when the windows cannot be lined up exactly (then the caller approximates)."""
    a_lo, a_hi = whole
    placed: list[tuple[int, int, tuple[int, int]]] = []
    for a0, a1 in spans:
        offset = (a_hi - a1) if flipped else (a0 - a_lo)
        first, size = r * offset, r * (a1 - a0) - c
        if first.denominator != 1 or size.denominator != 1 or size <= 0:
            return None
        placed.append((int(first), int(first + size), (a0, a1)))
    placed.sort()
    total = r * (a_hi - a_lo) - c
    if total.denominator != 1:
        return None
    out: dict[tuple[int, int], tuple[int, int]] = {}
    lo = 0
    for i, (start, end, span) in enumerate(placed):
        hi = int(total) if i == len(placed) - 1 else (placed[i + 1][0] + end) // 2
        if lo < start or hi > end or hi < lo:
            return None  # a gap between windows: not enough context for an exact sum
        out[span] = (lo - start, hi - start)
        lo = hi
    return out


def shared_means(
    features: Features,
    src: np.ndarray,
    tiles: Sequence[Tile],
    spec: ModelSpec,
    maxval: float,
    transforms: Sequence[int] = (0,),
    step: Callable[[], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """The whole image's value of each of ``spec.se_blobs``, for each TTA transform in
    ``transforms``: one dict per transform, to feed to every tile's inference.

    ``src`` is the (H, W, 3) plane, ``maxval`` its white. ``step`` is called once per tile and
    pool (progress; it may raise Cancelled). Each pass runs the net only up to the pool.
    """
    h, w = src.shape[:2]
    wx0, wy0, wx1, wy1 = whole_window(w, h, spec)
    pools = _pool_inputs(spec.param_path)
    windows = [model_window(t, spec) for t in tiles]
    xspans = sorted({(x0, x1) for x0, _, x1, _ in windows})
    yspans = sorted({(y0, y1) for _, y0, _, y1 in windows})
    feeds: list[dict[str, np.ndarray]] = [{} for _ in transforms]
    for blob in spec.se_blobs:
        pooled = pools.get(blob)
        if pooled is None:
            raise ValueError(f"model {spec.name}: no global pool makes {blob!r}")
        r, c = _geometry(features, spec, pooled)
        layouts = []
        for k in transforms:
            # after the transform, rows run along x when transposed; bit 2 flips rows, 1 columns
            row_spans, row_whole = (xspans, (wx0, wx1)) if k & 4 else (yspans, (wy0, wy1))
            col_spans, col_whole = (yspans, (wy0, wy1)) if k & 4 else (xspans, (wx0, wx1))
            rows = _pieces(row_spans, row_whole, bool(k & 2), r, c)
            cols = _pieces(col_spans, col_whole, bool(k & 1), r, c)
            whole_rows = r * (row_whole[1] - row_whole[0]) - c
            whole_cols = r * (col_whole[1] - col_whole[0]) - c
            if rows is None or cols is None:
                log.info("%s: tiles do not line up for an exact %s; averaging", spec.name, blob)
            layouts.append((rows, cols, float(whole_rows * whole_cols)))
        totals = [np.zeros(0, np.float64) for _ in transforms]
        weights = [0.0 for _ in transforms]
        for (x0, y0, x1, y1), t in zip(windows, tiles, strict=True):
            x = cut(src, (x0, y0, x1, y1), spec, maxval)
            for i, k in enumerate(transforms):
                f = features(tta_forward(x, k), pooled, feeds[i])
                rows, cols, _ = layouts[i]
                row_key, col_key = ((x0, x1), (y0, y1)) if k & 4 else ((y0, y1), (x0, x1))
                if rows is not None and cols is not None:
                    (r0, r1), (c0, c1) = rows[row_key], cols[col_key]
                    part = f[:, r0:r1, c0:c1].sum(axis=(1, 2), dtype=np.float64)
                    weight = 0.0
                else:  # approximate: each tile's own average, weighted by its core's area
                    weight = float((t.x1 - t.x0) * (t.y1 - t.y0))
                    part = f.mean(axis=(1, 2), dtype=np.float64) * weight
                totals[i] = part if totals[i].size == 0 else totals[i] + part
                weights[i] += weight
            if step is not None:
                step()
        for i in range(len(transforms)):
            rows, cols, area = layouts[i]
            denom = area if rows is not None and cols is not None else weights[i]
            feeds[i][blob] = (totals[i] / denom).astype(np.float32)
    return feeds
