"""Big GPU tiles only where the device computes them like the CPU (gpu_windows)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from upscaler_edge import engine as engine_mod
from upscaler_edge import gpu_windows as gw
from upscaler_edge import pipeline as pipeline_mod
from upscaler_edge.engine import DeviceInfo, TileFault
from upscaler_edge.imageio import Frame, Picture
from upscaler_edge.models import default_registry
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler

FAST = Options(model="realesr-animevideov3", scale=2)
H200_HEAP = 143070  # MB, what ncnn reported on the H200 of docs/eval/device.md


def _spec(name="realesr-animevideov3-x2"):
    return default_registry(()).resolve(name, None, None)


def _gpu(kind="discrete", heap=H200_HEAP):
    return DeviceInfo(0, "Test GPU", kind, heap, "driver 1", True)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "gpu-windows.json"
    monkeypatch.setattr(gw, "_cache_file", lambda: path)
    return path


# -- which sides, which tiles ------------------------------------------------------------
@pytest.mark.parametrize(
    "model,heap,ref,sides",
    [
        ("realesrgan-x4plus", H200_HEAP, 296, [1024, 512]),
        ("realesrgan-x4plus", 22000, 296, [693, 512]),  # 24 KB a pixel in half the heap
        ("realesrgan-x4plus", 7000, 296, [391]),
        ("realesrgan-x4plus", 3500, 296, []),  # no side well above the reference's
        ("realesr-animevideov3-x4", 1024, 132, [518]),  # 512 too close to 518 to try
    ],
)
def test_candidate_sides_fit_half_the_heap_and_beat_the_reference(model, heap, ref, sides):
    spec = _spec(model)
    assert gw.reference_side(spec, heap) == ref
    assert gw.candidate_sides(spec, heap) == sides


def test_only_hardware_gpus_and_plain_models_are_checked(monkeypatch):
    assert gw.qualifies(_spec(), _gpu())
    assert not gw.qualifies(_spec(), _gpu("software"))
    assert not gw.qualifies(_spec(), DeviceInfo(-1, "CPU", "cpu"))
    assert not gw.qualifies(_spec("realcugan-se-x2"), _gpu())  # shared SE values
    assert not gw.qualifies(_spec("waifu2x-cunet-x2"), _gpu())  # valid convolutions
    monkeypatch.setenv("UPSCALER_EDGE_GPU_CHECK", "0")
    assert not gw.qualifies(_spec(), _gpu())


@pytest.mark.parametrize("side", [232, 300, 1024])
@pytest.mark.parametrize("size", [(3840, 2160), (1000, 37), (230, 230)])
def test_gpu_tiles_cover_the_picture_with_windows_no_bigger_than_the_side(side, size):
    spec = _spec("realesr-animevideov3-x4")
    w, h = size
    tiles = gw.gpu_tiles(w, h, spec, side)
    assert gw.max_window_side(tiles) <= side
    covered = np.zeros((h, w), dtype=np.int32)
    for t in tiles:
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert (covered == 1).all()


def test_pick_takes_the_choice_with_the_least_estimated_time():
    spec = _spec("realesrgan-x4plus")
    fast_big = gw.Verdict((gw.Choice(296, False, 10.0), gw.Choice(1024, True, 12.0)), (), 1.0)
    tiles, precise = gw.pick(fast_big, 3840, 2160, spec)
    assert precise and gw.max_window_side(tiles) <= 1024 and len(tiles) == 15  # 4x3 cores > 928
    slow_big = gw.Verdict((gw.Choice(296, False, 10.0), gw.Choice(1024, True, 30.0)), (), 1.0)
    tiles, precise = gw.pick(slow_big, 3840, 2160, spec)
    assert not precise and gw.max_window_side(tiles) <= 296  # fp32 costs more than the context
    assert gw.needs_fp32(fast_big, gw.gpu_tiles(3840, 2160, spec, 1024))
    assert not gw.needs_fp32(fast_big, gw.gpu_tiles(3840, 2160, spec, 296))


def test_faithful_is_relative_to_the_reference_tile_on_the_same_gpu():
    assert gw.faithful(58.0, 3, 60.0, 2)
    assert not gw.faithful(56.0, 2, 60.0, 2)  # 4 dB worse
    assert not gw.faithful(60.0, 5, 60.0, 2)  # a pixel 5 levels off where the reference has 2
    assert gw.faithful(78.0, 2, math.inf, 0)  # fp16 rounding against an exact match
    assert not gw.faithful(48.2, 28, 60.5, 2)  # the H200's 1080 px tiles


# -- the check, with engines that compute a known function ---------------------------------
class FakeEngine:
    """Nearest-neighbour x2 of the window; ``bad_from`` px and up corrupt the far corner
    (what the H200 showed for big windows in fp16); ``fault_from`` px and up fail."""

    work_bytes_per_pixel = 1

    def __init__(self, spec, device, precise=False, bad_from=None, fault_from=None):
        self.spec, self.device, self.precise = spec, device, precise
        self.bad_from, self.fault_from = bad_from, fault_from
        self.sides: list[int] = []

    def infer(self, x, feeds=None):
        side = x.shape[1]
        self.sides.append(side)
        if self.fault_from and side >= self.fault_from:
            raise TileFault("vkAllocateMemory failed")
        y = x.repeat(2, axis=1).repeat(2, axis=2).copy()
        if not self.precise:
            y = y.astype(np.float16).astype(np.float32)  # fp16 rounding everywhere
        if self.bad_from and side >= self.bad_from:
            y[:, -2 * (16 + gw.REGION) :, -2 * (16 + gw.REGION) :] += 0.1
        return y


def _check(gpu16, gpu32, spec, cpu=None):
    cpu = cpu or FakeEngine(spec, DeviceInfo(-1, "CPU", "cpu"), precise=True)
    return gw.check(lambda precise: gpu32 if precise else gpu16, cpu, spec, [400, 240], 200)


def test_a_gpu_that_computes_big_windows_right_gets_the_biggest_in_fp16():
    spec = _spec()
    gpu16 = FakeEngine(spec, _gpu())
    gpu32 = FakeEngine(spec, _gpu(), precise=True)
    v = _check(gpu16, gpu32, spec)
    assert [(c.side, c.precise) for c in v.choices] == [(200, False), (400, False)]
    assert gpu32.sides == []  # fp32 never tried: it could only be slower
    assert v.fp16_side == 400
    assert all(t.ok and t.max_diff <= 1 for t in v.trials)


def test_a_gpu_that_corrupts_big_fp16_windows_gets_them_in_fp32_only():
    spec = _spec()
    gpu16 = FakeEngine(spec, _gpu(), bad_from=300)
    gpu32 = FakeEngine(spec, _gpu(), precise=True, bad_from=None)
    cpu = FakeEngine(spec, DeviceInfo(-1, "CPU", "cpu"), precise=True)
    v = _check(gpu16, gpu32, spec, cpu)
    # one shared region plus each side's far corner on the CPU (400 fp32 reuses 400 fp16's)
    assert len(cpu.sides) == 4 and set(cpu.sides) == {gw.REGION + 2 * spec.context}
    assert [(t.side, t.precise, t.ok) for t in v.trials] == [
        (200, False, True),
        (400, False, False),
        (240, False, True),
        (400, True, True),
    ]
    bad = v.trials[1]
    assert 25 <= bad.max_diff <= 26 and bad.psnr < 40
    assert [(c.side, c.precise) for c in v.choices] == [(200, False), (240, False), (400, True)]
    assert v.fp16_side == 240


def test_a_side_that_fails_on_the_device_is_not_chosen():
    spec = _spec()
    gpu16 = FakeEngine(spec, _gpu(), fault_from=300)
    gpu32 = FakeEngine(spec, _gpu(), precise=True, fault_from=300)
    v = _check(gpu16, gpu32, spec)
    assert [(c.side, c.precise) for c in v.choices] == [(200, False), (240, False)]
    assert not v.trials[1].ok and v.trials[1].s_per_mpx == math.inf


def test_verdicts_are_cached_by_device_driver_and_model(cache):
    spec = _spec()
    v = gw.Verdict((gw.Choice(200, False, 1.5), gw.Choice(400, True, 2.5)), (), 0.7)
    key = gw.cache_key(_gpu(), spec, [400], 200)
    assert gw.cached(key) is None
    gw.store(key, v)
    assert gw.cached(key) == v
    other_driver = replace(_gpu(), driver="driver 2")
    assert gw.cached(gw.cache_key(other_driver, spec, [400], 200)) is None
    assert key in json.loads(cache.read_text())
    cache.write_text("{not json")
    assert gw.cached(key) is None  # a broken cache is a miss, not an error


# -- the pipeline on a real Vulkan device (lavapipe) ------------------------------------------
@pytest.fixture
def checked_lavapipe(software_vulkan, monkeypatch, cache):
    """lavapipe treated as a hardware GPU, at a small scale (a big probe would take it
    minutes): the reference's tile 32 (windows of 64 with the model's 16 px of context), the
    biggest window tried 96."""
    monkeypatch.setattr(gw, "CHECK_SOFTWARE", True)
    monkeypatch.setattr(gw, "gpu_auto_tile", lambda heap_mb: 32)
    monkeypatch.setattr(gw, "MAX_SIDE", 96)
    monkeypatch.setattr(gw, "MID_SIDE", 0)  # below 5/4 of the reference's side: not tried
    return software_vulkan


def _pic(photo, w, h):
    rgb = np.pad(photo, ((0, max(0, h - 160)), (0, max(0, w - 160)), (0, 0)), "symmetric")
    return Picture([Frame(np.ascontiguousarray(rgb[:h, :w]))], "PNG")


@pytest.mark.vulkan
def test_lavapipe_checks_once_then_runs_bigger_tiles_with_the_same_pixels(
    checked_lavapipe, photo, monkeypatch, cache
):
    pic = _pic(photo, 150, 100)
    opts = FAST.replace(device=str(checked_lavapipe.index))
    with Upscaler() as up:
        plan = up.prepare(opts)
        tiles = up.tiles(150, 100, plan, opts)
        v = up.gpu_verdict(plan.spec, plan.device)
        assert v is not None
        assert [(t.side, t.precise) for t in v.trials] == [(64, False), (96, False)]
        assert all(t.ok and t.max_diff <= 2 for t in v.trials)  # lavapipe: every size alike
        assert tiles == gw.pick(v, 150, 100, plan.spec)[0]  # the faster faithful choice
        big = up.upscale_picture(pic, opts.replace(tile=64), plan=plan).frames[0].rgb
        small = up.upscale_picture(pic, opts.replace(tile=32), plan=plan).frames[0].rgb
    assert big.shape == (200, 300, 3)
    assert np.abs(big.astype(int) - small).max() <= 3  # fp16 rounding of other shapes
    assert len(json.loads(cache.read_text())) == 1

    def no_second_check(*a, **k):
        raise AssertionError("checked again")

    monkeypatch.setattr(gw, "check", no_second_check)
    with Upscaler() as up:  # a new process would read the same cache
        plan = up.prepare(opts)
        assert up.tiles(150, 100, plan, opts) == tiles


@pytest.mark.vulkan
def test_a_device_that_corrupts_big_fp16_windows_never_gets_them(
    checked_lavapipe, photo, monkeypatch
):
    """The H200 case: fp16 windows above 80 px come out wrong, fp32 ones right. The check
    sees it, and the job runs its big tiles in fp32, matching the reference's tile size."""
    real_open = pipeline_mod.open_engine
    ran: list[tuple[int, bool]] = []

    class Corrupting:
        def __init__(self, eng):
            self._eng = eng
            self.spec, self.device, self.precise = eng.spec, eng.device, eng.precise
            self.work_bytes_per_pixel = eng.work_bytes_per_pixel

        def infer(self, x, feeds=None):
            y = self._eng.infer(x, feeds)
            ran.append((max(x.shape[1:]), self.precise))
            if not self.precise and max(x.shape[1:]) > 80:
                y[:, -60:, -60:] = 1.0 - y[:, -60:, -60:]
            return y

        def close(self):
            self._eng.close()

    def open_engine(spec, dev, **kw):
        eng = real_open(spec, dev, **kw)
        return Corrupting(eng) if dev.is_gpu else eng

    monkeypatch.setattr(pipeline_mod, "open_engine", open_engine)
    monkeypatch.setattr(engine_mod, "openvino_installed", lambda: False)
    pic = _pic(photo, 150, 100)
    opts = FAST.replace(device=str(checked_lavapipe.index))
    with Upscaler() as up:
        plan = up.prepare(opts)
        v = up.gpu_verdict(plan.spec, plan.device)
        assert v is not None and v.fp16_side == 64
        assert [(t.side, t.precise, t.ok) for t in v.trials] == [
            (64, False, True),
            (96, False, False),
            (96, True, True),
        ]
        ran.clear()
        out = up.upscale_picture(pic, opts.replace(tile=60), plan=plan).frames[0].rgb
        assert ran and all(precise for side, precise in ran if side > 64)
        ref = up.upscale_picture(pic, opts.replace(tile=32), plan=plan).frames[0].rgb
    assert np.abs(out.astype(int) - ref).max() <= 3  # fp32 against fp16


@pytest.mark.vulkan
def test_list_devices_shows_what_the_check_found(software_vulkan, cache):
    import io

    from upscaler_edge import cli

    spec = _spec("realesrgan-x4plus")
    v = gw.Verdict(
        (gw.Choice(296, False, 9.0), gw.Choice(512, False, 8.0), gw.Choice(1024, True, 7.5)),
        (),
        4.2,
    )
    gw.store(gw.cache_key(software_vulkan, spec, [1024, 512], 296), v)
    gw.store(gw.cache_key(replace(software_vulkan, driver="older"), _spec(), [512], 132), v)
    out = io.StringIO()
    cli._print_devices(out)
    lines = [ln.strip() for ln in out.getvalue().splitlines() if "tiles checked" in ln]
    assert lines == ["tiles checked for realesrgan-x4plus: up to 1024 px in fp32 (fp16 to 512)"]


def test_a_picture_that_fits_one_reference_window_is_one_tile_without_a_check(monkeypatch):
    def no_check(*a, **k):
        raise AssertionError("no check needed")

    monkeypatch.setattr(gw, "check", no_check)
    spec = _spec("realesrgan-x4plus")  # reference window: 200 + 2 * 48 = 296
    plan = pipeline_mod.Plan(spec, _gpu(), 4)
    with Upscaler() as up:
        assert len(up.tiles(276, 250, plan, Options())) == 1  # 296 with the 10 px edges
        assert up.gpu_verdict(spec, _gpu("software")) is None
        plan_sw = pipeline_mod.Plan(spec, _gpu("software"), 4)
        assert len(up.tiles(276, 250, plan_sw, Options())) == 4  # the reference's rule
