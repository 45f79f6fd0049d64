from __future__ import annotations

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
