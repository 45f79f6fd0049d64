"""A :class:`Picture` -> encoded bytes (PNG, JPEG, WebP), and the atomic write to disk."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import OutputError, UsageError
from .atomic import write_atomic
from .metadata import icc_for
from .picture import Picture, detail
from .png import encode_png, stack

__all__ = [
    "FORMAT_SUFFIX",
    "OUTPUT_FORMATS",
    "check_output_format",
    "encode_picture",
    "format_from_suffix",
    "write_picture",
]

logger = logging.getLogger(__name__)


#: Output formats accepted by :func:`encode_picture` (``"jpeg"`` is accepted as ``"jpg"``).
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpg", "webp")

_FORMAT_ALIASES = {"jpeg": "jpg", "jpg": "jpg", "png": "png", "webp": "webp"}
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
_FORMAT_SUFFIX = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
_DEFAULT_FRAME_MS = 100
_JPEG_MAX_EXIF = 65_000


def encode_picture(pic: Picture, fmt: str = "png", quality: int = 95) -> tuple[bytes, str]:
    """Encode ``pic`` as "png", "jpg" ("jpeg") or "webp"; return (bytes, format used).

    The format used is "png" instead of "jpg" when the picture has transparency or more than
    one frame (logged as a warning). ICC profile, EXIF and DPI are carried where the format
    can hold them. Raises UsageError for an unknown format, a bad quality or a malformed
    picture, OutputError when the encoder fails.
    """
    parts, used = _encode(pic, *_target_format(pic, fmt, quality))
    return b"".join(parts), used


def _target_format(pic: Picture, fmt: str, quality: int) -> tuple[str, int]:
    """Validate the request; the format to write (png when jpg cannot hold the picture)."""
    target = _FORMAT_ALIASES.get(str(fmt).lower().lstrip("."))
    if target is None:
        raise UsageError(f"unknown output format {fmt!r}; use png, jpg or webp")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise UsageError(f"quality must be a whole number from 1 to 100, not {quality!r}")
    quality = int(quality)
    if not 1 <= quality <= 100:
        raise UsageError(f"quality must be a whole number from 1 to 100, not {quality!r}")
    _check_picture(pic)
    animated = len(pic.frames) > 1
    if target == "jpg" and _has_transparency(pic):
        logger.warning("image has transparency; saving PNG instead of JPEG")
        target = "png"
    elif target == "jpg" and animated:
        logger.warning("image is animated; saving PNG (APNG) instead of JPEG")
        target = "png"
    return target, quality


def _encode(pic: Picture, target: str, quality: int) -> tuple[list[Any], str]:
    """The encoded file as a list of byte strings (no joined copy of a big output)."""
    buf = io.BytesIO()
    try:
        if len(pic.frames) > 1:
            _save_animation(pic, target, quality, buf)
        elif target == "png":
            icc = icc_for(pic.icc_profile, "GRAY" if pic.grayscale else "RGB")
            return encode_png(pic.frames[0], pic.grayscale, icc, pic.exif, pic.dpi), target
        else:
            _save_still(pic, target, quality, buf)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise OutputError(f"cannot encode the image as {target.upper()} ({detail(exc)})") from exc
    return [buf.getbuffer()], target


def write_picture(
    pic: Picture,
    dst: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Encode ``pic`` and write it to ``dst`` atomically; return the path written.

    ``fmt`` None takes the format from dst's suffix (.png/.jpg/.jpeg/.webp), else PNG. When
    JPEG is asked for but PNG is forced (transparency, animation), a .jpg/.jpeg suffix becomes
    .png. Missing parent folders are created; the file gets mode 0o666 minus the umask. An
    existing file is never replaced unless ``overwrite`` (OutputExistsError).
    """
    dst = Path(os.fspath(dst))
    wanted = fmt if fmt is not None else _SUFFIX_FORMATS.get(dst.suffix.lower(), "png")
    parts, used = _encode(pic, *_target_format(pic, wanted, quality))
    asked = _FORMAT_ALIASES.get(str(wanted).lower().lstrip("."))
    if used != asked and _SUFFIX_FORMATS.get(dst.suffix.lower()) == asked:
        dst = dst.with_suffix(_FORMAT_SUFFIX[used])
    write_atomic(parts, dst, overwrite)
    logger.debug("wrote %s (%s, %d bytes)", dst, used, sum(len(p) for p in parts))
    return dst


def _check_picture(pic: Picture) -> None:
    if not pic.frames:
        raise UsageError("picture has no frames")
    shape = pic.frames[0].rgb.shape
    for frame in pic.frames:
        rgb = frame.rgb
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
            raise UsageError(f"frame must be (H, W, 3) uint8/uint16, not {rgb.shape} {rgb.dtype}")
        if rgb.shape != shape or rgb.dtype != pic.frames[0].rgb.dtype:
            raise UsageError("all frames must have the same size and dtype")
        if frame.alpha is not None and (
            frame.alpha.shape != rgb.shape[:2] or frame.alpha.dtype != rgb.dtype
        ):
            raise UsageError("alpha must be (H, W) with the same dtype as rgb")


def _has_transparency(pic: Picture) -> bool:
    top = 65535 if pic.frames[0].rgb.dtype == np.uint16 else 255
    return any(f.alpha is not None and int(f.alpha.min()) < top for f in pic.frames)


def _to_pil(arr: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 from _stack -> a Pillow image in L, LA, RGB or RGBA."""
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)


def _save_still(pic: Picture, target: str, quality: int, buf: io.BytesIO) -> None:
    """JPEG and WebP through Pillow (PNG has its own streaming encoder)."""
    im = _to_pil(stack(pic.frames[0], pic.grayscale, eight_bit=True))
    if target == "jpg" and im.mode in ("LA", "RGBA"):  # opaque alpha: nothing to lose
        im = im.convert(im.mode[:-1])
    elif target == "webp" and im.mode in ("L", "LA"):
        im = im.convert("RGBA" if im.mode == "LA" else "RGB")
    im.save(buf, _PIL_FORMAT[target], **_save_options(pic, target, quality, im.mode))


_PIL_FORMAT = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


def _save_options(pic: Picture, target: str, quality: int, mode: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    icc = icc_for(pic.icc_profile, "GRAY" if mode in ("L", "LA", "I;16") else "RGB")
    if icc:
        options["icc_profile"] = icc
    if pic.exif and not (target == "jpg" and len(pic.exif) > _JPEG_MAX_EXIF):
        options["exif"] = pic.exif
    elif pic.exif:
        logger.warning("EXIF data too large for JPEG (%d bytes); not carried", len(pic.exif))
    if pic.dpi and target in ("png", "jpg"):
        options["dpi"] = pic.dpi
    if target == "jpg":
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif target == "webp":
        options.update(quality=quality)
    return options


def _save_animation(pic: Picture, target: str, quality: int, buf: io.BytesIO) -> None:
    # Every frame in one mode, RGB or RGBA: GIF, WEBP and APNG writers expect that.
    alpha = any(f.alpha is not None for f in pic.frames)
    images = []
    for frame in pic.frames:
        arr = stack(frame, False, eight_bit=True)
        if alpha and arr.shape[2] == 3:
            arr = np.concatenate([arr, np.full((*arr.shape[:2], 1), 255, np.uint8)], axis=2)
        images.append(_to_pil(arr))
    options = _save_options(pic, target, quality, images[0].mode)
    options.pop("dpi", None)
    options.update(
        save_all=True,
        append_images=images[1:],
        duration=[f.duration_ms if f.duration_ms else _DEFAULT_FRAME_MS for f in pic.frames],
    )
    if pic.loop is not None:
        options["loop"] = pic.loop
    images[0].save(buf, _PIL_FORMAT[target], **options)


# The output-format table the CLI checks before any work (format names, suffixes).
FORMAT_SUFFIX: dict[str, str] = dict(_FORMAT_SUFFIX)


def format_from_suffix(path: str | os.PathLike[str]) -> str | None:
    """The output format a path's suffix names ("jpg" for .jpeg), None for other suffixes."""
    return _SUFFIX_FORMATS.get(Path(os.fspath(path)).suffix.lower())


def check_output_format(fmt: str) -> str:
    """The canonical name of an output format; UsageError naming the supported ones."""
    found = _FORMAT_ALIASES.get(str(fmt).lower().lstrip("."))
    if found is None:
        raise UsageError(f"unknown output format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    return found
