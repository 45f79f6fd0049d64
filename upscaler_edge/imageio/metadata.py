"""What a picture carries besides pixels: EXIF orientation, ICC profiles, DPI."""

from __future__ import annotations

import functools
import io
import logging
import math
from typing import Any

import numpy as np
from PIL import Image

from .picture import detail

__all__ = [
    "EXIF_PREFIX",
    "cmyk_to_rgb",
    "dpi_of",
    "exif_of",
    "icc_for",
    "orient",
    "reset_orientation",
    "srgb_bytes",
]

logger = logging.getLogger(__name__)

_ORIENTATION_TAG = 0x0112
EXIF_PREFIX = b"Exif\x00\x00"


def _icc_colour_space(icc: bytes) -> str:
    return icc[16:20].decode("ascii", "replace").strip() if len(icc) >= 128 else ""


def icc_for(icc: bytes | None, space: str) -> bytes | None:
    """Carry ``icc`` only when it describes the colour space the picture is saved in."""
    if not icc:
        return None
    found = _icc_colour_space(icc)
    if found != space:
        logger.info("dropping an ICC profile for %r data from a %s picture", found, space)
        return None
    return bytes(icc)


@functools.lru_cache(maxsize=1)
def srgb_bytes() -> bytes:
    from PIL import ImageCms

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without littlecms
        icc = None
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.ImageCmsProfile(io.BytesIO(srgb_bytes()))
            rgb = ImageCms.profileToProfile(im, source, target, outputMode="RGB")
            if rgb is not None:
                return rgb, srgb_bytes()
        except Exception as exc:  # a damaged profile: lcms2 says why in many ways
            logger.info(
                "cannot use the CMYK image's colour profile (%s); converting plainly", detail(exc)
            )
    return im.convert("RGB"), None


def exif_of(im: Image.Image) -> tuple[bytes | None, int]:
    """The EXIF to carry (orientation reset to 1) and the orientation to apply."""
    try:
        exif = im.getexif()
        return reset_orientation(exif, im.info.get("exif"))
    except MemoryError:
        logger.info("ignoring EXIF data too large to read")
        return None, 1
    except Exception as exc:  # damaged EXIF fails in many ways (struct.error, KeyError, ...)
        logger.info("ignoring unreadable EXIF data (%s)", detail(exc))
        return None, 1


def reset_orientation(exif: Image.Exif, raw: bytes | None) -> tuple[bytes | None, int]:
    if not len(exif):
        return None, 1
    try:
        orientation = int(exif.get(_ORIENTATION_TAG, 1))
    except (TypeError, ValueError, OverflowError):
        orientation = 0
    if orientation == 1 and isinstance(raw, bytes) and raw:
        return (raw if raw.startswith(EXIF_PREFIX) else EXIF_PREFIX + raw), 1
    if _ORIENTATION_TAG in exif:
        exif[_ORIENTATION_TAG] = 1
    try:
        return exif.tobytes(), orientation if 2 <= orientation <= 8 else 1
    except Exception as exc:  # values Pillow read but cannot write back
        logger.info("dropping EXIF data that cannot be rewritten (%s)", detail(exc))
        return None, orientation if 2 <= orientation <= 8 else 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2-8) to an (H, W, ...) array, as ImageOps.exif_transpose."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    else:
        return arr
    return np.ascontiguousarray(arr)


def dpi_of(info: dict[str, Any]) -> tuple[float, float] | None:
    dpi = info.get("dpi")
    if not isinstance(dpi, (tuple, list)) or len(dpi) != 2:
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return (x, y) if 0 < x < math.inf and 0 < y < math.inf else None
