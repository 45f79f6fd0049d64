"""Bytes or a path -> a decoded :class:`Picture`: the input side of the image I/O contract.

Contract (see docs/API.md, "Image I/O"):

* Input is chosen by *content*, never by file name, from an allowlist: PNG, JPEG, WEBP, BMP,
  TIFF, GIF, AVIF (when Pillow has it built in) and HEIF/HEIC (when the optional
  ``pillow-heif`` package is importable). Anything else is an :class:`InputError`.
* The pixel count is checked on the header, before any pixel is decoded, against
  ``max_pixels`` (default 50 MP); Pillow's own decompression-bomb warning is an error too, so
  the effective cap is ``min(max_pixels, PIL.Image.MAX_IMAGE_PIXELS)``. Both raise
  :class:`ImageTooLargeError`. Nothing here changes Pillow's global settings.
* Every failure is an :class:`~upscaler_edge.errors.UpscalerError` whose ``str`` is one line;
  damaged or truncated data is never decoded "as far as it goes".
* A :class:`Picture` holds frames of ``(H, W, 3)`` RGB arrays (uint8, or uint16 for 16-bit
  PNG) plus an optional ``(H, W)`` alpha of the same dtype. EXIF orientation is already
  applied (the carried EXIF says orientation 1); L/LA inputs are flagged ``grayscale`` and
  their gray is replicated into the three channels; CMYK is converted to sRGB through its
  embedded profile. ``icc_profile`` is only ever a profile matching the output (RGB, or GRAY
  for grayscale pictures).
* Output is PNG, JPEG or WEBP. Transparency or an animation cannot go to JPEG: PNG is written
  instead, with a logged warning. 16-bit pictures are written as 16-bit PNG (8-bit for the
  lossy formats). :func:`write_picture` writes a temporary file in the destination folder and
  renames it into place, so a reader never sees half a file and a failure leaves nothing.

Threading: :func:`probe` and :func:`read_picture` use ``warnings.catch_warnings``, which
swaps the process-wide warning filters while it runs; call them from one thread at a time
(or from worker processes) if other threads rely on warning filters.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import stat
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from ..errors import ImageTooLargeError, InputError, UsageError
from .metadata import cmyk_to_rgb, dpi_of, exif_of, icc_for, orient
from .picture import DEFAULT_MAX_PIXELS, Frame, Picture, Source, detail, gray3
from .png import PNG_SIGNATURE, read_png16

__all__ = ["SUPPORTED_INPUTS", "probe", "read_picture"]

logger = logging.getLogger(__name__)

#: Human names of the input formats, in the order error messages list them.
SUPPORTED_INPUTS: tuple[str, ...] = ("png", "jpeg", "webp", "bmp", "tiff", "gif", "avif", "heic")

_BASE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
_ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG", "AVIF"})


# Reading


def probe(src: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """Return ``(format, width, height)`` read from the header only; no pixel is decoded.

    ``format`` is Pillow's name ("PNG", "JPEG", ...); the size is as stored, before EXIF
    orientation. Raises InputError (unreadable, unsupported) or ImageTooLargeError.
    """
    with _open_source(src) as fp, _bomb_guard(max_pixels):
        _check_png_header(fp, max_pixels)
        with _open_image(fp) as im:
            _check_size(im.size, max_pixels)
            return _format_name(im), im.size[0], im.size[1]


def read_picture(
    src: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, all_frames: bool = False
) -> Picture:
    """Decode ``src`` (a path or the file's bytes) into a :class:`Picture`.

    Animated GIF/WEBP/PNG/AVIF give their first frame, or every frame (converted to RGB +
    alpha, with durations and the loop count) when ``all_frames`` is true; the total pixel
    count over all frames must then stay under ``max_pixels`` too.
    """
    with _open_source(src) as fp, _bomb_guard(max_pixels):
        png16 = _check_png_header(fp, max_pixels)
        with _open_image(fp) as im:
            _check_size(im.size, max_pixels)
            fmt = _format_name(im)
            animated = all_frames and fmt in _ANIMATED_FORMATS and _n_frames(im) > 1
            if png16 and not animated:
                fp.seek(0)
                return read_png16(fp.read(), im.info, png16)
            _load(im, fmt)
            exif, orientation = exif_of(im)
            if fmt == "TIFF":  # its "EXIF" is the TIFF's own tags (strips, sizes): not EXIF
                exif = None
            dpi = dpi_of(im.info)
            if animated:
                pic = _read_animation(im, fmt, max_pixels)
            else:
                rgb, alpha, gray, icc = _to_arrays(im, im.info.get("icc_profile"))
                pic = Picture([Frame(rgb, alpha)], fmt, gray, icc)
            pic.exif = exif
            pic.dpi = dpi
            for frame in pic.frames:
                frame.rgb = orient(frame.rgb, orientation)
                frame.alpha = None if frame.alpha is None else orient(frame.alpha, orientation)
            return pic


@contextlib.contextmanager
def _open_source(src: Source) -> Iterator[BinaryIO]:
    """A seekable binary stream over ``src``; read failures become InputError."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if not data:
            raise InputError("empty file")
        with _read_errors("the image data"):
            yield io.BytesIO(data)
        return
    try:
        path = Path(os.fspath(src))
    except TypeError:
        raise UsageError(f"expected a path or bytes, not {type(src).__name__}") from None
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"not a file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or detail(exc)}") from exc
    with fp, _read_errors(str(path)):
        info = os.fstat(fp.fileno())
        if stat.S_ISREG(info.st_mode):
            if info.st_size == 0:
                raise InputError(f"empty file: {path}")
            yield fp
            return
        data = fp.read()  # a pipe or a device: Pillow needs to seek
        if not data:
            raise InputError(f"empty file: {path}")
        yield io.BytesIO(data)


@contextlib.contextmanager
def _read_errors(label: str) -> Iterator[None]:
    """An OSError that Pillow did not report (a failing disk, a vanished file) is an InputError."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"cannot read {label}: {exc.strerror or detail(exc)}") from exc


@contextlib.contextmanager
def _bomb_guard(max_pixels: int) -> Iterator[None]:
    """Turn Pillow's decompression-bomb warning and error into ImageTooLargeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        if pixels is not None and pixels > max_pixels:
            limit = f"the {max_pixels / 1e6:.1f} MP limit"
        else:
            limit = (
                f"Pillow's {(Image.MAX_IMAGE_PIXELS or 0) / 1e6:.1f} MP decompression-bomb limit"
            )
        size = f"{pixels / 1e6:.1f} MP" if pixels is not None else "too large"
        raise ImageTooLargeError(f"image is {size}, over {limit}") from exc


def _check_png_header(fp: BinaryIO, max_pixels: int) -> tuple[int, int] | None:
    """Check a PNG's IHDR size ourselves; return (colour type, interlace) for 16-bit colour.

    Pillow decodes 16-bit RGB(A) and gray+alpha PNG to 8 bits, so those take our own path.
    """
    head = fp.read(29)
    fp.seek(0)
    if len(head) < 29 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, interlace = struct.unpack(">IIBB2xB", head[16:29])
    _check_size((width, height), max_pixels)
    return (colour, interlace) if depth == 16 and colour in (2, 4, 6) else None


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"over the {max_pixels / 1e6:.1f} MP limit"
        )


def _allowed_formats() -> list[str]:
    formats = list(_BASE_FORMATS)
    if features.check("avif"):
        formats.append("AVIF")
    if _heif_available():
        formats.append("HEIF")
    return formats


@functools.lru_cache(maxsize=1)
def _heif_available() -> bool:
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        logger.debug("pillow-heif is not installed: HEIC input is off")
        return False
    pillow_heif.register_heif_opener()
    return True


def _open_image(fp: BinaryIO) -> Image.Image:
    try:
        return Image.open(fp, formats=_allowed_formats())
    except UnidentifiedImageError:
        raise InputError(_unsupported_message(fp)) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InputError(f"damaged or truncated image file ({detail(exc)})") from exc


def _unsupported_message(fp: BinaryIO) -> str:
    fp.seek(0)
    head = fp.read(12)
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF input needs Pillow 11.2 or newer built with AVIF support"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIC input needs the optional pillow-heif package (pip install pillow-heif)"
    return f"not a supported image ({', '.join(SUPPORTED_INPUTS)})"


def _format_name(im: Image.Image) -> str:
    fmt = im.format or "unknown"
    return "JPEG" if fmt == "MPO" else fmt  # a camera's multi-picture JPEG is still a JPEG


def _n_frames(im: Image.Image) -> int:
    try:
        return int(getattr(im, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InputError(f"damaged {_format_name(im)} animation ({detail(exc)})") from exc


def _load(im: Image.Image, fmt: str) -> None:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise InputError(f"damaged or truncated {fmt} data ({detail(exc)})") from exc


def _read_animation(im: Image.Image, fmt: str, max_pixels: int) -> Picture:
    count = _n_frames(im)
    width, height = im.size
    if width * height * count > max_pixels:
        raise ImageTooLargeError(
            f"animation is {width}x{height} x {count} frames = "
            f"{width * height * count / 1e6:.1f} MP, over the {max_pixels / 1e6:.1f} MP limit"
        )
    icc = im.info.get("icc_profile")
    frames: list[Frame] = []
    for index in range(count):
        try:
            im.seek(index)
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise InputError(f"damaged {fmt} animation ({detail(exc)})") from exc
        _load(im, fmt)
        rgba = np.asarray(im.convert("RGBA"))
        duration = im.info.get("duration")
        frames.append(
            Frame(
                rgba[..., :3].copy(),
                rgba[..., 3].copy(),
                None if duration is None else round(float(duration)),
            )
        )
    if all(bool((f.alpha == 255).all()) for f in frames if f.alpha is not None):
        for frame in frames:
            frame.alpha = None
    loop = im.info.get("loop")
    return Picture(
        frames, fmt, False, icc_for(icc, "RGB"), loop=None if loop is None else int(loop)
    )


def _to_arrays(
    im: Image.Image, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, bool, bytes | None]:
    """One loaded Pillow image -> (rgb, alpha, grayscale, icc profile to carry)."""
    mode = im.mode
    if mode == "CMYK":
        im, icc = cmyk_to_rgb(im, icc)
        mode = im.mode
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = np.asarray(im)
        gray = gray.astype(np.uint16) if gray.dtype.kind == "u" else np.clip(gray, 0, 65535)
        return gray3(gray.astype(np.uint16)), None, True, icc_for(icc, "GRAY")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("1", "F"):
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        try:
            im = im.convert("RGBA" if im.has_transparency_data else "RGB")
        except (ValueError, OSError) as exc:
            raise InputError(f"unsupported colour mode {mode} ({detail(exc)})") from exc
    arr = np.asarray(im)
    if im.mode in ("L", "LA"):
        gray = arr if im.mode == "L" else arr[..., 0]
        alpha = arr[..., 1].copy() if im.mode == "LA" else None
        return gray3(gray), alpha, True, icc_for(icc, "GRAY")
    alpha = arr[..., 3].copy() if im.mode == "RGBA" else None
    return np.ascontiguousarray(arr[..., :3]), alpha, False, icc_for(icc, "RGB")
