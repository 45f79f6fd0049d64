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

Who moves the files (object store, shared folder) is the caller's business; these modules
only read and write paths.

This module plans (:func:`plan_segments`, on the client) and is where the public names are
imported from; the rest lives beside it: ``segment_plan`` (:class:`SegmentPlan`, its JSON
form, the segment metadata's fields, the source's identity), ``segment_encode`` (a worker's
segment) and ``segment_join`` (the join).
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..options import Options
from ..pipeline import Upscaler
from .codecs import choose_encoder
from .options import VideoOptions
from .segment_encode import encode_segment
from .segment_join import join_segments
from .segment_plan import (
    PLAN_VERSION,
    SegmentPlan,
    _identity,
    segment_metadata_keys,
)
from .segment_plan import SEGMENT_VERSION as SEGMENT_VERSION
from .segment_plan import WHOLE_HASH_LIMIT as WHOLE_HASH_LIMIT
from .source import VideoInfo, open_reader
from .transcode import _check_frame_pixels, _pin_tile, output_container, segment_frames

__all__ = [
    "PLAN_VERSION",
    "SegmentPlan",
    "encode_segment",
    "join_segments",
    "plan_segments",
    "segment_metadata_keys",
]


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
        _check_frame_pixels(src, info, opts.max_pixels)
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
