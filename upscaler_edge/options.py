"""The one options object every front end builds and the pipeline reads.

Built once at the edge (argv, a bot caption, the window's widgets) and passed down; frozen so
no stage can change what another stage sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .tiling import MIN_TILE

__all__ = ["DEFAULT_MODEL", "Options", "device_names"]

DEFAULT_MODEL = "realesrgan-x4plus"
#: Device names besides GPU indices and "openvino-<device>".
DEVICE_NAMES = ("auto", "cpu", "cpu-ncnn", "cpu-openvino")


def device_names(device: str) -> tuple[str, ...]:
    """The devices one ``-d`` value names: "0,1" -> ("0", "1"); "all" and single names stay
    one name (``engine.pick_devices`` expands "all"). UsageError for an unknown name, an
    empty item, a name listed twice, or "auto"/"all" inside a list."""
    names = tuple(part.strip() for part in device.split(","))
    for name in names:
        if not (name in DEVICE_NAMES or name.isdigit() or name.startswith("openvino-")):
            if name == "all" and len(names) == 1:
                continue
            raise UsageError(
                f"unknown device {name!r}: use {', '.join(DEVICE_NAMES)}, openvino-gpu, "
                "openvino-npu, a GPU index (0, 1, ...), a list of them (0,1 or 0,cpu) or all"
            )
    if len(names) > 1:
        if "auto" in names:
            raise UsageError(f"device list {device!r}: auto cannot be part of a list")
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise UsageError(f"device list {device!r} names {dup} twice")
    return names


@dataclass(frozen=True)
class Options:
    """What to do with one image (or a batch of them).

    ``tile`` counts input pixels per tile side, context padding not included; 0 means auto.
    ``scale`` None means the model's native scale; a smaller scale resizes the model's output
    with Lanczos; a larger one is an error. ``denoise`` picks a family's denoise level,
    numbered as its reference tool numbers them (Real-CUGAN -1 conservative, 0 none, 1-3;
    waifu2x -1 none, 0-3); None means the family's plain model. ``device``: "auto", "cpu"
    (the fastest CPU backend installed), "cpu-ncnn", "cpu-openvino", "openvino-gpu",
    "openvino-npu", a Vulkan GPU index, a comma-separated list of these ("0,1", "0,cpu":
    the work is spread over them) or "all" (every GPU). ``precision`` (OpenVINO only):
    "auto" (bf16 where measured safe), "fp32", "bf16".
    """

    model: str = DEFAULT_MODEL
    scale: int | None = None
    tile: int = 0
    device: str = "auto"
    format: str | None = None
    quality: int = 95
    tta: bool = False
    alpha: str = "model"
    all_frames: bool = False
    overwrite: bool = False
    max_pixels: int = 50_000_000
    models_dirs: tuple[Path, ...] = ()
    denoise: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.tile != 0 and self.tile < MIN_TILE:
            raise UsageError(f"tile size {self.tile} is too small: use 0 (auto) or >= {MIN_TILE}")
        if self.scale is not None and not 1 <= self.scale <= 16:
            raise UsageError(f"scale {self.scale} is out of range 1..16")
        if self.format is not None:
            from .imageio import check_output_format

            check_output_format(self.format)
        if not 1 <= self.quality <= 100:
            raise UsageError(f"quality {self.quality} is out of range 1..100")
        if self.alpha not in ("model", "bicubic"):
            raise UsageError(f"unknown alpha mode {self.alpha!r}: use 'model' or 'bicubic'")
        if self.max_pixels < 1:
            raise UsageError("the pixel cap must be positive")
        device_names(self.device)
        if self.precision not in ("auto", "fp32", "bf16"):
            raise UsageError(f"unknown precision {self.precision!r}: use auto, fp32 or bf16")

    def replace(self, **changes: object) -> Options:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
