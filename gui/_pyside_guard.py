"""Keep a known PySide6 reference-count bug from killing the window on Python < 3.12.

PySide6/shiboken6 6.12.0 (abi3 wheels) returns ``None`` from every void method, and ``True``
from ``Signal.emit``, without taking a reference. On Python 3.12+ those objects are immortal
(PEP 683) and nothing happens; on 3.10/3.11 each call drops their count by one, and after a
few thousand calls (seconds of painting) the interpreter aborts with ``Fatal Python error:
none_dealloc``. The project pins a good PySide6 for those Pythons; this guard covers an
installation that has the bad one anyway: it checks for the leak once and, only when it is
there, gives ``None``, ``True`` and ``False`` the same huge reference count that immortality
gives them on 3.12, so the leaked decrements can never reach zero.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

__all__ = ["install", "leaks"]

log = logging.getLogger(__name__)

# what CPython 3.12 does for immortal objects: a count no program can decrement to zero
_HEADROOM = 1 << 60


def leaks() -> bool:
    """True when this PySide6 drops references to None/True on void calls and emits."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(16):
        probe.setObjectName("probe")
        probe.ping.emit()
    return sys.getrefcount(None) <= none_before - 8 or sys.getrefcount(True) <= true_before - 8


@functools.cache
def install() -> bool:
    """Apply the guard when needed (CPython < 3.12 with a leaking PySide6); idempotent.
    Returns True when the guard is active. Without PySide6 it does nothing (and says
    nothing: :func:`upscaler_edge_gui.app.main` tells the user what to install)."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    try:
        import PySide6
    except ImportError:
        return False
    try:
        if not leaks():
            return False
        for obj in (None, True, False):
            ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    except Exception:  # the guard must never be the thing that breaks start-up
        log.exception("cannot check PySide6 for its reference-count bug")
        return False
    log.info(
        "PySide6 %s leaks references on Python %d.%d; guarded. Install PySide6-Essentials<6.12 "
        "or use Python 3.12+.",
        PySide6.__version__,
        *sys.version_info[:2],
    )
    return True
