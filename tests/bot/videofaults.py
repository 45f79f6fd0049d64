"""Worker child entry points for the video tests: they abort (as a driver crash would) once a
video job has upscaled 4 frames, while a marker file exists."""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from pathlib import Path

from upscaler_edge.worker import serve

ONCE_ENV = "UPSCALER_EDGE_TEST_CRASH_ONCE"  # a marker path: removed, then the child aborts


def _on_frame(src: str, done: int, total: int) -> None:
    if done < 4:
        return
    if (Path(src).parent / ".fault-abort-video").exists():
        os.abort()
    once = os.environ.get(ONCE_ENV)
    if once and os.path.exists(once):
        os.remove(once)
        os.abort()


def crash_after_four_frames(conn: Connection, log_level: int) -> None:
    """Aborts while ``.fault-abort-video`` sits beside the source, or once per marker file
    named by the environment variable :data:`ONCE_ENV`."""
    serve(conn, log_level, on_tile=_on_frame)
