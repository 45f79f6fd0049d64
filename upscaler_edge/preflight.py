"""Checks a job passes before any decoding: where its output goes, and the memory it needs."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ImageTooLargeError, OutputError

__all__ = ["available_memory", "check_memory", "check_output"]


def available_memory() -> int | None:
    """Bytes of memory this process could still get (Linux: MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on this platform
        return None


def check_memory(width: int, height: int, scale: int, model_scale: int) -> None:
    """Refuse, before decoding, a job whose buffers cannot fit in the memory available:
    the decoded input, the model's output, and its encoded file (about half again)."""
    avail = available_memory()
    if avail is None:
        return
    need = width * height * 3 * (1 + model_scale**2 + scale**2 // 2)
    if need > avail:
        raise ImageTooLargeError(
            f"image is {width}x{height}: upscaling it x{scale} needs about "
            f"{need / 2**30:.1f} GiB of memory, and {avail / 2**30:.1f} GiB is available"
        )


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Fail before any work when the output is the input or exists already."""
    try:
        same = dst.exists() and src.exists() and dst.samefile(src)
    except OSError:
        same = False
    if same or dst.resolve() == src.resolve():
        raise OutputError(f"refusing to write over the input {src}")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} exists (use --overwrite)")
