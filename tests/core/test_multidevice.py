"""Several devices (-d 0,cpu, -d all): files and tiles spread over lavapipe and the CPU."""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from upscaler_edge import engine as engine_mod
from upscaler_edge.cli import main
from upscaler_edge.engine import DeviceInfo, pick_device, pick_devices
from upscaler_edge.errors import DeviceError, UsageError
from upscaler_edge.imageio import Frame, Picture, read_picture
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler
from upscaler_edge.tiling import Tile

FAST = Options(model="realesr-animevideov3", scale=2, device="cpu")


def pic_of(rgb: np.ndarray) -> Picture:
    return Picture(
        frames=[Frame(rgb=rgb, alpha=None, duration_ms=None)],
        source_format="PNG",
        grayscale=False,
        icc_profile=None,
        exif=None,
        dpi=None,
        loop=None,
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.fixture
def ncnn_cpu(monkeypatch: pytest.MonkeyPatch) -> DeviceInfo:
    monkeypatch.setattr(engine_mod, "openvino_installed", lambda: False)  # the CPU is ncnn's
    return pick_device("cpu")


@pytest.fixture
def files(tmp_path: Path, photo: np.ndarray) -> list[tuple[Path, Path]]:
    pairs = []
    for i in range(6):
        src = tmp_path / f"in{i}.png"
        Image.fromarray(photo[i * 8 : i * 8 + 40, i * 10 : i * 10 + 48]).save(src)
        pairs.append((src, tmp_path / "out" / f"in{i}.png"))
    return pairs


# -- naming the devices -------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0,0", "auto,0", "0,,1", "0,gpu", "all,0", "cpu,cpu"])
def test_a_bad_device_list_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        Options(device=bad)


@pytest.mark.vulkan
def test_a_device_list_names_each_device_in_order(software_vulkan, ncnn_cpu) -> None:
    assert pick_devices(f"{software_vulkan.index},cpu") == (software_vulkan, ncnn_cpu)
    assert pick_devices(f"cpu, {software_vulkan.index}") == (ncnn_cpu, software_vulkan)
    assert pick_devices("cpu") == (ncnn_cpu,)


def test_all_is_every_gpu_else_the_cpu_with_one_line(monkeypatch, caplog, ncnn_cpu) -> None:
    gpus = (DeviceInfo(0, "A", "discrete"), DeviceInfo(1, "L", "software"))
    gpus += (DeviceInfo(2, "B", "integrated"),)
    monkeypatch.setattr(engine_mod, "_gpus_once", lambda: gpus)
    assert pick_devices("all") == (gpus[0], gpus[2])  # no software rasteriser

    monkeypatch.setattr(engine_mod, "_gpus_once", lambda: gpus[1:2])
    engine_mod._say_all_is_cpu.cache_clear()
    with caplog.at_level(logging.WARNING, logger="upscaler_edge.engine"):
        assert pick_devices("all") == (ncnn_cpu,)
        assert pick_devices("all") == (ncnn_cpu,)
    assert [r.message for r in caplog.records] == ["-d all: no GPU found; using the CPU"]


@pytest.mark.vulkan
def test_a_missing_device_in_a_list_is_one_usage_line(software_vulkan, photo_png) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["-m", "realesr-animevideov3", "-d", "0,1", str(photo_png)], stdout=out, stderr=err)
    assert code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upscaler-edge: error: no Vulkan device 1")
    assert not list(photo_png.parent.glob("*_x*"))


@pytest.mark.vulkan
def test_several_devices_share_the_smallest_devices_tile_layout(software_vulkan, ncnn_cpu) -> None:
    opts = FAST.replace(device=f"{software_vulkan.index},cpu")
    with Upscaler(opts) as up:
        plan = up.prepare(opts)
        assert plan.all_devices == (software_vulkan, ncnn_cpu)
        both = up.tiles(400, 300, plan, opts)
        gpu = up.tiles(400, 300, plan.on(software_vulkan), opts)
        cpu = up.tiles(400, 300, plan.on(ncnn_cpu), opts, up.engine_for(plan.spec, ncnn_cpu))
    assert len(cpu) < len(gpu)  # the CPU would take the whole image; lavapipe 100 px tiles
    assert both == gpu


# -- files of a batch ---------------------------------------------------------------------
def _slow_device(slow: DeviceInfo, taken: list[tuple[str, object]], delay: float = 0.4):
    """A hook: ``slow`` sleeps before each unit; the others wait until it took its first."""
    started = threading.Event()

    def hook(dev: DeviceInfo, unit: object) -> None:
        taken.append((dev.kind, unit))
        if dev == slow:
            started.set()
            time.sleep(delay)
        else:
            started.wait(10)

    return hook


@pytest.mark.vulkan
def test_a_batch_spreads_over_both_devices_and_the_faster_takes_more(
    software_vulkan, ncnn_cpu, files
) -> None:
    taken: list[tuple[str, object]] = []
    opts = FAST.replace(device=f"{software_vulkan.index},cpu")
    with Upscaler(opts, before_work=_slow_device(software_vulkan, taken)) as up:
        items = list(up.upscale_many(files, opts))
    with Upscaler(FAST) as up:
        alone = [up.upscale_picture(read_picture(src), FAST).frames[0].rgb for src, _ in files]
    assert [i.src for i in items] == [src for src, _ in files]  # in order
    assert all(i.error is None and i.result is not None for i in items)
    by = {i.src: i.result.device for i in items if i.result}
    lava = [s for s, d in by.items() if d == software_vulkan.name]
    cpu = [s for s, d in by.items() if d == ncnn_cpu.name]
    assert len(lava) + len(cpu) == len(files)
    assert 1 <= len(lava) < len(cpu)
    for (src, _), ref, item in zip(files, alone, items, strict=True):
        got = read_picture(item.dst).frames[0].rgb
        if src in cpu:
            assert np.array_equal(got, ref)  # the same device: the same pixels
        else:
            assert psnr(got, ref) > 40  # lavapipe computes in fp16


@pytest.mark.vulkan
def test_a_device_that_fails_mid_batch_leaves_its_files_to_the_others(
    software_vulkan, ncnn_cpu, files, caplog
) -> None:
    runs: list[str] = []
    failed = threading.Event()

    def hook(dev: DeviceInfo, unit: object) -> None:
        runs.append(dev.kind)
        if dev == software_vulkan and runs.count("software") == 2:
            failed.set()
            raise DeviceError("VK_ERROR_DEVICE_LOST")
        if dev != software_vulkan:
            failed.wait(10)  # the CPU holds its first file until lavapipe has failed

    opts = FAST.replace(device=f"{software_vulkan.index},cpu")
    with caplog.at_level(logging.WARNING), Upscaler(opts, before_work=hook) as up:
        items = list(up.upscale_many(files, opts))
    assert all(i.error is None for i in items)
    assert all(read_picture(i.dst).width == 96 for i in items)
    devices = [i.result.device for i in items if i.result]
    assert devices.count(software_vulkan.name) == 1 and len(devices) == len(files)
    assert runs.count("software") == 2  # retired after its failure
    assert any("VK_ERROR_DEVICE_LOST" in r.message for r in caplog.records)


@pytest.mark.vulkan
def test_the_last_device_standing_reports_its_errors_per_file(
    software_vulkan, ncnn_cpu, files
) -> None:
    def hook(dev: DeviceInfo, unit: object) -> None:
        if unit == files[4][0] or dev == software_vulkan:
            raise DeviceError("broken")

    opts = FAST.replace(device=f"{software_vulkan.index},cpu")
    with Upscaler(opts, before_work=hook) as up:
        items = list(up.upscale_many(files, opts))
    assert [i.error is not None for i in items] == [False] * 4 + [True, False]


@pytest.mark.vulkan
def test_the_cli_names_each_files_device(software_vulkan, ncnn_cpu, files, tmp_path) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", "realesr-animevideov3", "-s", "2", "-d", f"{software_vulkan.index},cpu"]
    paths = [str(s) for s, _ in files[:3]]
    code = main([*argv, *paths, "-o", str(tmp_path / "o")], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert all(ncnn_cpu.name in line or software_vulkan.name in line for line in lines)
    assert f"on {software_vulkan.name} + {ncnn_cpu.name}" in err.getvalue()


# -- tiles of one image -------------------------------------------------------------------
def _tile_region(out: np.ndarray, t: Tile, s: int) -> np.ndarray:
    return out[t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s]


@pytest.mark.vulkan
def test_one_images_tiles_spread_over_both_devices(software_vulkan, ncnn_cpu, photo) -> None:
    src = pic_of(np.ascontiguousarray(photo[:64, :96]))  # 6 tiles of 32
    taken: list[tuple[str, object]] = []
    both = FAST.replace(device=f"{software_vulkan.index},cpu", tile=32)
    with Upscaler(both, before_work=_slow_device(software_vulkan, taken, 0.3)) as up:
        out = up.upscale_picture(src, both).frames[0].rgb
        cpu = up.upscale_picture(src, FAST.replace(tile=32)).frames[0].rgb
        gpu = up.upscale_picture(src, both.replace(device=str(software_vulkan.index)))
    on_gpu = [t for kind, t in taken if kind == "software" and isinstance(t, Tile)]
    on_cpu = [t for kind, t in taken if kind == "cpu" and isinstance(t, Tile)]
    assert len(on_gpu) + len(on_cpu) == 6
    assert 1 <= len(on_gpu) < len(on_cpu)
    for t in on_cpu:  # each tile's pixels are exactly its device's
        assert np.array_equal(_tile_region(out, t, 2), _tile_region(cpu, t, 2))
    for t in on_gpu:
        assert np.array_equal(_tile_region(out, t, 2), _tile_region(gpu.frames[0].rgb, t, 2))
    assert psnr(out, cpu) > 40


@pytest.mark.vulkan
def test_a_device_that_fails_on_a_tile_leaves_it_to_the_others(
    software_vulkan, ncnn_cpu, photo
) -> None:
    src = pic_of(np.ascontiguousarray(photo[:64, :64]))

    def hook(dev: DeviceInfo, unit: object) -> None:
        if dev == software_vulkan:
            raise DeviceError("VK_ERROR_DEVICE_LOST")

    both = FAST.replace(device=f"{software_vulkan.index},cpu", tile=32)
    with Upscaler(both, before_work=hook) as up:
        out = up.upscale_picture(src, both).frames[0].rgb
        cpu = up.upscale_picture(src, FAST.replace(tile=32)).frames[0].rgb
    assert np.array_equal(out, cpu)


# -- the work queue -----------------------------------------------------------------------
def test_a_slow_device_leaves_the_last_units_to_a_faster_one() -> None:
    from upscaler_edge.pipeline import _WorkQueue

    now = [0.0]
    work = _WorkQueue(range(8), clock=lambda: now[0])
    assert work.take("slow") == 0 and work.take("fast") == 1
    now[0] = 1.0
    work.done("fast")  # 1 s a unit
    assert work.take("fast") == 2
    now[0] = 2.0
    work.done("fast")
    now[0] = 10.0
    work.done("slow")  # 10 s a unit: "fast" does the 5 left in ~5 s, before "slow" did one
    got: list[object] = []
    slow = threading.Thread(target=lambda: got.append(work.take("slow")))
    slow.start()
    slow.join(0.3)
    assert slow.is_alive()  # waiting, not taking
    while (unit := work.take("fast")) is not None:
        if unit == 7:
            work.give_back(unit, "fast")  # "fast" fails: "slow" is all that is left
            break
        now[0] += 1.0
        work.done("fast")
    slow.join(5)
    assert got == [7]
    work.done("slow")
    assert work.take("slow") is None
