"""Atomic writes: a temporary file beside the target, fsynced, then moved into place.

A reader never sees half a file; a failure (or a kill) leaves at most a hidden
``.NAME.*.tmp`` beside the target, which :func:`leftovers` finds and :func:`remove_leftovers`
removes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import OutputError, OutputExistsError
from .picture import detail

__all__ = ["fsync_dir", "leftovers", "place", "remove_leftovers", "write_atomic"]

logger = logging.getLogger(__name__)


def _temp_prefix(dst: Path) -> str:
    return "." + dst.name + "."


def leftovers(dst: Path) -> list[Path]:
    """Temporary files an interrupted write of ``dst`` left beside it."""
    if not dst.parent.is_dir():
        return []
    return sorted(dst.parent.glob(f"{_temp_prefix(dst)}*.tmp"))


def remove_leftovers(targets: Iterable[Path]) -> int:
    """Remove what interrupted writes of ``targets`` left; returns how many files went."""
    removed = 0
    for dst in targets:
        for tmp in leftovers(Path(dst)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


def write_atomic(parts: list[Any], dst: Path, overwrite: bool) -> None:
    """Write ``parts`` (byte strings) to a temp file beside ``dst``, fsync it, then move it
    into place."""
    if not overwrite and os.path.lexists(dst):
        raise OutputExistsError(f"{dst} exists (use --overwrite)")
    parent = dst.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write {dst}: {parent} is not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or detail(exc)}") from exc
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=parent, delete=False, prefix=_temp_prefix(dst), suffix=".tmp"
        ) as handle:
            tmp = Path(handle.name)
            for part in parts:
                handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
        place(tmp, dst, overwrite)
        tmp = None
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or detail(exc)}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def place(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Move a finished, fsynced temporary file (in ``dst``'s folder) into place: mode 0o666
    minus the umask, never over an existing file unless ``overwrite`` (OutputExistsError),
    and the rename made durable. Raises OSError for the caller to word."""
    os.chmod(tmp, 0o666 & ~_current_umask())
    if overwrite:
        os.replace(tmp, dst)
    else:
        _move_no_clobber(tmp, dst)
    fsync_dir(dst.parent)


def _move_no_clobber(tmp: Path, dst: Path) -> None:
    """Move tmp to dst unless dst exists; a hard link makes the check and the move one step."""
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise OutputExistsError(f"{dst} exists (use --overwrite)") from None
    except OSError as exc:  # no hard links here (FAT, some network shares): check, then rename
        logger.debug("hard link failed (%s); falling back to check + rename", exc)
        if os.path.lexists(dst):
            raise OutputExistsError(f"{dst} exists (use --overwrite)") from None
        os.replace(tmp, dst)
        return
    tmp.unlink()


def _current_umask() -> int:
    try:  # Linux: read it without changing it, as os.umask() would for a moment
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make the rename durable; not possible (nor needed) on every platform."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
