"""Videos and animations: decode -> upscale every frame -> encode, streaming and resumable.

The API for every front end (see README, "Video")::

    from upscaler_edge.video import VideoOptions, upscale_video
    result = upscale_video("in.mp4", None, Options(model=..., scale=2), VideoOptions(),
                           progress=on_progress, cancel=event)

``upscale_video`` blocks; call it from a worker thread (window) or the worker process (bot).
``progress`` gets :class:`VideoProgress` (frames done/total, fps, ETA, phase). An unfinished
job resumes when called again with the same input and settings; :func:`discard_job` drops
its kept segments instead.

Importing this package is cheap and does not need PyAV: ``sniff``, ``VideoOptions`` and
``VideoProgress`` work without it; the rest loads PyAV (the ``video`` extra) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .options import CODEC_NAMES, VideoOptions
from .progress import VideoProgress, VideoProgressCallback
from .sniff import OUTPUT_CONTAINERS, container_for_suffix, is_animated_image, sniff

__all__ = [
    "CODEC_NAMES",
    "OUTPUT_CONTAINERS",
    "VideoInfo",
    "VideoOptions",
    "VideoProgress",
    "VideoProgressCallback",
    "VideoResult",
    "available",
    "container_for_suffix",
    "default_video_output",
    "discard_job",
    "is_animated_image",
    "job_folder",
    "probe_video",
    "sniff",
    "upscale_video",
]

if TYPE_CHECKING:
    from .segments import job_folder
    from .source import VideoInfo, probe_video
    from .transcode import VideoResult, default_video_output, discard_job, upscale_video

_LAZY = {
    "VideoInfo": "source",
    "probe_video": "source",
    "VideoResult": "transcode",
    "default_video_output": "transcode",
    "discard_job": "transcode",
    "upscale_video": "transcode",
    "job_folder": "segments",
}


def available() -> bool:
    """True when PyAV (the ``video`` extra) can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
