"""A worker child entry point for tests: it crashes or hangs on request.

A job faults after its first tile when a marker file sits beside its source: ``.fault-abort``
(the child calls ``os.abort()``, as a driver crash would) or ``.fault-hang`` (it sleeps for an
hour, as a hung driver would). Use ``Worker(child_entry=faulty_child)``; the product's own
worker never has this entry point.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path

from upscaler_edge.worker import serve


def _on_tile(src: str, done: int, total: int) -> None:
    if done < 1:
        return
    folder = Path(src).parent
    if (folder / ".fault-abort").exists():
        os.abort()
    if (folder / ".fault-hang").exists():
        time.sleep(3600)


def faulty_child(conn: Connection, log_level: int) -> None:
    serve(conn, log_level, on_tile=_on_tile)
