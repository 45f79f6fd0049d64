from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upscaler_edge.tiling import (
    MIN_TILE,
    auto_tiles,
    cpu_window_pixels,
    gpu_auto_tile,
    plan_tiles,
    split_tile,
)


def covered(tiles, w, h):
    grid = [[0] * w for _ in range(h)]
    for t in tiles:
        for y in range(t.y0, t.y1):
            for x in range(t.x0, t.x1):
                grid[y][x] += 1
    return grid


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(1, 90),
    h=st.integers(1, 90),
    tile=st.integers(0, 100),
    context=st.integers(0, 40),
)
def test_cores_cover_every_pixel_exactly_once(w, h, tile, context):
    tiles = plan_tiles(w, h, tile, context)
    assert all(v == 1 for row in covered(tiles, w, h) for v in row)
    for t in tiles:
        assert 0 <= t.wx0 <= t.x0 < t.x1 <= t.wx1 <= w
        assert 0 <= t.wy0 <= t.y0 < t.y1 <= t.wy1 <= h
        # context is real pixels: as much as asked, or up to the image edge
        assert t.x0 - t.wx0 == min(context, t.x0) or len(tiles) == 1
        assert t.wx1 - t.x1 == min(context, w - t.x1) or len(tiles) == 1
        if tile > 0:
            assert t.x1 - t.x0 <= max(tile, w if len(tiles) == 1 else 0) or len(tiles) == 1


def test_tile_larger_than_image_is_one_whole_inference():
    (t,) = plan_tiles(50, 30, 64, 16)
    assert t.core == t.window == (0, 0, 50, 30)
    (t,) = plan_tiles(50, 30, 0, 16)
    assert t.window == (0, 0, 50, 30)


def test_one_pixel_and_one_row_images():
    assert plan_tiles(1, 1, 32, 16)[0].core == (0, 0, 1, 1)
    tiles = plan_tiles(100, 1, 32, 16)
    assert [t.core for t in tiles] == [
        (0, 0, 25, 1),
        (25, 0, 50, 1),
        (50, 0, 75, 1),
        (75, 0, 100, 1),
    ]
    assert tiles[1].window == (9, 0, 66, 1)


def test_spans_are_balanced_no_sliver():
    tiles = plan_tiles(130, 40, 64, 8)
    widths = [t.x1 - t.x0 for t in tiles]
    assert widths == [44, 43, 43]
    crop = tiles[1].crop
    assert crop == (8, 0, 51, 40)


def test_split_tile_quarters_cover_the_core():
    (t,) = [x for x in plan_tiles(200, 200, 64, 16) if x.x0 > 0 and x.y0 > 0][:1]
    parts = split_tile(t, 200, 200, 16)
    assert len(parts) == 4
    assert sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in parts) == (t.x1 - t.x0) * (t.y1 - t.y0)
    assert all(p.x0 - p.wx0 == 16 for p in parts)


def test_bad_arguments():
    with pytest.raises(ValueError):
        plan_tiles(0, 5, 32, 0)
    with pytest.raises(ValueError):
        plan_tiles(5, 5, 32, -1)


def test_windows_reach_the_mirrored_edge_and_stop_there():
    tiles = plan_tiles(100, 60, 40, 16, edge=10)
    first, last = tiles[0], tiles[-1]
    assert first.window[:2] == (-10, -10)  # 10 mirrored pixels beyond the top-left corner
    assert last.window[2:] == (110, 70)
    assert first.crop[:2] == (10, 10)
    (whole,) = plan_tiles(20, 20, 0, 16, edge=10)
    assert whole.window == (-10, -10, 30, 30) and whole.crop == (10, 10, 30, 30)


def test_best_grid_is_whole_when_it_fits_and_fits_the_budget_otherwise():
    from upscaler_edge.tiling import best_grid

    assert best_grid(512, 512, 10**9, 16, 10) == (512, 512)
    tw, th = best_grid(800, 600, 60_000, 16, 10)
    tiles = plan_tiles(800, 600, tw, 16, 10, tile_h=th)
    assert max(t.window_pixels for t in tiles) <= 60_000
    # no other grid whose windows fit needs fewer pixels of inference
    total = sum(t.window_pixels for t in tiles)
    for nx in range(1, 26):
        for ny in range(1, 19):
            other = plan_tiles(800, 600, -(-800 // nx), 16, 10, tile_h=-(-600 // ny))
            if max(t.window_pixels for t in other) <= 60_000:
                assert sum(t.window_pixels for t in other) >= total


# --- the auto tile policy --------------------------------------------------------------------


def _spec(name):
    from upscaler_edge.models import default_registry

    return default_registry().resolve(name)


@pytest.mark.parametrize(
    "mb,tile", [(4000, 200), (1901, 200), (1024, 100), (551, 100), (300, 64), (191, 64), (100, 32)]
)
def test_gpu_auto_tile_follows_the_reference_heap_rule(mb, tile):
    assert gpu_auto_tile(mb) == tile
    tiles = auto_tiles(500, 450, _spec("realesrgan-x4plus"), mb, None)
    assert max(t.x1 - t.x0 for t in tiles) <= tile
    assert len(tiles) == -(-500 // tile) * -(-450 // tile)


def test_cpu_auto_tiles_fit_the_memory_budget():
    spec = _spec("realesr-animevideov3-x4")
    avail = 512 * 2**20  # a tile may take a quarter of what is available: 128 MB
    window = cpu_window_pixels(spec, 1600 * 1200 * 16 * 3, avail)
    assert window == 128 * 2**20 // spec.work_bytes_per_pixel
    tiles = auto_tiles(1600, 1200, spec, None, avail)
    assert len(tiles) > 1
    for t in tiles:
        x0, y0, x1, y1 = t.window
        assert (x1 - x0) * (y1 - y0) <= window
    covered = sum((t.x1 - t.x0) * (t.y1 - t.y0) for t in tiles)
    assert covered == 1600 * 1200


def test_cpu_auto_tile_is_the_whole_image_when_it_fits():
    spec = _spec("realesrgan-x4plus")
    assert len(auto_tiles(192, 160, spec, None, None)) == 1  # one inference, no context
    tiles = auto_tiles(4000, 3000, spec, None, None)
    assert len(tiles) > 1 and min(t.x1 - t.x0 for t in tiles) >= MIN_TILE
