"""Weight files checked against the sha256 the manifest (or a sidecar) states, verdict cached."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import user_cache
from .errors import ModelError, ModelIntegrityError

if TYPE_CHECKING:
    from .models import ModelSpec

__all__ = ["sha256", "verify_model"]

log = logging.getLogger(__name__)

_cache_lock = threading.Lock()


def _cache_file() -> Path:
    return user_cache.folder() / "verified-models.json"


def sha256(path: Path) -> str:
    """The file's sha256, hex, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_model(spec: ModelSpec, *, cache: bool = True) -> None:
    """Check both weight files against the sha256 the manifest (or sidecar) states.

    A verdict is cached by path, size and mtime, so an unchanged file is hashed once.
    Raises ModelError when a file is missing, ModelIntegrityError on a mismatch.
    """
    checks = [(spec.param_path, spec.param_sha256), (spec.bin_path, spec.bin_sha256)]
    with _cache_lock:
        cache_path = _cache_file()
        known = user_cache.read_json_map(cache_path) if cache else {}
        changed = False
        for path, expected in checks:
            try:
                st = path.stat()
            except OSError:
                raise ModelError(f"model {spec.name}: weight file missing: {path}") from None
            if expected is None:
                continue
            key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
            if known.get(key) == expected:
                continue
            actual = sha256(path)
            if actual != expected:
                raise ModelIntegrityError(
                    f"model {spec.name}: {path.name} does not match its sha256 "
                    f"(expected {expected[:12]}..., got {actual[:12]}...); reinstall the model"
                )
            known[key] = expected
            changed = True
        if cache and changed:
            try:
                user_cache.write_json_map(cache_path, known)
            except OSError as exc:  # a read-only cache only costs a re-hash next time
                log.debug("cannot save the model verification cache: %s", exc)
