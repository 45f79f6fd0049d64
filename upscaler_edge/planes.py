"""Whole-plane pixel work around the model: constant planes, gray of RGB, Lanczos resizes."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["gray_of", "is_constant", "resize_plane", "resize_rgb"]


def is_constant(a: np.ndarray) -> bool:
    return bool(a.min() == a.max())


def gray_of(rgb: np.ndarray) -> np.ndarray:
    acc = rgb.astype(np.uint32).sum(axis=2)
    acc += 1
    acc //= 3
    return acc.astype(rgb.dtype)


def resize_plane(a: np.ndarray, w: int, h: int, resample: int) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.asarray(Image.fromarray(a, "L").resize((w, h), resample))
    f = np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), resample))
    return np.clip(f + 0.5, 0, np.iinfo(a.dtype).max).astype(a.dtype)


def resize_rgb(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(rgb, "RGB").resize((w, h), Image.Resampling.LANCZOS))
    return np.stack(
        [resize_plane(rgb[:, :, c], w, h, Image.Resampling.LANCZOS) for c in range(3)], axis=2
    )
