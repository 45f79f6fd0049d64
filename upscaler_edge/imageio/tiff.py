"""16-bit TIFF the way Pillow cannot write it: 16-bit RGB, RGBA and gray+alpha.

Pillow has no 16-bit colour image mode, so a 16-bit picture is written here: a baseline
little-endian TIFF, Adobe Deflate (zlib) strips of about 1 MB of raw rows each, unassociated
alpha as an extra sample, ICC profile and resolution tags. Strips are compressed one at a
time from row bands, so no full-size copy of the picture is made.
"""

from __future__ import annotations

import logging
import struct
import zlib
from fractions import Fraction

from ..errors import OutputError
from .picture import Frame
from .png import stack

__all__ = ["encode_tiff16", "tiff_rational"]

logger = logging.getLogger(__name__)

_SHORT, _LONG, _RATIONAL, _UNDEFINED = 3, 4, 5, 7
_U32 = 0xFFFFFFFF


def tiff_rational(value: float) -> tuple[int, int] | None:
    """A positive float as a TIFF RATIONAL (two unsigned 32-bit ints), or None."""
    try:
        frac = Fraction(value).limit_denominator(10_000)
    except (ValueError, OverflowError, TypeError):
        return None
    if frac <= 0 or frac.numerator > _U32:
        return None
    return frac.numerator, frac.denominator


def encode_tiff16(
    frame: Frame,
    grayscale: bool,
    icc: bytes | None,
    dpi: tuple[float, float] | None,
    level: int = 6,
) -> list[bytes]:
    """One uint16 frame -> TIFF file parts (header, strips, then the IFD)."""
    height, width = frame.rgb.shape[:2]
    channels = (1 if grayscale else 3) + (frame.alpha is not None)
    row_bytes = width * channels * 2
    rows_per_strip = max(1, (1 << 20) // max(1, row_bytes))
    strips: list[bytes] = []
    for y0 in range(0, height, rows_per_strip):
        part = Frame(
            frame.rgb[y0 : y0 + rows_per_strip],
            None if frame.alpha is None else frame.alpha[y0 : y0 + rows_per_strip],
        )
        strips.append(zlib.compress(stack(part, grayscale).astype("<u2").tobytes(), level))
    offsets, pos = [], 8
    for strip in strips:
        offsets.append(pos)
        pos += len(strip)
    pos += pos & 1  # the IFD starts on a word boundary
    ifd_at = pos

    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, packed values

    def add(tag: int, kind: int, values: list[int], fmt: str) -> None:
        count = len(values) // 2 if kind == _RATIONAL else len(values)
        entries.append((tag, kind, count, struct.pack(f"<{len(values)}{fmt}", *values)))

    add(256, _LONG, [width], "I")
    add(257, _LONG, [height], "I")
    add(258, _SHORT, [16] * channels, "H")
    add(259, _SHORT, [8], "H")  # Adobe Deflate
    add(262, _SHORT, [1 if grayscale else 2], "H")  # BlackIsZero or RGB
    add(273, _LONG, offsets, "I")
    add(277, _SHORT, [channels], "H")
    add(278, _LONG, [rows_per_strip], "I")
    add(279, _LONG, [len(s) for s in strips], "I")
    resolution = [tiff_rational(v) for v in dpi] if dpi else []
    if dpi and all(resolution):
        add(282, _RATIONAL, list(resolution[0] or ()), "I")
        add(283, _RATIONAL, list(resolution[1] or ()), "I")
    elif dpi:
        logger.info("leaving out a resolution of %s dpi that TIFF cannot hold", dpi)
    add(284, _SHORT, [1], "H")  # chunky: samples of a pixel together
    if dpi and all(resolution):
        add(296, _SHORT, [2], "H")  # inches
    if frame.alpha is not None:
        add(338, _SHORT, [2], "H")  # unassociated alpha
    add(339, _SHORT, [1] * channels, "H")  # unsigned integers
    if icc:
        entries.append((34675, _UNDEFINED, len(icc), bytes(icc)))
    entries.sort()

    table = bytearray(struct.pack("<H", len(entries)))
    extra = bytearray()
    extra_at = ifd_at + 2 + 12 * len(entries) + 4
    for tag, kind, count, packed in entries:
        if len(packed) <= 4:
            table += struct.pack("<HHI", tag, kind, count) + packed.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += packed + b"\0" * (len(packed) & 1)
    table += b"\0\0\0\0"  # no next IFD
    if extra_at + len(extra) > _U32:
        raise OutputError("image too large for a TIFF file (over 4 GB)")
    header = b"II*\0" + struct.pack("<I", ifd_at)
    padding = b"\0" * (ifd_at - (8 + sum(len(s) for s in strips)))
    return [header, *strips, padding, bytes(table), bytes(extra)]
