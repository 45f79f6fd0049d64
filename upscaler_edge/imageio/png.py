"""PNG the way Pillow does not do it: 16-bit RGB(A) and gray+alpha decoding (Pillow keeps only
8 bits), and a streaming Paeth + zlib encoder that never makes a full-size copy."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from ..errors import InputError
from .metadata import EXIF_PREFIX, dpi_of, icc_for, orient, reset_orientation
from .picture import Frame, Picture, detail, gray3

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "PNG_SIGNATURE",
    "PngStream",
    "encode_png",
    "png_phys",
    "read_png16",
    "stack",
]

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------------------------
# 16-bit PNG (Pillow keeps only 8 bits of RGB(A) and gray+alpha): inflate and unfilter here.

_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def read_png16(data: bytes, info: dict[str, Any], kind: tuple[int, int]) -> Picture:
    colour, interlace = kind
    chunks: dict[bytes, bytes] = {}
    idat: list[bytes] = []
    pos = 8
    while pos + 12 <= len(data):
        length, name = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if pos + 12 + length > len(data):
            break
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(name + body) != crc:
            raise InputError(
                f"damaged PNG data (bad checksum in the {name.decode('latin-1')} chunk)"
            )
        if name == b"IDAT":
            idat.append(body)
        chunks.setdefault(name, body)
        pos += 12 + length
        if name == b"IEND":
            break
    else:
        raise InputError("damaged or truncated PNG data (no end chunk)")
    if b"IEND" not in chunks:
        raise InputError("damaged or truncated PNG data (file ends inside a chunk)")
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    bpp = 2 * _PNG_CHANNELS[colour]
    passes = (
        [(0, 0, 1, 1, width, height)]
        if not interlace
        else [
            (x0, y0, dx, dy, (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in _ADAM7
            if width > x0 and height > y0
        ]
    )
    need = sum(ph * (pw * bpp + 1) for *_, pw, ph in passes)
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), need)
    except zlib.error as exc:
        raise InputError(f"damaged PNG data ({detail(exc)})") from exc
    if len(raw) < need:
        raise InputError("damaged or truncated PNG data (pixel data ends early)")
    flat = np.frombuffer(raw, np.uint8)
    out = np.empty((height, width, bpp), np.uint8)
    offset = 0
    for x0, y0, dx, dy, pw, ph in passes:
        size = ph * (pw * bpp + 1)
        out[y0::dy, x0::dx] = _unfilter(flat[offset : offset + size], pw, ph, bpp)
        offset += size
    px = out.view(">u2").astype(np.uint16)  # (H, W, channels)
    gray = colour in (0, 4)
    rgb = gray3(px[..., 0]) if gray else np.ascontiguousarray(px[..., :3])
    alpha = px[..., -1].copy() if colour in (4, 6) else None
    if colour == 2 and b"tRNS" in chunks and len(chunks[b"tRNS"]) == 6:
        key = np.frombuffer(chunks[b"tRNS"], ">u2").astype(np.uint16)
        alpha = np.where((rgb == key).all(axis=2), 0, 65535).astype(np.uint16)
    exif, orientation = None, 1
    if b"eXIf" in chunks:
        parsed = Image.Exif()
        try:
            parsed.load(EXIF_PREFIX + chunks[b"eXIf"])
            exif, orientation = reset_orientation(parsed, EXIF_PREFIX + chunks[b"eXIf"])
        except Exception as exc:  # damaged EXIF fails in many ways
            logger.info("ignoring unreadable EXIF data (%s)", detail(exc))
    rgb = orient(rgb, orientation)
    alpha = None if alpha is None else orient(alpha, orientation)
    icc = info.get("icc_profile")
    return Picture(
        [Frame(rgb, alpha)],
        "PNG",
        gray,
        icc_for(icc if isinstance(icc, bytes) else None, "GRAY" if gray else "RGB"),
        exif,
        dpi_of(info),
    )


def _unfilter(buf: np.ndarray, width: int, height: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters: ``buf`` is height rows of (filter byte + width*bpp bytes)."""
    rows = buf.reshape(height, width * bpp + 1)
    kinds = rows[:, 0]
    if kinds.size and int(kinds.max()) > 4:
        raise InputError("damaged PNG data (unknown row filter)")
    filt = rows[:, 1:].reshape(height, width, bpp)
    if not (kinds >= 3).any():  # None/Sub/Up only: whole rows at once
        out = np.empty((height, width, bpp), np.uint8)
        prev = np.zeros((width, bpp), np.uint8)
        for y, kind in enumerate(kinds.tolist()):
            row = filt[y]
            if kind == 1:
                row = np.cumsum(row, axis=0, dtype=np.uint8)  # wraps modulo 256, as PNG does
            elif kind == 2:
                row = row + prev
            out[y] = row
            prev = out[y]
        return out
    # Average/Paeth need the pixel to the left and the row above: sweep anti-diagonals,
    # whose pixels depend only on earlier diagonals, vectorised over each diagonal.
    rec = np.zeros((height + 1, width + 1, bpp), np.uint8)
    kind16 = kinds.astype(np.int16)
    for d in range(height + width - 1):
        ys = np.arange(max(0, d - width + 1), min(height - 1, d) + 1)
        xs = d - ys
        a = rec[ys + 1, xs].astype(np.int16)
        b = rec[ys, xs + 1].astype(np.int16)
        c = rec[ys, xs].astype(np.int16)
        k = kind16[ys, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([k == 1, k == 2, k == 3, k == 4], [a, b, (a + b) >> 1, paeth], 0)
        rec[ys + 1, xs + 1] = (filt[ys, xs] + pred) & 255
    return rec[1:, 1:]


PNG_COMPRESS_LEVEL = 1  # zlib level: 4x faster than Pillow's 6 for ~12% larger files


def encode_png(
    frame: Frame,
    grayscale: bool,
    icc: bytes | None,
    exif: bytes | None,
    dpi: tuple[float, float] | None,
    level: int = PNG_COMPRESS_LEVEL,
) -> list[bytes]:
    """One frame -> PNG chunks (8 or 16 bits, as the frame's dtype), streamed in row bands.

    Every row uses the Paeth filter, computed with numpy from the raw rows, and each band of
    about 2 MB is stacked, filtered and compressed on its own, the bands in parallel on every
    core: no full-size copy of the picture is made, so a large output costs its compressed size
    on top of the frame, not several frames.
    """
    layout = _PngLayout(frame, grayscale, icc, exif, dpi, level)
    return layout.assemble(_ordered_parallel(layout.band, len(layout.bands)))


class _PngLayout:
    """What :func:`encode_png` and :class:`PngStream` share: the header chunks, the row bands
    and the compression of one band, so both write the same bytes."""

    def __init__(
        self,
        frame: Frame,
        grayscale: bool,
        icc: bytes | None,
        exif: bytes | None,
        dpi: tuple[float, float] | None,
        level: int,
    ) -> None:
        self.frame, self.grayscale, self.level = frame, grayscale, level
        height, width = frame.rgb.shape[:2]
        channels = (1 if grayscale else 3) + (frame.alpha is not None)
        colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        self.depth = 16 if frame.rgb.dtype == np.uint16 else 8
        bpp = channels * self.depth // 8
        self.head = [
            PNG_SIGNATURE,
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, self.depth, colour, 0, 0, 0)),
        ]
        if icc:
            self.head.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
        phys = png_phys(dpi)
        if phys:
            self.head.append(_chunk(b"pHYs", struct.pack(">IIB", *phys, 1)))
        if exif:
            self.head.append(_chunk(b"eXIf", exif[6:] if exif.startswith(EXIF_PREFIX) else exif))
        rows_per_band = max(1, _BAND_BYTES // max(1, width * bpp))
        #: (first row, end row) of each band
        self.bands = [
            (y0, min(y0 + rows_per_band, height)) for y0 in range(0, height, rows_per_band)
        ]

    def band(self, index: int) -> tuple[bytes, int, int]:
        """Band ``index`` filtered and deflated: (data, its Adler-32, raw length)."""
        y0, y1 = self.bands[index]
        raw = _filtered_rows(self.frame, self.grayscale, self.depth, y0, y1)
        packer = zlib.compressobj(self.level, zlib.DEFLATED, -15)  # raw deflate: framed below
        last = index == len(self.bands) - 1
        data = packer.compress(raw) + packer.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
        return data, zlib.adler32(raw), len(raw)

    def assemble(self, bands: Iterable[tuple[bytes, int, int]]) -> list[bytes]:
        """The whole file's chunks from every band's ``band()`` result, in order."""
        # One zlib stream made of independently deflated bands (as pigz does): each band ends
        # on a byte boundary with a full flush, so they concatenate; the checksum is combined.
        out = [*self.head, _chunk(b"IDAT", bytes([0x78, 0x01]))]
        adler = 1
        for data, band_adler, length in bands:
            if data:
                out.append(_chunk(b"IDAT", data))
            adler = _adler32_combine(adler, band_adler, length)
        out += [_chunk(b"IDAT", struct.pack(">I", adler)), _chunk(b"IEND", b"")]
        return out


class PngStream:
    """:func:`encode_png` of a frame whose rows are still being filled in (top to bottom or
    not): the caller says how many rows from the top are final (:meth:`rows_done`), and each
    band whose rows all are is filtered and compressed at once on a background thread; then
    :meth:`finish` compresses the bands left, on every core, and gives the same chunks as
    :func:`encode_png` would for the finished frame. :meth:`close` abandons it (what is
    running finishes, nothing more starts). ``rows_done`` may be called from any thread.

    While rows are still coming, the bands are compressed by threads of idle priority
    (Linux's SCHED_IDLE: they run on cores nothing else wants), one per core, so the encoding
    takes as little as it can from the inference it overlaps: on a GPU it runs while the CPU
    waits; CPU inference keeps every core busy (an inference thread made to share its core
    holds every core up at the next barrier), which is why the pipeline streams only for
    GPUs (``pipeline.STREAM_PNG_ON_CPU``). Where idle priority cannot be had, one thread of
    normal priority compresses. :meth:`finish` takes back the bands not started yet and
    compresses them at normal priority, as :func:`encode_png` does.
    """

    def __init__(
        self,
        frame: Frame,
        grayscale: bool,
        icc: bytes | None,
        exif: bytes | None,
        dpi: tuple[float, float] | None,
        level: int = PNG_COMPRESS_LEVEL,
    ) -> None:
        self._layout = _PngLayout(frame, grayscale, icc, exif, dpi, level)
        self._lock = threading.Lock()
        self._next = 0  # the first band not yet submitted
        self._done: list[Future[tuple[bytes, int, int]]] = []
        self._early_tids: list[int] = []
        self._early = ThreadPoolExecutor(
            _encode_threads() if _IDLE_POLICY is not None else 1,
            thread_name_prefix="png-early",
            initializer=self._idle_priority,
        )
        self._closed = False

    @property
    def bands(self) -> int:
        return len(self._layout.bands)

    @property
    def started(self) -> int:
        """How many bands :meth:`rows_done` handed to the background thread(s): compressed
        while rows were still coming, not by :meth:`finish`."""
        with self._lock:
            return self._next

    def rows_done(self, rows: int) -> None:
        """Rows ``0:rows`` of the frame are final: start compressing the bands inside them."""
        with self._lock:
            bands = self._layout.bands
            while not self._closed and self._next < len(bands) and bands[self._next][1] <= rows:
                self._done.append(self._early.submit(self._layout.band, self._next))
                self._next += 1

    def _idle_priority(self) -> None:
        """In each early thread: run only on otherwise idle cores (where possible)."""
        tid = threading.get_native_id()
        with self._lock:
            self._early_tids.append(tid)
        if _IDLE_POLICY is not None:
            try:
                os.sched_setscheduler(tid, _IDLE_POLICY, os.sched_param(0))
            except OSError as exc:
                logger.debug("cannot give the PNG encoder idle priority (%s)", exc)

    def _normal_priority(self) -> None:
        """The early threads' band still running is now awaited: back to normal priority
        (not allowed to every user without privileges; then it finishes on a free core)."""
        with self._lock:
            tids = list(self._early_tids)
        if _IDLE_POLICY is None:
            return
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))

    def settle(self) -> None:
        """Wait until the bands started so far are compressed (their errors wait for
        :meth:`finish`)."""
        with self._lock:
            started = list(self._done)
        wait(started)

    def finish(self) -> list[bytes]:
        """Every row is final: the PNG's chunks (exceptions of the band work are raised)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("PngStream is closed")
            early, count = list(self._done), len(self._layout.bands)
            self._closed = True  # rows_done starts nothing more: the rest is done here
        try:
            # bands still queued for the idle threads are taken back, with the ones never
            # started, and compressed at normal priority on every core
            # (from the end only: with several threads one may be about to start a band
            # while the next already runs, and the bands kept must be the first ones)
            kept = list(early)
            while kept and kept[-1].cancel():
                kept.pop()
            self._normal_priority()
            first_late = len(kept)
            late = _ordered_parallel(
                lambda i: self._layout.band(first_late + i), count - first_late
            )
            return self._layout.assemble(itertools.chain((f.result() for f in kept), late))
        finally:
            self.close()

    def close(self) -> None:
        """Stop: bands not yet started are dropped, running ones finish; idempotent."""
        with self._lock:
            self._closed = True
        self._early.shutdown(wait=True, cancel_futures=True)


_PHYS_MAX = 0xFFFFFFFF  # pHYs holds pixels per metre as unsigned 32-bit


def png_phys(dpi: tuple[float, float] | None) -> tuple[int, int] | None:
    """DPI -> pHYs pixels per metre, or None (logged) when pHYs cannot hold it.

    A camera may claim 4294967295 dpi; after a x4 upscale that is 6.8e11 pixels per metre,
    which no pHYs chunk can say: the chunk is left out rather than clamped to a made-up value.
    """
    if not dpi:
        return None
    try:
        ppm = tuple(round(float(v) / 0.0254) for v in dpi)
    except (TypeError, ValueError, OverflowError):
        ppm = ()
    if len(ppm) != 2 or not all(1 <= v <= _PHYS_MAX for v in ppm):
        logger.info("leaving out a resolution of %s dpi that PNG cannot hold", dpi)
        return None
    return ppm[0], ppm[1]


#: the scheduling policy of the threads that compress while rows still come (None: none)
_IDLE_POLICY: int | None = getattr(os, "SCHED_IDLE", None)
if not hasattr(os, "sched_setscheduler"):
    _IDLE_POLICY = None
_BAND_BYTES = 2 << 20  # raw rows per band: big enough that the lost dictionary costs nothing
_ADLER_BASE = 65521
_T = TypeVar("_T")


def _encode_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _ordered_parallel(work: Callable[[int], _T], count: int) -> Iterator[_T]:
    """``work(0) ... work(count - 1)`` on all cores (numpy and zlib release the GIL), yielded
    in order, with at most two bands per thread in flight so memory stays bounded."""
    threads = min(_encode_threads(), count)
    if threads <= 1:
        yield from (work(i) for i in range(count))
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="png") as pool:
        pending: deque[Future[_T]] = deque()
        for i in range(count):
            pending.append(pool.submit(work, i))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _filtered_rows(frame: Frame, grayscale: bool, depth: int, y0: int, y1: int) -> bytes:
    """Rows ``y0:y1`` of the frame as PNG scanlines, each Paeth-filtered (filter byte 4)."""
    first = max(0, y0 - 1)  # the row above the band: Paeth's "b" of the band's first row
    part = Frame(
        frame.rgb[first:y1],
        None if frame.alpha is None else frame.alpha[first:y1],
        None,
    )
    stacked = stack(part, grayscale)
    if depth == 16:
        stacked = stacked.astype(">u2")
    width_bytes = stacked.shape[1] * stacked.shape[2] * stacked.itemsize
    bpp = stacked.shape[2] * stacked.itemsize
    both = stacked.view(np.uint8).reshape(-1, width_bytes).astype(np.int16)
    raw = both[y0 - first :]
    a = np.zeros_like(raw)
    a[:, bpp:] = raw[:, :-bpp]
    b = both[:-1] if y0 > 0 else np.concatenate([np.zeros_like(raw[:1]), raw[:-1]])
    c = np.zeros_like(raw)
    c[:, bpp:] = b[:, :-bpp]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    rows = np.empty((raw.shape[0], width_bytes + 1), np.uint8)
    rows[:, 0] = 4  # Paeth on every row
    rows[:, 1:] = (raw - pred) & 255
    return rows.tobytes()


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of A + B from those of A and B (zlib's adler32_combine)."""
    rem = len2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (adler2 & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((adler1 >> 16) & 0xFFFF) + ((adler2 >> 16) & 0xFFFF) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


def _chunk(name: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))


def stack(frame: Frame, grayscale: bool, eight_bit: bool = False) -> np.ndarray:
    """Frame -> (H, W, C) array in save order: gray, gray+alpha, RGB or RGBA."""
    rgb, alpha = frame.rgb, frame.alpha
    if eight_bit and rgb.dtype == np.uint16:
        rgb = _to_uint8(rgb)
        alpha = None if alpha is None else _to_uint8(alpha)
    if grayscale:  # the net may have let the three channels drift apart a little
        wide = rgb.astype(np.uint32)
        gray = ((wide[..., 0] + wide[..., 1] + wide[..., 2] + 1) // 3).astype(rgb.dtype)
        planes = [gray] if alpha is None else [gray, alpha]
    else:
        planes = [rgb[..., 0], rgb[..., 1], rgb[..., 2]] + ([] if alpha is None else [alpha])
    return np.stack(planes, axis=2)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
