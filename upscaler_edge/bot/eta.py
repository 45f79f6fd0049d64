"""How long jobs will take, from the device speed measured on earlier jobs. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..jobs import Job

__all__ = ["VIDEO_MPPS_GUESS", "Running", "estimate_seconds", "seconds_until_done"]

# Unknown pixel count: guess from the file size (JPEG is about 0.5 byte per pixel).
_BYTES_PER_PIXEL_GUESS = 0.5
_SIZE_GUESS = 500_000
#: Input megapixels per second assumed for a video before any speed was measured: on the
#: slow side (a small CPU with a fast model), so the first "ready in" is not too hopeful.
VIDEO_MPPS_GUESS = 0.25
_FRAME_MP_GUESS = 0.4  # a video frame of unknown size (about 848x480)


@dataclass(frozen=True)
class Running:
    """A snapshot of the running job: its params, expected seconds and tile progress."""

    params: Mapping[str, Any]
    estimate: float | None
    done: int
    total: int


def estimate_seconds(params: Mapping[str, Any], mpps: float | None) -> float | None:
    """Expected upscale time of a job at ``mpps`` input megapixels per second (None: unknown).

    A video counts ``frames`` x width x height (frames estimated from its duration); with no
    speed measured yet it is estimated at :data:`VIDEO_MPPS_GUESS`."""
    frames = params.get("frames")
    if not mpps:
        if not frames:
            return None
        mpps = VIDEO_MPPS_GUESS
    w, h = params.get("width"), params.get("height")
    if w and h:
        megapixels = w * h / 1e6
    elif frames:
        megapixels = _FRAME_MP_GUESS
    else:
        megapixels = (params.get("size") or _SIZE_GUESS) / _BYTES_PER_PIXEL_GUESS / 1e6
    return megapixels * (frames or 1) / mpps


def seconds_until_done(
    job_id: int,
    line: Sequence[Job],
    running: Running | None,
    estimate: Callable[[Mapping[str, Any]], float | None],
) -> float | None:
    """Seconds until ``job_id`` finishes: the running job's remainder, the jobs ahead of it in
    ``line`` and itself. None when any of them cannot be estimated or the job is not in line."""
    total = 0.0
    if running is not None:
        est = running.estimate if running.estimate is not None else estimate(running.params)
        if est is None:
            return None
        left = 1 - (running.done / running.total) if running.total else 1
        total += est * left
    for job in line:
        est = estimate(job.params)
        if est is None:
            return None
        total += est
        if job.id == job_id:
            return total
    return None
