"""Bytes or a path -> a decoded :class:`Picture`: the input side of the image I/O contract.

Contract (see docs/API.md, "Image I/O"):

* Input is chosen by *content*, never by file name, from an allowlist: PNG and APNG, JPEG
  (and MPO, a camera's multi-picture JPEG: its first picture), WEBP, BMP, TIFF, GIF, AVIF and
  AVIF sequences (when Pillow has AVIF built in), HEIF/HEIC (when the optional
  ``pillow-heif`` package is importable), TGA and DDS (game textures), PNM (PBM/PGM/PPM/PAM),
  QOI, ICO (its largest picture), JPEG 2000 (JP2/J2K/JPX) and PSD (the flattened composite).
  Anything else is an :class:`InputError` that lists them.
* The pixel count is checked on the header, before any pixel is decoded, against
  ``max_pixels`` (default 50 MP), and that is the only pixel limit: Pillow's own
  decompression-bomb check (89.5 MP) is replaced by ``max_pixels`` inside our calls, for any
  value (see :mod:`.quiet`), without changing ``PIL.Image.MAX_IMAGE_PIXELS``. Over the limit
  is :class:`ImageTooLargeError`.
* Every failure is an :class:`~upscaler_edge.errors.InputError` (or a UsageError for a
  source that is neither a path nor bytes) whose ``str`` is one line; whatever a decoder
  raises on damaged data (``struct.error``, ``zlib.error``, ``MemoryError`` from a lying
  header, ``KeyError``, ...) is translated, and damaged or truncated data is never decoded
  "as far as it goes". A valid file using a variant Pillow cannot decode (a BMP with PNG or
  JPEG compression, ...) is "unsupported BMP variant (...)".
* Libraries stay quiet: Pillow's warnings and log records and libtiff's messages go to
  ``logging`` (``upscaler_edge.imageio.*``, INFO/DEBUG), never to stderr (see :mod:`.quiet`).
* A :class:`Picture` holds frames of ``(H, W, 3)`` RGB arrays (uint8, or uint16 for 16-bit
  PNG and 16-bit gray inputs) plus an optional ``(H, W)`` alpha of the same dtype. EXIF
  orientation is already applied (the carried EXIF says orientation 1); L/LA inputs are
  flagged ``grayscale`` and their gray is replicated into the three channels; CMYK is converted
  to sRGB through its embedded profile. ``icc_profile`` is only ever a profile matching the
  output (RGB, or GRAY for grayscale pictures).
* Output: see :mod:`.encode`.

Threading: the Pillow calls of :func:`probe` and :func:`read_picture` run under one
process-wide lock (warning filters and fd 2 are process-wide); calls from several threads are
safe and take turns there.
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
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from ..errors import ImageTooLargeError, InputError, UpscalerError, UsageError
from .metadata import cmyk_to_rgb, dpi_of, exif_of, icc_for, orient
from .picture import DEFAULT_MAX_PIXELS, Frame, Picture, Source, detail, gray3
from .png import PNG_SIGNATURE, read_png16
from .quiet import check_size, library_call

__all__ = ["SUPPORTED_INPUTS", "probe", "read_picture"]

logger = logging.getLogger(__name__)

#: Human names of the input formats, in the order error messages list them.
SUPPORTED_INPUTS: tuple[str, ...] = (
    "png",
    "jpeg",
    "webp",
    "bmp",
    "tiff",
    "gif",
    "avif",
    "heic",
    "tga",
    "dds",
    "pnm",
    "qoi",
    "ico",
    "jpeg2000",
    "psd",
)

# Pillow's names, in the order Pillow tries them: TGA has no signature, so it comes last.
_BASE_FORMATS = (
    "PNG",
    "JPEG",  # and MPO: Pillow's JPEG opener returns those
    "WEBP",
    "GIF",
    "BMP",
    "TIFF",
    "QOI",
    "DDS",
    "PSD",
    "ICO",
    "JPEG2000",
    "PPM",
)
_LAST_FORMATS = ("TGA",)
_ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG", "AVIF"})

# What a file's first bytes say it is, for messages about files Pillow cannot open.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (PNG_SIGNATURE, 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"GIF8", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"II+\x00", 0, "TIFF"),
    (b"MM\x00+", 0, "TIFF"),
    (b"WEBP", 8, "WEBP"),
    (b"qoif", 0, "QOI"),
    (b"DDS ", 0, "DDS"),
    (b"8BPS", 0, "PSD"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG2000"),
)
_DISPLAY_NAMES = {"PPM": "PNM"}  # Pillow's name for the whole PBM/PGM/PPM family
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# Reading


def probe(src: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """Return ``(format, width, height)`` read from the header only; no pixel is decoded.

    ``format`` is Pillow's name ("PNG", "JPEG", ...); the size is as stored, before EXIF
    orientation. Raises InputError (unreadable, unsupported) or ImageTooLargeError.
    """
    with _open_source(src) as fp:
        _check_png_header(fp, max_pixels)
        with _decoding(fp, max_pixels) as kind, _open_image(fp, kind) as im:
            check_size(im.size, max_pixels)
            kind[0] = _format_name(im)
            return kind[0], im.size[0], im.size[1]


def read_picture(
    src: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, all_frames: bool = False
) -> Picture:
    """Decode ``src`` (a path or the file's bytes) into a :class:`Picture`.

    Animated GIF/WEBP/PNG/AVIF give their first frame, or every frame (converted to RGB +
    alpha, with durations and the loop count) when ``all_frames`` is true; the total pixel
    count over all frames must then stay under ``max_pixels`` too.
    """
    with _open_source(src) as fp:
        png16 = _check_png_header(fp, max_pixels)
        with _decoding(fp, max_pixels) as kind, _open_image(fp, kind) as im:
            check_size(im.size, max_pixels)
            fmt = kind[0] = _format_name(im)
            animated = all_frames and fmt in _ANIMATED_FORMATS and _n_frames(im) > 1
            if png16 and not animated:
                fp.seek(0)
                return read_png16(fp.read(), im.info, png16)
            im.load()
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
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise InputError(
            f"cannot read {path}: {getattr(exc, 'strerror', None) or detail(exc)}"
        ) from exc
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
def _decoding(fp: BinaryIO, max_pixels: int) -> Iterator[list[str]]:
    """Quiet Pillow calls under our pixel limit; any failure inside becomes one InputError.

    Yields a one-item list holding the format name for messages: guessed from the first
    bytes, then Pillow's name once the file is open.
    """
    head = fp.read(16)
    fp.seek(0)
    kind = [_sniff(head)]
    try:
        with library_call(max_pixels, capture_fd=head[:4] in _TIFF_MAGIC):
            yield kind
    except UpscalerError:
        raise
    except Image.DecompressionBombError as exc:  # only if Pillow's check was not replaced
        raise ImageTooLargeError(f"image is too large ({detail(exc)})") from exc
    except MemoryError as exc:
        raise InputError(
            f"damaged {kind[0]} data: its header asks for more memory than there is"
        ) from exc
    except RecursionError as exc:
        raise InputError(f"damaged {kind[0]} data (nested too deeply)") from exc
    except Exception as exc:
        logger.debug("decoding %s failed", kind[0], exc_info=True)
        raise InputError(_failure_message(kind[0], exc)) from exc


def _failure_message(fmt: str, exc: BaseException) -> str:
    fmt = _DISPLAY_NAMES.get(fmt, fmt)
    text = detail(exc)
    if text.lower().startswith("unsupported") or "not supported" in text.lower():
        what = re.sub(rf"^unsupported\s+(?:{re.escape(fmt)}\s+)?", "", text, flags=re.I)
        return f"unsupported {fmt} variant ({what or text})"
    if isinstance(exc, (KeyError, IndexError, TypeError, AttributeError)):
        text = f"{type(exc).__name__}: {text}"
    return f"damaged or truncated {fmt} data ({text})"


def _sniff(head: bytes) -> str:
    for magic, offset, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[4:8] == b"ftyp":
        return "AVIF" if head[8:12] in (b"avif", b"avis") else "HEIF"
    if len(head) >= 2 and head[:1] == b"P" and head[1:2] in b"1234567fF":
        return "PNM"
    return "image"


def _check_png_header(fp: BinaryIO, max_pixels: int) -> tuple[int, int] | None:
    """Check a PNG's IHDR size ourselves; return (colour type, interlace) for 16-bit colour.

    Pillow decodes 16-bit RGB(A) and gray+alpha PNG to 8 bits, so those take our own path.
    """
    head = fp.read(29)
    fp.seek(0)
    if len(head) < 29 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, interlace = struct.unpack(">IIBB2xB", head[16:29])
    check_size((width, height), max_pixels)
    return (colour, interlace) if depth == 16 and colour in (2, 4, 6) else None


def _allowed_formats() -> list[str]:
    formats = list(_BASE_FORMATS)
    if features.check("avif"):
        formats.append("AVIF")
    if _heif_available():
        formats.append("HEIF")
    return formats + list(_LAST_FORMATS)


@functools.lru_cache(maxsize=1)
def _heif_available() -> bool:
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        logger.debug("pillow-heif is not installed: HEIC input is off")
        return False
    pillow_heif.register_heif_opener()
    return True


def _open_image(fp: BinaryIO, kind: list[str]) -> Image.Image:
    try:
        return Image.open(fp, formats=_allowed_formats())
    except UnidentifiedImageError:
        raise InputError(_unsupported_message(fp, kind[0])) from None


def _unsupported_message(fp: BinaryIO, guess: str) -> str:
    fp.seek(0)
    head = fp.read(12)
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        allowed = _allowed_formats()
        if brand in (b"avif", b"avis"):
            if "AVIF" not in allowed:
                return "AVIF input needs Pillow 11.2 or newer built with AVIF support"
            return "damaged or unsupported AVIF data"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            if "HEIF" not in allowed:
                return "HEIC input needs the optional pillow-heif package (pip install pillow-heif)"
            return "damaged or unsupported HEIF data"
    if guess not in ("image", "AVIF", "HEIF"):  # a known signature Pillow refused to open
        return f"damaged or truncated {guess} header"
    return f"not a supported image ({', '.join(SUPPORTED_INPUTS)})"


def _format_name(im: Image.Image) -> str:
    fmt = im.format or "unknown"
    return "JPEG" if fmt == "MPO" else fmt  # a camera's multi-picture JPEG is still a JPEG


def _n_frames(im: Image.Image) -> int:
    return int(getattr(im, "n_frames", 1))


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
        im.seek(index)
        im.load()
        rgba = np.asarray(im.convert("RGBA"))
        if rgba.shape[:2] != (height, width):
            raise InputError(f"damaged {fmt} animation (frame {index} has another size)")
        duration = im.info.get("duration")
        frames.append(
            Frame(
                rgba[..., :3].copy(),
                rgba[..., 3].copy(),
                None if duration is None else max(0, round(float(duration))),
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
    if not isinstance(icc, bytes):
        icc = None
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
