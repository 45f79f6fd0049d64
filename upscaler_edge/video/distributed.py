"""One video's segments done on several machines, joined in order without re-encoding.

The client plans (:func:`plan_segments`): it probes the source, counts its frames, chooses
the encoder, the segment length and the tile exactly as :func:`upscale_video` does, and
writes it all into a :class:`SegmentPlan` (JSON-able). Each worker, given the same source
file, the plan and an index, makes that segment (:func:`encode_segment`): frames
``[index * segment_frames, (index + 1) * segment_frames)``, upscaled and encoded into one
segment file in the job folder's ``.pkt`` format, and returns its metadata (JSON-able).
The client then checks every segment against its metadata and the plan and writes the
output from their packets and the source's other streams (:func:`join_segments`), as
``upscale_video`` does at its end. On one machine, with the same options, the output is
the file ``upscale_video`` writes (frames, timestamps and pixels; see the tests for bytes).

Frames are timed as in a pass over the whole video. A worker seeks to its first frame when
the plan says the source's timestamps allow it (every packet has its own distinct pts), and
else decodes from the start and drops the frames before its segment.

Who moves the files (object store, shared folder) is the caller's business; this module only
reads and writes paths.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError, OutputError, SegmentError, UsageError
from ..imageio.atomic import fsync_dir
from ..integrity import sha256 as file_sha256
from ..options import Options
from ..pipeline import CancelToken, Upscaler
from ..tiling import MIN_TILE
from .codecs import EncoderChoice, choose_encoder
from .mux import join
from .options import VideoOptions
from .progress import VideoProgressCallback, _Meter
from .segments import Packet, Segment, SegmentWriter, read_segment
from .sniff import OUTPUT_CONTAINERS
from .source import ResumePoint, SourceFrame, VideoInfo, open_reader
from .transcode import (
    VideoResult,
    _check_output,
    _pin_tile,
    _pump,
    output_container,
    segment_frames,
)

__all__ = [
    "PLAN_VERSION",
    "SegmentPlan",
    "encode_segment",
    "join_segments",
    "plan_segments",
    "segment_metadata_keys",
]

log = logging.getLogger(__name__)

PLAN_VERSION = 1
SEGMENT_VERSION = 1
#: Sources up to this size are hashed whole; larger ones by their first and last MiB.
WHOLE_HASH_LIMIT = 256 << 20
_ENDS = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


# -- the source's identity ----------------------------------------------------------------
def _identity(src: Path, hashed: str | None = None) -> tuple[int, str, str]:
    """(size, sha256, "whole" | "ends"): the whole file's hash, or for a large one the hash
    of its size and first and last MiB. ``hashed`` forces the method (a worker's check)."""
    try:
        size = src.stat().st_size
        method = hashed or ("whole" if size <= WHOLE_HASH_LIMIT else "ends")
        if method == "whole":
            return size, file_sha256(src), method
        h = hashlib.sha256(str(size).encode())
        with open(src, "rb") as fh:
            h.update(fh.read(_ENDS))
            fh.seek(max(0, size - _ENDS))
            h.update(fh.read(_ENDS))
    except OSError as exc:
        raise InputError(f"cannot read {src.name}: {exc.strerror or exc}") from exc
    return size, h.hexdigest(), method


def _check_source(src: Path, plan: SegmentPlan) -> None:
    size, digest, _ = _identity(src, plan.source_hashed)
    if size != plan.source_size or digest != plan.source_sha256:
        raise InputError(
            f"{src.name} is not the file the plan was made for (its size or sha256 differs): "
            "plan again"
        )


def _check_info(src: Path, info: VideoInfo, plan: SegmentPlan) -> None:
    if (info.width, info.height) != plan.in_size or info.time_base != plan.time_base:
        raise InputError(f"{src.name} does not decode as the plan says: plan again")


# -- the plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentPlan:
    """Everything a worker needs besides the source file, decided once on the client.

    ``cut_pts[i - 1]`` is the source pts of the last frame before segment ``i`` (for the
    seek), or ``cut_pts`` is None when the source's timestamps do not allow seeking.
    ``device`` is the one the tile was pinned for (workers may use another).
    """

    source_size: int
    source_sha256: str
    source_hashed: str  # "whole" or "ends"
    in_size: tuple[int, int]  # as displayed
    time_base: Fraction
    frames: int
    segment_frames: int
    count: int
    cut_pts: tuple[int, ...] | None
    model: str
    scale: int
    denoise: int | None
    tta: bool
    tile: int
    precision: str
    device: str
    container: str
    encoder: EncoderChoice
    upscaler_edge: str
    pyav: str

    @property
    def out_size(self) -> tuple[int, int]:
        return (self.encoder.width, self.encoder.height)

    def frames_of(self, index: int) -> range:
        """The frame indices of segment ``index``."""
        start = index * self.segment_frames
        return range(start, min(start + self.segment_frames, self.frames))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; :meth:`from_json` reads it back equal."""
        e = self.encoder
        return {
            "version": PLAN_VERSION,
            "source": {
                "size": self.source_size,
                "sha256": self.source_sha256,
                "hashed": self.source_hashed,
            },
            "in_size": list(self.in_size),
            "time_base": str(self.time_base),
            "frames": self.frames,
            "segment_frames": self.segment_frames,
            "count": self.count,
            "cut_pts": None if self.cut_pts is None else list(self.cut_pts),
            "model": self.model,
            "scale": self.scale,
            "denoise": self.denoise,
            "tta": self.tta,
            "tile": self.tile,
            "precision": self.precision,
            "device": self.device,
            "container": self.container,
            "encoder": {
                "name": e.name,
                "pix_fmt": e.pix_fmt,
                "depth": e.depth,
                "size": [e.width, e.height],
                "time_base": str(e.time_base),
                "rate": None if e.rate is None else str(e.rate),
                "colors": list(e.colors),
                "options": dict(e.options),
                "global_header": e.global_header,
            },
            "upscaler_edge": self.upscaler_edge,
            "pyav": self.pyav,
        }

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: names the plan in each segment's metadata."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_json(cls, data: Any) -> SegmentPlan:
        """Read a plan from :meth:`to_json`'s dict; InputError for anything malformed (a
        missing or unknown field, a wrong type, numbers that do not add up)."""
        r = _Reader(data, "plan")
        r.keys(_PLAN_KEYS)
        if r.integer("version") != PLAN_VERSION:
            raise InputError(f"plan: version {data['version']} is not {PLAN_VERSION}")
        s = r.sub("source")
        s.keys({"size", "sha256", "hashed"})
        e = r.sub("encoder")
        e.keys(_ENCODER_KEYS)
        frames, seg = r.integer("frames", 1), r.integer("segment_frames", 1)
        count = r.integer("count", 1)
        if count != math.ceil(frames / seg):
            raise InputError(f"plan: {frames} frames in segments of {seg} are not {count}")
        cut = data["cut_pts"]
        if cut is not None:
            cut = tuple(r.integers("cut_pts", count - 1))
        hashed = s.text("hashed")
        if hashed not in ("whole", "ends"):
            raise InputError(f"plan: source.hashed must be whole or ends, not {hashed!r}")
        container = r.text("container")
        if container not in OUTPUT_CONTAINERS:
            raise InputError(f"plan: unknown container {container!r}")
        depth = e.integer("depth")
        if depth not in (8, 16):
            raise InputError(f"plan: encoder.depth must be 8 or 16, not {depth}")
        options = e.get("options", dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
            raise InputError("plan: encoder.options must map text to text")
        colors = tuple(e.integers("colors", 4))
        denoise = data["denoise"]
        if denoise is not None:
            denoise = r.integer("denoise", -1)
        rate = data["encoder"]["rate"]
        encoder = EncoderChoice(
            name=e.text("name"),
            pix_fmt=e.text("pix_fmt"),
            depth=depth,
            width=e.integers("size", 2, 1)[0],
            height=e.integers("size", 2, 1)[1],
            time_base=e.fraction("time_base"),
            rate=None if rate is None else e.fraction("rate"),
            colors=(colors[0], colors[1], colors[2], colors[3]),
            options=tuple(sorted(options.items())),
            global_header=e.flag("global_header"),
        )
        size = r.integers("in_size", 2, 1)
        return cls(
            source_size=s.integer("size", 1),
            source_sha256=s.hex("sha256"),
            source_hashed=hashed,
            in_size=(size[0], size[1]),
            time_base=r.fraction("time_base"),
            frames=frames,
            segment_frames=seg,
            count=count,
            cut_pts=cut,
            model=r.text("model"),
            scale=r.integer("scale", 1),
            denoise=denoise,
            tta=r.flag("tta"),
            tile=r.integer("tile", MIN_TILE),
            precision=r.text("precision"),
            device=r.text("device"),
            container=container,
            encoder=encoder,
            upscaler_edge=r.text("upscaler_edge"),
            pyav=r.text("pyav"),
        )


_PLAN_KEYS = {
    "version",
    "source",
    "in_size",
    "time_base",
    "frames",
    "segment_frames",
    "count",
    "cut_pts",
    "model",
    "scale",
    "denoise",
    "tta",
    "tile",
    "precision",
    "device",
    "container",
    "encoder",
    "upscaler_edge",
    "pyav",
}
_ENCODER_KEYS = {
    "name",
    "pix_fmt",
    "depth",
    "size",
    "time_base",
    "rate",
    "colors",
    "options",
    "global_header",
}
_SEGMENT_KEYS = {
    "version",
    "plan",
    "index",
    "first_frame",
    "frames",
    "first_pts",
    "last_pts",
    "end_pts",
    "first_raw_pts",
    "last_raw_pts",
    "clean",
    "size",
    "sha256",
    "extradata",
    "device",
    "seconds",
}


def segment_metadata_keys() -> frozenset[str]:
    """The fields of :func:`encode_segment`'s metadata (all of them required by the join)."""
    return frozenset(_SEGMENT_KEYS)


class _Reader:
    """Strict typed access to one JSON object; every failure is an InputError naming the
    field (``where.key``)."""

    def __init__(self, data: Any, where: str, index: int | None = None) -> None:
        self.where, self.index = where, index
        if not isinstance(data, dict):
            raise self.error(f"{where} must be a JSON object, not {type(data).__name__}")
        self.data = data

    def error(self, message: str) -> InputError:
        """The error to raise: about a segment (``index``) or about the plan."""
        return InputError(message) if self.index is None else SegmentError(message, self.index)

    def keys(self, expected: set[str]) -> None:
        got = set(self.data)
        if got != expected:
            missing, unknown = sorted(expected - got), sorted(got - expected)
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise self.error(f"{self.where}: {'; '.join(parts)}")

    def get(self, key: str, kind: type) -> Any:
        value = self.data[key]
        # bool is an int to Python, never to us
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(
                f"{self.where}.{key} must be {kind.__name__}, not {type(value).__name__}"
            )
        return value

    def integer(self, key: str, low: int | None = None) -> int:
        value: int = self.get(key, int)
        if low is not None and value < low:
            raise self.error(f"{self.where}.{key} must be at least {low}, not {value}")
        return value

    def integers(self, key: str, n: int, low: int | None = None) -> list[int]:
        value = self.get(key, list)
        if len(value) != n or not all(
            isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)
            for v in value
        ):
            floor = f" of at least {low}" if low is not None else ""
            raise self.error(f"{self.where}.{key} must be {n} whole numbers{floor}")
        return value

    def text(self, key: str) -> str:
        value: str = self.get(key, str)
        if not value:
            raise self.error(f"{self.where}.{key} must not be empty")
        return value

    def flag(self, key: str) -> bool:
        value: bool = self.get(key, bool)
        return value

    def hex(self, key: str) -> str:
        value = self.text(key)
        if not _HEX64.fullmatch(value):
            raise self.error(f"{self.where}.{key} must be a sha256 in lowercase hex")
        return value

    def fraction(self, key: str) -> Fraction:
        text = self.text(key)
        try:
            value = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise self.error(f"{self.where}.{key} must be a fraction like 1/30") from None
        if value <= 0:
            raise self.error(f"{self.where}.{key} must be positive")
        return value

    def sub(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f"{self.where}.{key}", self.index)


def _scan(src: Path, info: VideoInfo) -> tuple[int, list[int] | None]:
    """The number of frames, and every frame's pts in presentation order when each packet
    has its own (None otherwise: a worker cannot seek then). Reads packets, decodes none."""
    if info.animation:
        return info.frames or 0, None
    import av

    try:
        with av.open(str(src), metadata_errors="replace") as c:
            vs = next(
                s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic
            )
            count, pts, clean = 0, [], True
            for p in c.demux(vs):
                if p.size == 0 or p.is_discard:
                    continue
                count += 1
                if p.pts is None:
                    clean = False
                elif clean:
                    pts.append(p.pts)
    except (av.FFmpegError, OSError, StopIteration) as exc:
        raise InputError(f"cannot count the frames of {src.name}: {exc}") from exc
    ordered = sorted(pts)
    if not clean or len(set(ordered)) != len(ordered):
        return count, None
    return count, ordered


def plan_segments(
    src: Path | str,
    options: Options | None = None,
    video: VideoOptions | None = None,
    *,
    upscaler: Upscaler | None = None,
) -> SegmentPlan:
    """Plan the segments of ``src`` for workers: as :func:`upscale_video` would cut, encode
    and tile it with these options (the container comes from ``video.container``, else the
    source's). Counts the frames by reading every packet (no decoding). ``upscaler`` reuses
    a loaded model (not closed here); the tile is pinned for ``options.device``.

    Raises UsageError (codec, container), InputError (not a readable video, over the pixel
    cap), ModelError, DeviceError."""
    opts = options or Options()
    vopts = video or VideoOptions()
    src = Path(src)
    up = upscaler or Upscaler(opts)
    try:
        uplan = up.prepare(opts)
        with open_reader(src) as reader:
            info = reader.info
        if info.width * info.height > opts.max_pixels:
            raise InputError(
                f"{src.name}: frames are {info.width}x{info.height}, over the "
                f"{opts.max_pixels / 1e6:g} MP cap"
            )
        container = output_container(src, None, info, vopts.container)
        size = (info.width * uplan.scale, info.height * uplan.scale)
        choice = choose_encoder(info, size[0], size[1], container, vopts)
        n = segment_frames(info, vopts)
        tile = _pin_tile(up, uplan, opts, info)
        size_b, digest, hashed = _identity(src)
        frames, pts = _scan(src, info)
        if frames < 1:
            raise InputError(f"{src.name}: no video frame to upscale")
        count = math.ceil(frames / n)
        cut = None if pts is None else tuple(pts[i * n - 1] for i in range(1, count))
    finally:
        if upscaler is None:
            up.close()
    import av

    return SegmentPlan(
        source_size=size_b,
        source_sha256=digest,
        source_hashed=hashed,
        in_size=(info.width, info.height),
        time_base=info.time_base,
        frames=frames,
        segment_frames=n,
        count=count,
        cut_pts=cut,
        model=uplan.spec.name,
        scale=uplan.scale,
        denoise=opts.denoise,
        tta=opts.tta,
        tile=tile,
        precision=opts.precision,
        device=uplan.device.name,
        container=container,
        encoder=choice,
        upscaler_edge=__version__,
        pyav=av.__version__,
    )


# -- a worker's segment --------------------------------------------------------------------
class _OneSegment:
    """The segment sink of :func:`_pump` for one worker's segment, written at ``dst``."""

    def __init__(self, dst: Path, index: int, first_frame: int) -> None:
        self.dst, self.index, self.first_frame = dst, index, first_frame
        self.segments: list[Segment] = []
        self.extradata: bytes | None = None

    @property
    def frames_done(self) -> int:
        return 0  # progress counts this segment's frames

    def new_writer(self) -> SegmentWriter:
        if self.segments:
            raise OutputError("internal error: a second segment in one worker's segment")
        try:
            return SegmentWriter(self.dst, self.index, self.first_frame)
        except OSError as exc:
            raise OutputError(f"cannot write {self.dst}: {exc.strerror or exc}") from exc

    def commit(self, writer: SegmentWriter, extradata: bytes | None) -> Segment:
        seg = writer.finish_segment()
        self.segments.append(seg)
        self.extradata = extradata
        return seg


def _exactly(
    frames: Iterator[SourceFrame], want: int, last: bool, name: str
) -> Iterator[SourceFrame]:
    """The first ``want`` of ``frames``; InputError when there are fewer, or (for the last
    segment) more: the source is not what was counted."""
    got = 0
    for frame in frames:
        yield frame
        got += 1
        if got == want:
            break
    if got < want:
        raise InputError(f"{name} has fewer frames than the plan counted: plan again")
    if last and next(frames, None) is not None:
        raise InputError(f"{name} has more frames than the plan counted: plan again")


def encode_segment(
    src: Path | str,
    plan: SegmentPlan,
    index: int,
    dst: Path | str,
    options: Options | None = None,
    *,
    progress: VideoProgressCallback | None = None,
    cancel: CancelToken | None = None,
    upscaler: Upscaler | None = None,
) -> dict[str, Any]:
    """Make segment ``index`` of ``plan`` from ``src`` (the planned file, checked by size and
    sha256) into ``dst``, a segment file as the job folder keeps them, written as
    ``dst.tmp`` and renamed when whole (any earlier ``dst`` is replaced).

    ``options`` are this machine's (device, models_dirs, max_pixels); the model, scale,
    denoise, tta, tile and precision come from the plan. ``progress`` gets a
    :class:`VideoProgress` per frame of this segment; ``cancel`` stops with Cancelled.

    Returns the segment's metadata for :func:`join_segments` (JSON types): version, plan
    (the plan's digest), index, first_frame, frames, first_pts, last_pts, end_pts,
    first_raw_pts, last_raw_pts, clean, size, sha256, extradata (base64 or None), device,
    seconds. Raises InputError (index out of range, the source changed or is damaged),
    UsageError (the plan's encoder is missing here), ModelError, DeviceError, OutputError,
    Cancelled; nothing is left at ``dst`` then."""
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < plan.count:
        raise InputError(f"segment index {index!r} is out of range 0..{plan.count - 1}")
    if not dst.parent.is_dir():
        raise OutputError(f"cannot write {dst}: {dst.parent} is not a folder")
    _check_source(src, plan)
    _check_encoder(plan.encoder)
    base = options or Options()
    opts = base.replace(
        model=plan.model,
        scale=plan.scale,
        denoise=plan.denoise,
        tta=plan.tta,
        tile=plan.tile,
        precision=plan.precision,
    )
    wanted = plan.frames_of(index)
    up = upscaler or Upscaler(opts)
    try:
        uplan = up.prepare(opts)
        if (uplan.spec.name, uplan.scale) != (plan.model, plan.scale):
            raise InputError(
                f"the plan's model {plan.model} x{plan.scale} is "
                f"{uplan.spec.name} x{uplan.scale} here: update this machine"
            )
        with open_reader(src) as reader:
            _check_info(src, reader.info, plan)
            start = wanted.start
            if start and plan.cut_pts is not None:
                cut = plan.cut_pts[index - 1]
                frames = reader.frames(ResumePoint(start, cut, cut, cut))
            else:
                frames = reader.frames(skip=start)
            sink = _OneSegment(dst, index, start)
            _pump(
                _exactly(frames, len(wanted), index == plan.count - 1, src.name),
                src.name,
                sink,
                plan.encoder,
                up,
                uplan,
                opts,
                plan.segment_frames,
                progress,
                cancel,
                _Meter(len(wanted), 0),
            )
    finally:
        if upscaler is None:
            up.close()
    if len(sink.segments) != 1:
        raise OutputError(f"internal error: {len(sink.segments)} segments for one")
    seg = sink.segments[0]
    if plan.cut_pts is not None and not seg.clean:
        # the plan took every frame's pts as the source's own; had one needed a fix-up, the
        # seek could have put this segment's frames at other times than a whole pass does
        dst.unlink(missing_ok=True)
        raise InputError(f"{src.name}: the frames' timestamps are not the packets': plan again")
    fsync_dir(dst.parent)
    return {
        "version": SEGMENT_VERSION,
        "plan": plan.digest,
        "index": seg.index,
        "first_frame": seg.first_frame,
        "frames": seg.frames,
        "first_pts": seg.first_pts,
        "last_pts": seg.last_pts,
        "end_pts": seg.end_pts,
        "first_raw_pts": seg.first_raw_pts,
        "last_raw_pts": seg.last_raw_pts,
        "clean": seg.clean,
        "size": seg.size,
        "sha256": seg.sha256,
        "extradata": base64.b64encode(sink.extradata).decode() if sink.extradata else None,
        "device": uplan.device.name,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _check_encoder(choice: EncoderChoice) -> None:
    import av

    try:
        av.Codec(choice.name, "w")
    except Exception:
        raise UsageError(f"this FFmpeg has no encoder {choice.name} the plan asks for") from None


# -- the join ------------------------------------------------------------------------------
class _Parts:
    """Checked segments in order, as :func:`mux.join` reads them."""

    def __init__(self, segments: list[Segment], paths: list[Path], extradata: bytes | None):
        self.segments, self.paths, self.extradata = segments, paths, extradata

    def packets(self) -> Iterator[Packet]:
        for path in self.paths:
            yield from read_segment(path)


def _segment_from(meta: Any, plan: SegmentPlan, digest: str) -> tuple[Segment, bytes | None]:
    """Validate one segment's metadata (strictly, as the plan's) -> the segment, header."""
    index = meta.get("index") if isinstance(meta, dict) else None
    if not isinstance(index, int) or isinstance(index, bool):
        index = -1  # unknown: the metadata is too broken to say
    r = _Reader(meta, "segment metadata" if index < 0 else f"segment {index}", index)
    r.keys(_SEGMENT_KEYS)
    i = r.integer("index", 0)
    if r.integer("version") != SEGMENT_VERSION:
        raise SegmentError(f"segment {i}: version {meta['version']} is unknown", i)
    if r.get("plan", str) != digest:
        raise SegmentError(f"segment {i} was made for another plan", i)
    raw = [meta[k] for k in ("first_raw_pts", "last_raw_pts")]
    if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in raw):
        raise SegmentError(f"segment {i}: first_raw_pts/last_raw_pts must be int or null", i)
    extradata = meta["extradata"]
    if extradata is not None:
        try:
            extradata = base64.b64decode(r.text("extradata"), validate=True)
        except ValueError:
            raise SegmentError(f"segment {i}: extradata is not base64", i) from None
    r.text("device")
    if isinstance(meta["seconds"], bool) or not isinstance(meta["seconds"], (int, float)):
        raise SegmentError(f"segment {i}: seconds must be a number", i)
    seg = Segment(
        index=i,
        first_frame=r.integer("first_frame", 0),
        frames=r.integer("frames", 1),
        first_pts=r.integer("first_pts"),
        last_pts=r.integer("last_pts"),
        end_pts=r.integer("end_pts"),
        first_raw_pts=raw[0],
        last_raw_pts=raw[1],
        clean=r.flag("clean"),
        file="",
        size=r.integer("size", 1),
        sha256=r.hex("sha256"),
    )
    return seg, extradata


def _check_parts(plan: SegmentPlan, parts: list[tuple[dict[str, Any], Path]]) -> _Parts:
    """Every segment present once, whole (size, sha256), numbered, counted and timed to
    follow the one before it, with one encoder header: else SegmentError naming it."""
    digest = plan.digest
    by_index: dict[int, tuple[Segment, bytes | None, Path]] = {}
    for meta, path in parts:
        seg, extradata = _segment_from(meta, plan, digest)
        i = seg.index
        if i >= plan.count:
            raise SegmentError(f"segment {i} is out of range 0..{plan.count - 1}", i)
        if i in by_index:
            raise SegmentError(f"segment {i} is given twice", i)
        by_index[i] = (seg, extradata, Path(path))
    missing = [i for i in range(plan.count) if i not in by_index]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SegmentError(f"segment {missing[0]} of {plan.count} is missing{more}", missing[0])
    segments: list[Segment] = []
    paths: list[Path] = []
    header = by_index[0][1]
    for i in range(plan.count):
        seg, extradata, path = by_index[i]
        wanted = plan.frames_of(i)
        if (seg.first_frame, seg.frames) != (wanted.start, len(wanted)):
            raise SegmentError(
                f"segment {i} holds frames {seg.first_frame}..{seg.first_frame + seg.frames - 1}"
                f", not {wanted.start}..{wanted.stop - 1}",
                i,
            )
        if extradata != header:
            raise SegmentError(
                f"segment {i}'s encoder header differs from segment 0's (another FFmpeg?)", i
            )
        if segments and seg.first_pts != segments[-1].end_pts:
            raise SegmentError(f"segment {i} does not start where segment {i - 1} ends", i)
        try:
            size = path.stat().st_size
        except OSError:
            raise SegmentError(f"segment {i} ({path}) is missing", i) from None
        if size != seg.size or file_sha256(path) != seg.sha256:
            raise SegmentError(
                f"segment {i} ({path.name}) is damaged: its size or sha256 is not what its "
                "worker reported",
                i,
            )
        segments.append(seg)
        paths.append(path)
    return _Parts(segments, paths, header)


def join_segments(
    src: Path | str,
    plan: SegmentPlan,
    parts: list[tuple[dict[str, Any], Path]],
    dst: Path | str,
    *,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
) -> VideoResult:
    """Write ``dst`` from the segments in ``parts`` (each worker's metadata and the path of
    its file, in any order) and the source's audio, subtitles, chapters and metadata, as
    :func:`upscale_video` does, without re-encoding. The output appears whole or not at all.

    Checks first (nothing is written when one fails): the source is the planned file
    (InputError), every segment is there once, whole and in place (SegmentError naming
    it), ``dst`` can be written (OutputError, OutputExistsError; UsageError when its suffix
    names another container than the plan's)."""
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    _check_source(src, plan)
    with open_reader(src) as reader:
        info = reader.info
    _check_info(src, info, plan)
    container = output_container(src, dst, info, plan.container)
    _check_output(src, dst, overwrite)
    checked = _check_parts(plan, parts)
    notes = join(checked, plan.encoder, info, dst, container, overwrite, cancel)
    for note in notes:
        log.info("%s: %s", src.name, note)
    devices = sorted({str(meta["device"]) for meta, _ in parts})
    return VideoResult(
        src=src,
        dst=dst,
        in_size=plan.in_size,
        out_size=plan.out_size,
        frames=plan.frames,
        frames_resumed=0,
        model=plan.model,
        scale=plan.scale,
        device=", ".join(devices),
        encoder=plan.encoder.name,
        pix_fmt=plan.encoder.pix_fmt,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
