"""The decoded image every stage passes along: frames of RGB (+ alpha) and what to carry over."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

__all__ = ["DEFAULT_MAX_PIXELS", "Frame", "Picture", "Source", "detail", "gray3"]

Source: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview"

DEFAULT_MAX_PIXELS = 50_000_000


@dataclass
class Frame:
    """One still image: ``rgb`` (H, W, 3) and optional ``alpha`` (H, W), same dtype.

    The dtype is uint8, or uint16 for 16-bit PNG input. ``duration_ms`` is set for the frames
    of an animation only.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    duration_ms: int | None = None


@dataclass
class Picture:
    """A decoded image (one frame, or every frame of an animation) and what to carry over."""

    frames: list[Frame]
    source_format: str
    grayscale: bool = False
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    loop: int | None = None

    @property
    def width(self) -> int:
        return int(self.frames[0].rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0].rgb.shape[0])


# --------------------------------------------------------------------------------------------


def gray3(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray -> (H, W, 3), the gray replicated into three channels."""
    return np.repeat(gray[..., None], 3, axis=2)


def detail(exc: BaseException) -> str:
    """An exception as one short line for a user-facing message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
