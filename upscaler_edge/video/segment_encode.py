"""A worker's part of a distributed video job: one segment of the plan, upscaled and encoded.

:func:`encode_segment` checks that the source is the planned file, decodes the segment's
frames (seeking to the first when the plan allows it, else decoding from the start and
dropping the frames before it), upscales and encodes them with the plan's settings through
the same pipeline as :func:`~upscaler_edge.video.upscale_video`, and writes one segment file
in the job folder's ``.pkt`` format. Its metadata (JSON types) goes back to the client for
:func:`~upscaler_edge.video.segment_join.join_segments`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError, UsageError
from ..imageio.atomic import fsync_dir
from ..options import Options
from ..pipeline import CancelToken, Upscaler
from .codecs import EncoderChoice
from .progress import VideoProgressCallback, _Meter
from .segment_plan import SEGMENT_VERSION, SegmentPlan, _check_info, _check_source
from .segments import Segment, SegmentWriter
from .source import ResumePoint, SourceFrame, open_reader
from .transcode import _pump

__all__ = ["encode_segment"]


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
