"""The before/after preview: one small JPEG that shows in the chat what the upscale did.

Two panels side by side, the input on the left (enlarged with bicubic, what any viewer would
show) and the result on the right, with a thin divider; the whole picture's long side is at
most :data:`LONG_SIDE` pixels. When the result fits a panel it is shown whole; otherwise the
panels show the same region from the middle, the result at 100%, which is where the
difference is visible (the whole picture shrunk to 640 pixels looks the same either way).

Pillow only, run in a worker thread. Best effort: a result too large to open cheaply
(:data:`MAX_RESULT_PIXELS`) or one Pillow cannot read gives no preview, never a failed job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageOps

__all__ = ["LONG_SIDE", "MAX_RESULT_PIXELS", "make_preview"]

log = logging.getLogger(__name__)

LONG_SIDE = 1280
GAP = 4  # divider between the panels, in pixels
MAX_RESULT_PIXELS = 80_000_000  # decoding more than this (~240 MB RGB) for a preview is waste
QUALITY = 82


def make_preview(src: Path, result: Path, dst: Path) -> str | None:
    """Write the preview of ``src`` -> ``result`` to ``dst`` (JPEG). Returns what it shows,
    ``"whole"`` (the whole picture) or ``"detail"`` (a region at 100%), or None if no
    preview was made."""
    _register_heif()
    try:
        return _make(src, result, dst)
    except Exception as exc:  # best effort: the document is what matters
        log.warning("no preview: %s: %s", type(exc).__name__, exc)
        return None


def _make(src: Path, result: Path, dst: Path) -> str | None:
    with Image.open(result) as out_img:
        out_w, out_h = out_img.size
        if out_w * out_h > MAX_RESULT_PIXELS:
            log.info("no preview: the result is %dx%d", out_w, out_h)
            return None
        after = _rgb(ImageOps.exif_transpose(out_img))
    with Image.open(src) as in_img:
        before = _rgb(ImageOps.exif_transpose(in_img))
    panel_w, panel_h = _panel_box(after.size)
    if after.width <= panel_w and after.height <= panel_h:
        shows = "whole"
        left = before.resize(after.size, Image.Resampling.BICUBIC)
        right = after
    else:  # a region from the middle: the result at 100%, the input enlarged to match
        shows = "detail"
        w, h = min(panel_w, after.width), min(panel_h, after.height)
        x0, y0 = (after.width - w) // 2, (after.height - h) // 2
        right = after.crop((x0, y0, x0 + w, y0 + h))
        sx, sy = before.width / after.width, before.height / after.height
        box = (x0 * sx, y0 * sy, (x0 + w) * sx, (y0 + h) * sy)
        left = before.resize((w, h), Image.Resampling.BICUBIC, box=box)
    sheet = _side_by_side(left, right)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dst, "JPEG", quality=QUALITY, optimize=True)
    return shows


def _panel_box(size: tuple[int, int]) -> tuple[int, int]:
    """The largest panel for a picture of this shape: two panels and the gap fit in
    :data:`LONG_SIDE` across, and one panel's height fits it too."""
    width, height = size
    across = (LONG_SIDE - GAP) // 2
    if width >= height:  # landscape: two panels side by side make a wide sheet
        return across, min(LONG_SIDE, max(1, round(across * height / width)))
    return across, LONG_SIDE


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    sheet = Image.new("RGB", (left.width + GAP + right.width, right.height), (255, 255, 255))
    sheet.paste(left, (0, 0))
    sheet.paste(right, (left.width + GAP, 0))
    return sheet


def _rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB for JPEG: transparency over mid grey, 16-bit grey scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        grey = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return Image.alpha_composite(grey, rgba).convert("RGB")
    return img.convert("RGB")


def _register_heif() -> None:
    """HEIC inputs open in Pillow only once pillow-heif registered itself (optional extra)."""
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    pillow_heif.register_heif_opener()
