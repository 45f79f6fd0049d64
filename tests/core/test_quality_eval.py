"""Smoke test of bench/quality.py's pieces on tiny images (seconds, fast model only)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("scipy")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_eval", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["quality_eval"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


def gradient(side: int = 64) -> np.ndarray:
    """A smooth colour ramp: what interpolation gets nearly right."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    return np.stack([x * 255 / side, y * 255 / side, (x + y) * 127 / side], axis=2).astype(np.uint8)


def test_fidelity_of_an_image_against_itself_is_perfect(quality, photo):
    psnr, ssim = quality.fidelity(photo, photo)
    assert math.isinf(psnr)
    assert ssim == pytest.approx(1.0)


def test_bicubic_restores_a_gradient_better_than_a_noisy_output(quality):
    ref = gradient()
    lr = quality.degrade(ref)
    assert lr.shape == (16, 16, 3)
    bicubic = quality.resize_up(lr, quality.BASELINES["bicubic"])
    noise = np.random.default_rng(0).normal(0, 25, ref.shape)
    noisy = np.clip(ref.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    p_bic, s_bic = quality.fidelity(ref, bicubic)
    p_noisy, s_noisy = quality.fidelity(ref, noisy)
    assert p_bic > 30 > p_noisy
    assert s_bic > s_noisy
    # the noise is "sharp": the no-reference figure must not be mistaken for quality
    assert quality.sharpness(noisy) > 10 * quality.sharpness(bicubic)


def test_jpeg_degradation_differs_from_the_clean_one(quality, photo):
    ref = quality.crop(photo, 0, 0, 64)
    clean, jpeg = quality.degrade(ref), quality.degrade(ref, 70)
    assert clean.shape == jpeg.shape == (16, 16, 3)
    assert np.abs(clean.astype(int) - jpeg.astype(int)).mean() > 0.5


def test_drawn_images_are_deterministic_and_divisible_by_four(quality):
    a = quality.make_drawing(100)
    assert a.shape == (100, 100, 3) and a.dtype == np.uint8
    assert np.array_equal(a, quality.make_drawing(100))
    assert np.array_equal(quality.make_screenshot(96), quality.make_screenshot(96))
    images = quality.load_images(66, ["astronaut", "camera", "drawing"])
    assert [i.name for i in images] == ["astronaut", "camera", "drawing"]
    assert all(i.rgb.shape == (64, 64, 3) for i in images)  # 66 trimmed to a multiple of 4


def test_evaluate_and_tables_one_row_per_method(quality, tmp_path):
    images = quality.load_images(32, ["astronaut", "drawing"])
    with quality.Restorer(["realesr-animevideov3-x4"]) as restorer:
        sheet = quality.CropSheet(images[0], restorer.methods)
        scores = quality.evaluate(images, restorer, sheet.keep)
    methods = ["bicubic", "lanczos", "realesr-animevideov3-x4"]
    assert len(scores) == 2 * 2 * 3
    assert all(s.psnr > 10 and 0 < s.ssim <= 1 and s.seconds >= 0 for s in scores)
    summary = quality.summarize(scores, methods)
    table = quality.main_table(summary, None)
    rows = table.splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == methods
    assert all(r.rstrip().endswith("n/a |") for r in rows)  # no lavapipe numbers given
    assert len(quality.image_table(scores, methods).splitlines()) == 2 + 4
    report = quality.render_report(images, scores, methods, None, "skipped", "cmd", 1.0, [])
    assert "## Mean over all images" in report and "GAN" in report
    # 32 px originals cannot hold a 96 px crop region: nothing is pasted, the sheet still saves
    assert sheet.save(tmp_path / "c.png").stat().st_size > 0
