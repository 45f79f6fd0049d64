"""A job's result, made and kept in its spool folder until it is sent.

An attempt that made a result records it next to the file, in :data:`RESULT_MARKER`
(``result.json``: the file's name, its caption, what the preview shows, how to send a video),
the preview in :data:`PREVIEW_NAME`. :func:`kept_result` reads it back, so an attempt after a
stop or a crash before the reply sends the result instead of making it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .telegram import VideoAttributes

__all__ = ["PREVIEW_NAME", "RESULT_MARKER", "Delivery", "kept_result"]

RESULT_MARKER = "result.json"  # in the spool: the result is made, only the reply is missing
PREVIEW_NAME = "preview.jpg"


@dataclass(frozen=True)
class Delivery:
    """A result ready to send: the file, its caption, and the preview and what it shows
    (``"whole"`` or ``"detail"``; None: no preview). ``device`` is None for a result kept
    from an earlier attempt."""

    path: Path
    caption: str
    device: str | None
    preview: Path | None = None
    preview_shows: str | None = None
    video: VideoAttributes | None = None  # a video or animation result: how to send it


def kept_result(spool: Path) -> Delivery | None:
    """The result an earlier attempt made but did not send (the bot stopped or crashed)."""
    marker = spool / RESULT_MARKER
    if not marker.exists():
        return None
    saved = json.loads(marker.read_text())
    path = spool / saved["file_name"]
    if not path.exists():
        return None
    preview = spool / PREVIEW_NAME
    shows = saved.get("preview")
    keep = shows is not None and preview.exists()
    video = saved.get("video")
    return Delivery(
        path,
        saved["caption"],
        None,
        preview if keep else None,
        shows if keep else None,
        VideoAttributes(video[0], float(video[1]), int(video[2]), int(video[3])) if video else None,
    )
