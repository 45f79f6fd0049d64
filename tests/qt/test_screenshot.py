"""``python -m upscaler_edge --gui --screenshot FILE``, headless and under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _screenshot(
    out: Path, env: dict[str, str], prefix: list[str] = ()
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "upscaler_edge", "--gui", "--screenshot", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )


def _check(out: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.width >= 1024
        # not a blank window: the comparison holds many colours
        assert len(im.convert("RGB").resize((256, 160)).getcolors(1 << 16) or []) > 500


def test_screenshot_offscreen(tmp_path):
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    _check(out, _screenshot(out, env))


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_screenshot_under_xvfb(tmp_path):
    out = tmp_path / "shot.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    _check(out, _screenshot(out, env, ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24"]))
