"""Pure integer tile math and the tile-size policy: no numpy, no ncnn.

An image of ``width`` x ``height`` input pixels is cut into cores of at most ``tile`` x
``tile``. Each core is read with up to ``context`` pixels of the real image around it. At the
image's edges the window reaches ``edge`` pixels beyond the image, which the caller fills by
mirroring (as the reference, and a whole-image inference of the mirrored image, do), and
stops there. After inference only the core's part of the output is pasted, so neighbouring
tiles never overwrite each other and, with enough context, the result equals one whole-image
inference.

Tile size when the user asks for auto: on a GPU the reference CLI's rule (Real-ESRGAN-ncnn-
vulkan) from the device's heap budget: > 1900 MB -> 200, > 550 MB -> 100, > 190 MB -> 64,
else 32. Bigger GPU tiles were tried and measured on an NVIDIA H200 (docs/eval/device.md):
they are 2x faster end to end but lose fidelity (tiles of 1080 px were 48 dB from tiles of
200 px, and a 4K x4plus run 10.7 dB from the reference), so a GPU gets bigger tiles only
where ``gpu_windows`` has checked that it computes them like the CPU; elsewhere it keeps the
reference's size. On the CPU the grid with the least inference
whose windows fit the model's working memory budget (``cpu_budget_mb`` plus a quarter of the
output's size, capped at a quarter of the memory available); a whole image that fits is one
tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ModelSpec

__all__ = [
    "MIN_TILE",
    "Tile",
    "auto_tiles",
    "best_grid",
    "cpu_window_pixels",
    "gpu_auto_tile",
    "plan_tiles",
    "split_tile",
]

#: The smallest tile side a user may ask for, and the smallest a failing tile is split to.
MIN_TILE = 32


@dataclass(frozen=True)
class Tile:
    """One unit of work, in input pixel coordinates (x0 inclusive, x1 exclusive).

    ``window`` is what the model reads (core + context, clipped to the image grown by
    ``edge`` on each side, so it may start below 0); ``core`` is the part whose output is
    kept. ``crop`` is the core relative to the window, in input pixels: multiply by the scale
    to cut the model's output.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    wx0: int
    wy0: int
    wx1: int
    wy1: int

    @property
    def core(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    @property
    def window(self) -> tuple[int, int, int, int]:
        return self.wx0, self.wy0, self.wx1, self.wy1

    @property
    def crop(self) -> tuple[int, int, int, int]:
        return self.x0 - self.wx0, self.y0 - self.wy0, self.x1 - self.wx0, self.y1 - self.wy0

    @property
    def window_pixels(self) -> int:
        return (self.wx1 - self.wx0) * (self.wy1 - self.wy0)


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Split ``length`` into near-equal spans of at most ``tile`` (no sliver at the end)."""
    count = -(-length // tile)
    base, extra = divmod(length, count)
    spans, start = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        spans.append((start, start + size))
        start += size
    return spans


def _make(
    x0: int, y0: int, x1: int, y1: int, width: int, height: int, context: int, edge: int
) -> Tile:
    return Tile(
        x0,
        y0,
        x1,
        y1,
        max(-edge, x0 - context),
        max(-edge, y0 - context),
        min(width + edge, x1 + context),
        min(height + edge, y1 + context),
    )


def plan_tiles(
    width: int, height: int, tile: int, context: int, edge: int = 0, tile_h: int | None = None
) -> list[Tile]:
    """Tiles covering the image row by row. ``tile`` >= the image (or 0) means one tile.

    Cores are at most ``tile`` wide and ``tile_h`` (default ``tile``) high, balanced (a 130 px
    side with tile 64 gives 44+43+43, not 64+64+2), so no tile carries a sliver whose cost is
    all context.
    """
    if width < 1 or height < 1:
        raise ValueError(f"empty image {width}x{height}")
    if context < 0 or edge < 0:
        raise ValueError("context and edge must be >= 0")
    th = tile if tile_h is None else tile_h
    if tile <= 0 or (tile >= width and th >= height):
        return [Tile(0, 0, width, height, -edge, -edge, width + edge, height + edge)]
    return [
        _make(x0, y0, x1, y1, width, height, context, edge)
        for y0, y1 in _spans(height, th)
        for x0, x1 in _spans(width, tile)
    ]


def _window_side(length: int, parts: int, context: int, edge: int) -> int:
    """The widest window along one side when it is cut into ``parts`` balanced spans."""
    core = -(-length // parts)
    if parts == 1:
        return length + 2 * edge
    return core + min(context, core) + max(min(context, core), edge)


def best_grid(
    width: int, height: int, max_window_pixels: int, context: int, edge: int = 0
) -> tuple[int, int]:
    """Core width and height of the grid whose windows each fit ``max_window_pixels`` and
    whose windows add up to the fewest pixels (the least inference). The whole image when it
    fits; never a core below MIN_TILE px (then the windows may exceed the budget)."""
    best: tuple[int, int, int] | None = None
    for nx in range(1, max(1, width // MIN_TILE) + 1):
        wx = _window_side(width, nx, context, edge)
        for ny in range(1, max(1, height // MIN_TILE) + 1):
            wy = _window_side(height, ny, context, edge)
            if wx * wy > max_window_pixels:
                continue
            total = nx * ny * wx * wy
            if best is None or total < best[0]:
                best = (total, -(-width // nx), -(-height // ny))
            break  # more rows only add context
    if best is None:
        return min(width, MIN_TILE), min(height, MIN_TILE)
    return best[1], best[2]


def split_tile(t: Tile, width: int, height: int, context: int, edge: int = 0) -> list[Tile]:
    """The four quarters of a tile's core, each with its own context: a retry at half size."""
    mx, my = (t.x0 + t.x1) // 2, (t.y0 + t.y1) // 2
    xs = [(t.x0, mx), (mx, t.x1)] if t.x1 - t.x0 > 1 else [(t.x0, t.x1)]
    ys = [(t.y0, my), (my, t.y1)] if t.y1 - t.y0 > 1 else [(t.y0, t.y1)]
    return [_make(x0, y0, x1, y1, width, height, context, edge) for y0, y1 in ys for x0, x1 in xs]


def gpu_auto_tile(heap_budget_mb: int) -> int:
    """The reference's GPU tile side, from the device's heap budget."""
    mb = heap_budget_mb
    return 200 if mb > 1900 else 100 if mb > 550 else 64 if mb > 190 else MIN_TILE


def cpu_window_pixels(spec: ModelSpec, out_bytes: int, available: int | None) -> int:
    """How many input pixels (context included) one CPU tile may hold for this model.

    The memory target is ~400 MB + 2.5x the output: the output buffer and its encoded file
    take about 1.5x of that, so tiles grow only slowly with the output. ``available`` is the
    memory free now (None: unknown), of which a tile takes at most a quarter.
    """
    budget = spec.cpu_budget_mb * 2**20 + out_bytes // 4
    if available is not None:
        budget = min(budget, max(available // 4, 64 * 2**20))
    return budget // max(1, spec.work_bytes_per_pixel)


def auto_tiles(
    width: int, height: int, spec: ModelSpec, gpu_heap_mb: int | None, available: int | None
) -> list[Tile]:
    """The tiles for an auto tile size: the reference's rule on a GPU (``gpu_heap_mb`` given),
    else the CPU's least-inference grid under the memory budget."""
    if gpu_heap_mb is not None:
        return plan_tiles(width, height, gpu_auto_tile(gpu_heap_mb), spec.context, spec.edge_pad)
    window = cpu_window_pixels(spec, width * height * spec.scale**2 * 3, available)
    tw, th = best_grid(width, height, window, spec.context, spec.edge_pad)
    return plan_tiles(width, height, tw, spec.context, spec.edge_pad, tile_h=th)
