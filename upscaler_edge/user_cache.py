"""The user cache folder (``<user cache>/upscaler-edge``) and the small JSON maps kept there
(the verified weight files, the GPU tile check's verdicts): read tolerantly, written whole and
atomically, so a broken or half-written file is only a cache miss."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["folder", "read_json_map", "write_json_map"]


def folder() -> Path:
    """``<user cache>/upscaler-edge`` (not created here)."""
    return Path(platformdirs.user_cache_dir("upscaler-edge", appauthor=False))


def read_json_map(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when the file is missing, unreadable or not an
    object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_map(path: Path, data: dict[str, Any], *, pretty: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (OSError when the
    folder is not writable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) if pretty else json.dumps(data))
    os.replace(tmp, path)
