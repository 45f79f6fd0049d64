"""Fixtures shared by every test folder: real photo pixels, the fast model, devices."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FAST_MODEL = "realesr-animevideov3"  # with scale 2: the cheapest real model


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The bundled sample photo (public-domain NASA astronaut crop, 160x160 JPEG)."""
    return Path(str(importlib.resources.files("upscaler_edge") / "data" / "sample.jpg"))


@pytest.fixture(scope="session")
def photo(sample_path: Path) -> np.ndarray:
    """(160, 160, 3) uint8 pixels of a real photo."""
    with Image.open(sample_path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture
def photo_png(tmp_path: Path, photo: np.ndarray) -> Path:
    """A 64x48 crop of the photo saved as PNG in tmp_path."""
    path = tmp_path / "photo.png"
    Image.fromarray(photo[40:88, 50:114]).save(path)
    return path


@pytest.fixture(scope="session")
def software_vulkan():
    """The software Vulkan device (lavapipe) when one exists; else skip with the reason."""
    from upscaler_edge.engine import list_devices

    devs = [d for d in list_devices() if d.is_gpu]
    if not devs:
        pytest.skip("no Vulkan device on this machine (install mesa-vulkan-drivers for lavapipe)")
    return devs[0]
