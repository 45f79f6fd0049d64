"""The client's last step of a distributed video job: the segments checked and joined.

:func:`join_segments` checks every worker's segment against its metadata and the plan (each
one there once, whole, numbered, counted and timed to follow the one before it, with one
encoder header) and writes the output from their packets and the source's other streams, as
:func:`~upscaler_edge.video.upscale_video` does at its end, without re-encoding.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SegmentError
from ..integrity import sha256 as file_sha256
from ..pipeline import CancelToken
from .mux import join
from .segment_plan import (
    _SEGMENT_KEYS,
    SEGMENT_VERSION,
    SegmentPlan,
    _check_info,
    _check_source,
    _Reader,
)
from .segments import Packet, Segment, read_segment
from .source import open_reader
from .transcode import VideoResult, _check_output, output_container

__all__ = ["join_segments"]

log = logging.getLogger(__name__)


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
