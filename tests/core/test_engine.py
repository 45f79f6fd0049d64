from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from upscaler_edge.engine import Engine, list_devices, pick_device
from upscaler_edge.errors import UsageError
from upscaler_edge.models import default_registry


def test_cpu_is_always_listed_last():
    devs = list_devices()
    assert devs[-1].index == -1 and devs[-1].kind == "cpu"
    assert pick_device("cpu") == devs[-1]


def test_auto_never_picks_a_software_rasteriser():
    auto = pick_device("auto")
    assert auto.kind in ("discrete", "integrated", "virtual", "cpu")


def test_unknown_gpu_index_is_a_clear_error():
    with pytest.raises(UsageError, match="no Vulkan device 42"):
        pick_device("42")


def test_cpu_engine_upscales_a_tile(photo):
    spec = default_registry().resolve("realesr-animevideov3-x2")
    x = photo[:24, :40].transpose(2, 0, 1).astype(np.float32) / 255
    with Engine(spec, pick_device("cpu")) as eng:
        y = eng.infer(x)
    assert y.shape == (3, 48, 80)
    # the model keeps the picture: its output downscaled is close to the input
    small = y.reshape(3, 24, 2, 40, 2).mean(axis=(2, 4))
    assert np.abs(small - x).mean() < 0.03


def test_no_vulkan_driver_falls_back_to_cpu_with_a_log_line(tmp_path):
    env = dict(
        os.environ,
        VK_ICD_FILENAMES=str(tmp_path / "none.json"),
        VK_DRIVER_FILES=str(tmp_path / "none.json"),
    )
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from upscaler_edge.engine import list_devices, pick_device\n"
        "print([d.kind for d in list_devices()], pick_device('auto').kind)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['cpu'] cpu"
    assert "no Vulkan GPU found" in res.stderr


@pytest.mark.vulkan
def test_vulkan_engine_on_a_real_device_matches_the_cpu(photo, software_vulkan):
    spec = default_registry().resolve("realesr-animevideov3-x2")
    x = photo[:16, :16].transpose(2, 0, 1).astype(np.float32) / 255
    with Engine(spec, pick_device("cpu")) as cpu, Engine(spec, software_vulkan) as gpu:
        a, b = cpu.infer(x), gpu.infer(x)
    assert a.shape == b.shape == (3, 32, 32)
    assert np.abs(a - b).max() * 255 < 4  # fp16 storage on the GPU


@pytest.mark.vulkan
@pytest.mark.parametrize("h,w", [(51, 62), (57, 62), (41, 41), (23, 90)])
def test_a_window_whose_area_is_not_a_multiple_of_4_is_right_on_a_gpu(photo, software_vulkan, h, w):
    """ncnn's Python binding wraps numpy with an unaligned channel stride, and the upload to
    a Vulkan device shifted every channel after the first (213/255 off before the fix)."""
    spec = default_registry(()).resolve("realesr-animevideov3", 2, None)
    x = np.ascontiguousarray(photo[10 : 10 + h, 20 : 20 + w].transpose(2, 0, 1) / np.float32(255))
    with Engine(spec, pick_device("cpu-ncnn")) as cpu, Engine(spec, software_vulkan) as gpu:
        want, got = cpu.infer(x), gpu.infer(x)
    assert got.shape == want.shape == (3, 2 * h, 2 * w)
    assert np.abs(got - want).max() * 255 <= 4  # fp16 on the device


def test_list_devices_says_why_there_is_no_gpu(tmp_path):
    from upscaler_edge.vulkan_diag import diagnose

    def no_loader(name):
        raise OSError(name)

    assert "no Vulkan loader (libvulkan.so.1)" in diagnose({}, load=no_loader, icd_dirs=[])
    found = diagnose({}, load=lambda n: None, icd_dirs=[str(tmp_path)])
    assert "finds no driver" in found and "mesa-vulkan-drivers" in found
    nvidia = diagnose(
        {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
        load=lambda n: None,
        icd_dirs=[str(tmp_path)],
    )
    assert "NVIDIA_DRIVER_CAPABILITIES=graphics" in nvidia and "(now: compute,utility)" in nvidia
    (tmp_path / "lvp_icd.x86_64.json").write_text("{}")
    assert "report no usable GPU" in diagnose({}, load=lambda n: None, icd_dirs=[str(tmp_path)])


def test_driver_versions_read_as_vendors_write_them():
    from upscaler_edge.engine import describe_driver

    assert (
        describe_driver(0x10DE, (580 << 22) | (159 << 14) | (4 << 6)) == "NVIDIA driver 580.159.4"
    )
    assert describe_driver(0x10005, (24 << 22) | (2 << 12) | 3) == "Mesa driver 24.2.3"


@pytest.mark.vulkan
def test_gpu_listing_names_driver_heap_and_fp16(software_vulkan):
    from upscaler_edge.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["--list-devices"], stdout=out, stderr=err) == 0
    line = next(s for s in out.getvalue().splitlines() if s.strip().startswith("0 "))
    assert "driver" in line and "MB heap budget" in line and "fp16" in line
    assert software_vulkan.driver and software_vulkan.heap_budget_mb > 0


def test_ncnn_options_for_diagnostics_come_from_the_environment(monkeypatch, caplog):
    from upscaler_edge.engine import ncnn_opt_overrides

    monkeypatch.setenv(
        "UPSCALER_EDGE_NCNN_OPT", "use_winograd_convolution=0, use_sgemm_convolution=1,nope=1,"
    )
    assert ncnn_opt_overrides() == [
        ("use_winograd_convolution", False),
        ("use_sgemm_convolution", True),
    ]
    assert "ignoring 'nope=1'" in caplog.text
    monkeypatch.delenv("UPSCALER_EDGE_NCNN_OPT")
    assert ncnn_opt_overrides() == []
