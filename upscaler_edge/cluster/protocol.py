"""The messages that travel through NATS: job, result, progress, cancel; all JSON, all checked.

A worker runs only this project's two job kinds (an image file, a segment of a video) and
builds everything from a message through the parsers below: unknown kinds, fields of the
wrong type, names that are not ours, options out of range are a :class:`ProtocolError`
before anything runs. Paths never come from a message; files travel through the object store
under names the parsers check.

Subjects and stores (created by :func:`upscaler_edge.cluster.streams.ensure`):
  ``ue.jobs.small`` / ``ue.jobs.large``  work-queue stream ``UE_JOBS``: one job per message
  ``ue.results.<client>``               stream ``UE_RESULTS``: the answer to one job
  ``ue.progress.<client>``              plain NATS (not stored): tiles/frames done
  ``ue.cancel``                         plain NATS: a client gave a job up
  ``ue.wake``                           plain NATS: a job was queued, idle workers ask now
  object store ``ue-files``             ``in/<sha256>`` inputs, ``out/<job>/<index>/<worker>``
  key-value ``ue-workers``              each worker's heartbeat (devices, speed, current job)
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UpscalerError, UsageError
from ..options import Options

__all__ = [
    "JOB_SUBJECTS",
    "Job",
    "ProtocolError",
    "Result",
    "options_from_json",
    "options_to_json",
    "parse_job",
    "parse_result",
]

VERSION = 1
JOBS_STREAM = "UE_JOBS"
RESULTS_STREAM = "UE_RESULTS"
DEAD_STREAM = "UE_DEAD"
FILES_BUCKET = "ue-files"
WORKERS_BUCKET = "ue-workers"
SMALL, LARGE = "small", "large"
JOB_SUBJECTS = {SMALL: "ue.jobs.small", LARGE: "ue.jobs.large"}
CANCEL_SUBJECT = "ue.cancel"
WAKE_SUBJECT = "ue.wake"  # plain NATS: a job was queued (idle workers ask at once)
#: an image whose input has at most this many pixels is a "small" job (any worker takes it)
SMALL_PIXELS = 1_000_000
MAX_MESSAGE = 1 << 20

_ID = re.compile(r"^[0-9a-f]{8,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
KINDS = ("image", "segment")


class ProtocolError(UpscalerError):
    """A message that is not one of ours, or not well formed."""


# -- options ------------------------------------------------------------------------------
#: the option fields a job carries, with their JSON types; the rest (device, paths, the
#: output policy) belong to the worker or the client
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "scale": (int, type(None)),
    "tile": (int,),
    "format": (str, type(None)),
    "quality": (int,),
    "tta": (bool,),
    "alpha": (str,),
    "all_frames": (bool,),
    "denoise": (int, type(None)),
    "precision": (str,),
    "max_pixels": (int,),
}


def options_to_json(opts: Options) -> dict[str, Any]:
    return {k: getattr(opts, k) for k in _OPTION_TYPES}


def options_from_json(data: Any, base: Options) -> Options:
    """The job's options on top of the worker's own (device, models folders); the pixel cap
    is the smaller of the two."""
    if not isinstance(data, dict):
        raise ProtocolError("options must be an object")
    unknown = set(data) - set(_OPTION_TYPES)
    if unknown:
        raise ProtocolError(f"unknown option {sorted(unknown)[0]!r}")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        types = _OPTION_TYPES[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"option {key!r} has the wrong type")
        if isinstance(value, str) and not _NAME.match(value):
            raise ProtocolError(f"option {key!r} is not a plain name")
        changes[key] = value
    if "max_pixels" in changes:
        changes["max_pixels"] = min(changes["max_pixels"], base.max_pixels)
    try:
        return base.replace(**changes, overwrite=True)
    except UsageError as exc:
        raise ProtocolError(f"bad options: {exc}") from None


# -- messages -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FileRef:
    """A file in the object store: ``in/<sha256>`` with its size and the user's file name
    (shown in messages only, never used as a path)."""

    object: str
    sha256: str
    size: int
    name: str = "input"


@dataclass(frozen=True)
class Job:
    kind: str  # "image" | "segment"
    job: str  # hex id, chosen by the client
    index: int  # 0 for an image; the segment's number for a video
    reply: str  # the client's results subject
    input: FileRef
    options: dict[str, Any]
    suffix: str  # the output file's suffix (".png", ".pkt" for a segment)
    plan: dict[str, Any] | None = None  # a video's SegmentPlan (segments only)
    v: int = VERSION

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @property
    def key(self) -> str:
        return f"{self.job}:{self.index}"


@dataclass(frozen=True)
class Result:
    job: str
    index: int
    worker: str
    ok: bool
    object: str | None = None  # the output in the object store
    sha256: str | None = None
    size: int = 0
    error: str | None = None  # an UpscalerError class name
    message: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # sizes, model, device, seconds...
    v: int = VERSION

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


def _load(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("message too large")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("not a JSON object")
    if obj.get("v") != VERSION:
        raise ProtocolError(f"unsupported message version {obj.get('v')!r}")
    return obj


def _get(obj: dict[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if not isinstance(value, types) or (isinstance(value, bool) and types is int):
        raise ProtocolError(f"field {key!r} is missing or has the wrong type")
    return value


def parse_job(data: bytes) -> Job:
    """A job message, checked field by field (ProtocolError otherwise)."""
    obj = _load(data)
    known = {"v", "kind", "job", "index", "reply", "input", "options", "suffix", "plan"}
    if set(obj) - known:
        raise ProtocolError(f"unknown field {sorted(set(obj) - known)[0]!r}")
    kind = _get(obj, "kind", str)
    if kind not in KINDS:
        raise ProtocolError(f"unknown job kind {kind!r}")
    job_id = _get(obj, "job", str)
    if not _ID.match(job_id):
        raise ProtocolError("bad job id")
    index = _get(obj, "index", int)
    if not 0 <= index < 1_000_000 or (kind == "image" and index != 0):
        raise ProtocolError("bad index")
    reply = _get(obj, "reply", str)
    if not re.match(r"^ue\.results\.[0-9a-f]{8,64}$", reply):
        raise ProtocolError("bad reply subject")
    ref = _get(obj, "input", dict)
    if set(ref) != {"object", "sha256", "size", "name"}:
        raise ProtocolError("bad input reference")
    sha = _get(ref, "sha256", str)
    if not _SHA.match(sha) or _get(ref, "object", str) != f"in/{sha}":
        raise ProtocolError("bad input object")
    size = _get(ref, "size", int)
    name = _get(ref, "name", str)
    if size < 0 or len(name) > 255:
        raise ProtocolError("bad input size or name")
    suffix = _get(obj, "suffix", str)
    if not _SUFFIX.match(suffix):
        raise ProtocolError("bad output suffix")
    plan = obj.get("plan")
    if kind == "segment" and not isinstance(plan, dict):
        raise ProtocolError("a segment job needs its plan")
    if kind == "image" and plan is not None:
        raise ProtocolError("an image job has no plan")
    options = _get(obj, "options", dict)
    options_from_json(options, Options())  # shape check; the worker applies them on its own
    return Job(
        kind=kind,
        job=job_id,
        index=index,
        reply=reply,
        input=FileRef(f"in/{sha}", sha, size, name),
        options=options,
        suffix=suffix,
        plan=plan,
    )


def parse_result(data: bytes) -> Result:
    obj = _load(data)
    known = {f for f in Result.__dataclass_fields__}
    if set(obj) - known:
        raise ProtocolError(f"unknown field {sorted(set(obj) - known)[0]!r}")
    job_id = _get(obj, "job", str)
    if not _ID.match(job_id):
        raise ProtocolError("bad job id")
    ok = _get(obj, "ok", bool)
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ProtocolError("bad meta")
    optional: dict[str, Any] = {}
    for key in ("object", "sha256", "error", "message"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise ProtocolError(f"field {key!r} has the wrong type")
        optional[key] = value
    size = obj.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError("bad size")
    result = Result(
        job=job_id,
        index=_get(obj, "index", int),
        worker=_get(obj, "worker", str),
        ok=ok,
        size=size,
        meta=meta,
        **optional,
    )
    if ok and not (isinstance(result.object, str) and isinstance(result.sha256, str)):
        raise ProtocolError("a finished result names its output")
    return result


def worker_name_ok(name: str) -> bool:
    return bool(_NAME.match(name))
