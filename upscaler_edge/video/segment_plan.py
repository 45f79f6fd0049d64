"""The plan of a distributed video job, and the files' identity and formats it ties together.

:class:`SegmentPlan` is everything a worker needs besides the source file (made on the client
by :func:`~upscaler_edge.video.distributed.plan_segments`); its JSON form is what travels to
the workers and is read back strictly (:meth:`SegmentPlan.from_json`). The same strict reader
checks a segment's metadata on the client (:func:`segment_metadata_keys` names its fields).
The source's identity (size and sha256) ties a plan to the file it was made for.

No decoding and no model here: the planning itself is in ``distributed``, a worker's segment
in ``segment_encode``, the join in ``segment_join``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InputError, SegmentError
from ..integrity import sha256 as file_sha256
from ..tiling import MIN_TILE
from .codecs import EncoderChoice
from .sniff import OUTPUT_CONTAINERS
from .source import VideoInfo

__all__ = [
    "PLAN_VERSION",
    "SEGMENT_VERSION",
    "WHOLE_HASH_LIMIT",
    "SegmentPlan",
    "segment_metadata_keys",
]

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
