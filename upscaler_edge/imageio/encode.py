"""A :class:`Picture` -> encoded bytes in the format asked for, and the atomic write to disk.

Formats (canonical names; :data:`OUTPUT_FORMATS` lists those this machine writes):
png, jpg, webp, tiff, bmp, tga, gif, apng, avif (when Pillow has AVIF), dds (when Pillow
writes DDS). :func:`format_from_suffix` maps a file name to one (``.jpeg``/``.jpe``/``.jfif``
-> jpg, ``.tif`` -> tiff, ``.avifs`` -> avif), :data:`FORMAT_SUFFIX` gives each format's usual
suffix, :func:`check_output_format` validates a name (``jpeg``, ``tif``, ``.PNG`` are fine).

The format asked for is honoured, except when it cannot hold the picture; then PNG is written
instead, with a logged warning, and :func:`write_picture` changes a suffix that named the
asked format to ``.png``:

* transparency (any alpha below fully opaque) in jpg or bmp -> png;
* an animation (more than one frame) in a still-only format (jpg, bmp, tga, dds, tiff) -> png,
  which for several frames is an APNG (as ``apng`` is; ``png`` and ``apng`` differ only in
  name and suffix). gif, webp, avif, png and apng keep every frame, their durations and the
  loop count.

What each format keeps:

* bit depth: 16-bit pictures stay 16-bit in png/apng (stills) and tiff (16-bit gray+alpha as
  16-bit RGBA there: Pillow cannot open gray+alpha TIFF); everything else gets 8 bits
  (16-bit animations too);
* gif: 256 colours per frame and one level of transparency (alpha below 128 is transparent);
* gray pictures are written as gray where the format has it (png, jpg, tiff, bmp, tga), as
  RGB elsewhere;
* metadata: the ICC profile in png/apng, jpg, webp, tiff, avif; EXIF in png/apng, jpg (up to
  65000 bytes), webp, tiff (8-bit), avif; DPI in png/apng, jpg, tiff, bmp. A DPI the format
  cannot represent (pHYs is 32-bit pixels per metre, JFIF 16-bit dots per inch, BMP 31-bit
  pixels per metre) is left out with an info log, and EXIF or a profile that an encoder
  refuses is dropped (logged) and the picture written without it.

Errors: UsageError for an unknown format, a bad quality or a malformed picture; whatever an
encoder raises (``struct.error``, ``OverflowError``, ``MemoryError``, ...) becomes one
:class:`OutputError` line; writing is atomic (see :mod:`.atomic`).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features

from ..errors import OutputError, UpscalerError, UsageError
from ..naming import IMAGE_SUFFIXES
from .atomic import write_atomic
from .metadata import icc_for
from .picture import Picture, detail
from .png import PngStream, encode_png, stack
from .quiet import library_call
from .tiff import encode_tiff16, tiff_rational

__all__ = [
    "FORMAT_SUFFIX",
    "OUTPUT_FORMATS",
    "StreamedWrite",
    "check_output_format",
    "encode_picture",
    "format_from_suffix",
    "stream_picture",
    "write_picture",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    """What one output format can hold."""

    pillow: str
    label: str
    alpha: bool = False
    animation: bool = False
    sixteen: bool = False
    icc: bool = False
    exif: bool = False
    dpi: bool = False


_SPECS: dict[str, _Spec] = {
    "png": _Spec("PNG", "PNG", True, True, True, True, True, True),
    "jpg": _Spec("JPEG", "JPEG", icc=True, exif=True, dpi=True),
    "webp": _Spec("WEBP", "WebP", True, True, icc=True, exif=True),
    "tiff": _Spec("TIFF", "TIFF", True, sixteen=True, icc=True, exif=True, dpi=True),
    "bmp": _Spec("BMP", "BMP", dpi=True),
    "tga": _Spec("TGA", "TGA", True),
    "gif": _Spec("GIF", "GIF", True, True),
    "apng": _Spec("PNG", "APNG", True, True, True, True, True, True),
    "avif": _Spec("AVIF", "AVIF", True, True, icc=True, exif=True),
    "dds": _Spec("DDS", "DDS", True),
}


def _available(name: str) -> bool:
    spec = _SPECS[name]
    Image.init()
    if spec.pillow not in Image.SAVE:
        return False
    if name == "avif":
        return bool(features.check("avif")) and "AVIF" in Image.SAVE_ALL
    return True


#: Output formats this machine writes, canonical names (``jpeg`` is accepted as ``jpg``).
OUTPUT_FORMATS: tuple[str, ...] = tuple(name for name in _SPECS if _available(name))

#: Canonical format -> its usual file suffix.
FORMAT_SUFFIX: dict[str, str] = {
    "png": ".png",
    "jpg": ".jpg",
    "webp": ".webp",
    "tiff": ".tiff",
    "bmp": ".bmp",
    "tga": ".tga",
    "gif": ".gif",
    "apng": ".apng",
    "avif": ".avif",
    "dds": ".dds",
}

_ALIASES = {
    **{name: name for name in _SPECS},
    "jpeg": "jpg",
    "jpe": "jpg",
    "jfif": "jpg",
    "tif": "tiff",
    "avifs": "avif",
}
_DEFAULT_FRAME_MS = 100
_JPEG_MAX_EXIF = 65_000
_JPEG_MAX_DPI = 65_535  # JFIF density: unsigned 16-bit
_BMP_MAX_PPM = 0x7FFFFFFF  # BITMAPINFOHEADER resolution: signed 32-bit pixels per metre


def format_from_suffix(path: str | os.PathLike[str]) -> str | None:
    """The canonical output format for a path's suffix (``.jpeg`` -> "jpg"), or None.

    A bare suffix works too (".tif"). None when the suffix names no format written here.
    """
    text = os.fspath(path)
    name = Path(text).name
    suffix = name.lower() if name.startswith(".") and name.count(".") == 1 else ""
    suffix = suffix or Path(text).suffix.lower()
    fmt = _ALIASES.get(suffix.lstrip("."))
    return fmt if fmt in OUTPUT_FORMATS else None


def check_output_format(fmt: str) -> str:
    """The canonical name of ``fmt`` ("JPEG", ".tif", "png"), or UsageError naming the formats."""
    name = _ALIASES.get(str(fmt).strip().lower().lstrip("."))
    choices = ", ".join(OUTPUT_FORMATS)
    if name is None:
        raise UsageError(f"unknown output format {fmt!r}; use one of {choices}")
    if name not in OUTPUT_FORMATS:
        raise UsageError(f"{name} output is not available with this Pillow; use one of {choices}")
    return name


def encode_picture(pic: Picture, fmt: str = "png", quality: int = 95) -> tuple[bytes, str]:
    """Encode ``pic`` in format ``fmt`` (see :data:`OUTPUT_FORMATS`); return (bytes, format
    used).

    The format used differs from ``fmt`` only when ``fmt`` cannot hold the picture (see the
    module docstring): then it is "png", and a warning is logged. ICC profile, EXIF and DPI
    are carried where the format can hold them. Raises UsageError for an unknown format, a bad
    quality or a malformed picture, OutputError when the encoder fails.
    """
    parts, used = _encode(pic, *_target_format(pic, fmt, quality))
    return b"".join(parts), used


def write_picture(
    pic: Picture,
    dst: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Encode ``pic`` and write it to ``dst`` atomically; return the path written.

    ``fmt`` None takes the format from dst's suffix (:func:`format_from_suffix`), PNG for a
    suffix that names no image format (``.out``, none); a suffix of an image format that
    cannot be written (``.heic``, ``.qoi``) is a UsageError. When the format written is not
    the one dst's suffix names (PNG forced by transparency or animation, or ``fmt`` given
    with another format's suffix), the suffix is changed to the written format's
    (``.png`` and ``.apng`` both stand for PNG). Missing parent folders are created; the file
    gets mode 0o666 minus the umask. An existing file is never replaced unless ``overwrite``
    (OutputExistsError).
    """
    dst, named, wanted = _destination(dst, fmt)
    parts, used = _encode(pic, *_target_format(pic, wanted, quality))
    if named is not None and _family(named) != _family(used):
        logger.info("writing %s as %s", dst.name, used)
        dst = dst.with_suffix(FORMAT_SUFFIX[used])
    write_atomic(parts, dst, overwrite)
    logger.debug("wrote %s (%s, %d bytes)", dst, used, sum(len(p) for p in parts))
    return dst


def _destination(dst: str | os.PathLike[str], fmt: str | None) -> tuple[Path, str | None, str]:
    """(dst as a Path, the format its suffix names or None, the format wanted)."""
    dst = Path(os.fspath(dst))
    named = format_from_suffix(dst)
    if fmt is not None:
        wanted = fmt
    elif named is not None:
        wanted = named
    elif dst.suffix.lower() in IMAGE_SUFFIXES:
        raise UsageError(f"cannot write {dst.suffix} files; use one of {', '.join(OUTPUT_FORMATS)}")
    else:
        wanted = "png"
    return dst, named, wanted


class StreamedWrite:
    """:func:`write_picture` of a one-frame PNG whose rows are still being computed: made by
    :func:`stream_picture`; :meth:`rows_done` as rows become final (the finished bands are
    compressed meanwhile, see :class:`.png.PngStream`), then :meth:`finish` writes the same
    file ``write_picture`` would, atomically, and returns its path; :meth:`close` (always,
    idempotent) abandons what is left, so a cancelled job writes nothing."""

    def __init__(self, stream: PngStream, dst: Path, used: str, overwrite: bool) -> None:
        self._stream, self.dst, self._used, self._overwrite = stream, dst, used, overwrite

    @property
    def bands_started(self) -> int:
        """How many of the PNG's row bands were handed to the encoder before :meth:`finish`."""
        return self._stream.started

    @property
    def bands(self) -> int:
        return self._stream.bands

    def rows_done(self, rows: int) -> None:
        self._stream.rows_done(rows)

    def finish(self) -> Path:
        with _encoder_errors(_SPECS[self._used].label):
            parts = self._stream.finish()
        write_atomic(parts, self.dst, self._overwrite)
        logger.debug("wrote %s (%s, %d bytes)", self.dst, self._used, sum(len(p) for p in parts))
        return self.dst

    def close(self) -> None:
        self._stream.close()


def stream_picture(
    pic: Picture,
    dst: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> StreamedWrite | None:
    """A :class:`StreamedWrite` of ``pic`` (whose pixels are not final yet) to ``dst``, when
    :func:`write_picture` would write it with our PNG encoder: one frame, no alpha, PNG asked
    for (or named by the suffix); else None (write it with ``write_picture`` when done).
    Raises what ``write_picture`` would for a bad format or quality."""
    dst, named, wanted = _destination(dst, fmt)
    if len(pic.frames) != 1 or pic.frames[0].alpha is not None:
        return None
    used, _ = _target_format(pic, wanted, quality)
    if used not in ("png", "apng"):
        return None
    if named is not None and _family(named) != _family(used):
        logger.info("writing %s as %s", dst.name, used)
        dst = dst.with_suffix(FORMAT_SUFFIX[used])
    with _encoder_errors(_SPECS[used].label):
        gray_icc = icc_for(pic.icc_profile, "GRAY" if pic.grayscale else "RGB")
        stream = PngStream(pic.frames[0], pic.grayscale, gray_icc, pic.exif, pic.dpi)
    return StreamedWrite(stream, dst, used, overwrite)


def _family(fmt: str) -> str:
    return "png" if fmt == "apng" else fmt


def _target_format(pic: Picture, fmt: str, quality: int) -> tuple[str, int]:
    """Validate the request; the format to write (png when ``fmt`` cannot hold the picture)."""
    target = check_output_format(fmt)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise UsageError(f"quality must be a whole number from 1 to 100, not {quality!r}")
    quality = int(quality)
    if not 1 <= quality <= 100:
        raise UsageError(f"quality must be a whole number from 1 to 100, not {quality!r}")
    _check_picture(pic)
    spec = _SPECS[target]
    if len(pic.frames) > 1 and not spec.animation:
        logger.warning("image is animated; saving PNG (APNG) instead of %s", spec.label)
        target = "png"
    elif not spec.alpha and _has_transparency(pic):
        logger.warning("image has transparency; saving PNG instead of %s", spec.label)
        target = "png"
    return target, quality


def _encode(pic: Picture, target: str, quality: int) -> tuple[list[Any], str]:
    """The encoded file as a list of byte strings (no joined copy of a big output)."""
    spec = _SPECS[target]
    with _encoder_errors(spec.label):
        if len(pic.frames) > 1:
            with library_call():
                return [_save_animation(pic, target, quality)], target
        frame = pic.frames[0]
        gray_icc = icc_for(pic.icc_profile, "GRAY" if pic.grayscale else "RGB")
        if target in ("png", "apng"):
            return encode_png(frame, pic.grayscale, gray_icc, pic.exif, pic.dpi), target
        if target == "tiff" and frame.rgb.dtype == np.uint16:
            if pic.exif:
                logger.info("EXIF data is not carried into a 16-bit TIFF")
            # 16-bit gray+alpha TIFF is valid but Pillow cannot open it: RGBA instead
            gray = pic.grayscale and frame.alpha is None
            icc = icc_for(pic.icc_profile, "GRAY" if gray else "RGB")
            return encode_tiff16(frame, gray, icc, pic.dpi), target
        with library_call(capture_fd=target == "tiff"):
            return [_save_still(pic, target, quality)], target


@contextmanager
def _encoder_errors(label: str) -> Iterator[None]:
    try:
        yield
    except UpscalerError:
        raise
    except MemoryError as exc:
        raise OutputError(f"cannot encode the image as {label} (out of memory)") from exc
    except Exception as exc:
        logger.debug("encoding %s failed", label, exc_info=True)
        raise OutputError(f"cannot encode the image as {label} ({detail(exc)})") from exc


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
    """(H, W, C) uint8 from stack -> a Pillow image in L, LA, RGB or RGBA."""
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if mode == "L" else arr), mode=mode)


# Modes each Pillow writer gets: gray where the format has it, alpha dropped when opaque.
_MODES: dict[str, dict[str, str]] = {
    "jpg": {"LA": "L", "RGBA": "RGB"},
    "bmp": {"LA": "L", "RGBA": "RGB"},
    "webp": {"L": "RGB", "LA": "RGBA"},
    "avif": {"L": "RGB", "LA": "RGBA"},
    "dds": {"L": "RGB", "LA": "RGBA"},
    "gif": {},
    "tiff": {},
    "tga": {},
}


def _save_still(pic: Picture, target: str, quality: int) -> bytes:
    """Every still format but PNG (our own streaming encoder) and 16-bit TIFF, through Pillow."""
    im = _to_pil(stack(pic.frames[0], pic.grayscale, eight_bit=True))
    mode = _MODES[target].get(im.mode)
    if mode:
        im = im.convert(mode)
    if target == "gif":
        im = _gif_frame(im)
    return _save(im, target, _save_options(pic, target, quality, im.mode))


def _save(im: Image.Image, target: str, options: dict[str, Any]) -> bytes:
    """Save through Pillow; metadata the encoder refuses is dropped (logged) and retried."""
    spec = _SPECS[target]
    while True:
        buf = io.BytesIO()
        try:
            im.save(buf, spec.pillow, **options)
            return buf.getvalue()
        except MemoryError:
            raise
        except Exception as exc:
            dropped = next((key for key in ("exif", "icc_profile") if key in options), None)
            if dropped is None:
                raise
            logger.warning(
                "%s cannot carry this image's %s (%s); saving without it",
                spec.label,
                "EXIF data" if dropped == "exif" else "colour profile",
                detail(exc),
            )
            del options[dropped]


def _save_options(pic: Picture, target: str, quality: int, mode: str) -> dict[str, Any]:
    spec = _SPECS[target]
    options: dict[str, Any] = {}
    if spec.icc:
        icc = icc_for(pic.icc_profile, "GRAY" if mode in ("L", "LA") else "RGB")
        if icc:
            options["icc_profile"] = icc
    if spec.exif and pic.exif:
        if target == "jpg" and len(pic.exif) > _JPEG_MAX_EXIF:
            logger.warning("EXIF data too large for JPEG (%d bytes); not carried", len(pic.exif))
        else:
            options["exif"] = pic.exif
    if spec.dpi and pic.dpi:
        dpi = _dpi_for(target, pic.dpi)
        if dpi:
            options["dpi"] = dpi
    options.update(_WRITER_OPTIONS.get(target, lambda q: {})(quality))
    return options


_WRITER_OPTIONS: dict[str, Callable[[int], dict[str, Any]]] = {
    "jpg": lambda q: {"quality": q, "subsampling": 0 if q >= 90 else 2},
    "webp": lambda q: {"quality": q},
    "avif": lambda q: {"quality": q},
    "tiff": lambda q: {"compression": "tiff_adobe_deflate"},
    "tga": lambda q: {"compression": "tga_rle"},
}


def _dpi_for(target: str, dpi: tuple[float, float]) -> tuple[float, float] | None:
    """The DPI as the format can hold it, or None (logged)."""
    try:
        return _checked_dpi(target, dpi)
    except (ValueError, OverflowError, TypeError):
        logger.info("leaving out a resolution of %s dpi that %s cannot hold", dpi, target)
        return None


def _checked_dpi(target: str, dpi: tuple[float, float]) -> tuple[float, float] | None:
    ok = True
    if target == "jpg":
        ok = all(1 <= round(v) <= _JPEG_MAX_DPI for v in dpi)
        result: tuple[float, float] = (round(dpi[0]), round(dpi[1]))
    elif target == "bmp":
        ok = all(1 <= round(v * 39.3701) <= _BMP_MAX_PPM for v in dpi)
        result = dpi
    elif target == "tiff":
        ok = all(tiff_rational(v) is not None for v in dpi)
        result = dpi
    else:
        result = dpi
    if not ok:
        logger.info("leaving out a resolution of %s dpi that %s cannot hold", dpi, target)
        return None
    return result


def _gif_frame(im: Image.Image) -> Image.Image:
    """L/LA/RGB/RGBA -> P with an adaptive palette; alpha below 128 becomes the transparent
    index 255."""
    if im.mode == "L":
        return im.convert("P")  # a gray palette: every level kept
    if im.mode == "LA":
        im = im.convert("RGBA")
    if im.mode == "RGB":
        return im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    clear = np.asarray(im.getchannel("A")) < 128
    solid = im.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    if not clear.any():
        return solid
    index = np.asarray(solid).copy()
    index[clear] = 255
    palette = (solid.getpalette() or [])[: 255 * 3]
    palette += [0] * (256 * 3 - len(palette))
    out = Image.fromarray(index, "P")
    out.putpalette(palette)
    out.info["transparency"] = 255
    return out


def _save_animation(pic: Picture, target: str, quality: int) -> bytes:
    # Every frame in one mode, RGB or RGBA: GIF, WEBP, AVIF and APNG writers expect that.
    alpha = any(f.alpha is not None for f in pic.frames)
    images = []
    for frame in pic.frames:
        arr = stack(frame, False, eight_bit=True)
        if alpha and arr.shape[2] == 3:
            arr = np.concatenate([arr, np.full((*arr.shape[:2], 1), 255, np.uint8)], axis=2)
        images.append(_to_pil(arr))
    options = _save_options(pic, target, quality, images[0].mode)
    options.pop("dpi", None)
    if target == "gif":
        images = [_gif_frame(im) for im in images]
        if alpha:
            options["disposal"] = 2  # clear to the background: transparent areas stay so
    options.update(
        save_all=True,
        append_images=images[1:],
        duration=[f.duration_ms if f.duration_ms else _DEFAULT_FRAME_MS for f in pic.frames],
    )
    if pic.loop is not None:
        options["loop"] = pic.loop
    return _save(images[0], target, options)
