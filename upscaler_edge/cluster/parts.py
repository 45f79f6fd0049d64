"""A cluster video's finished segments, kept beside its output so a rerun resumes.

``.NAME.cluster/`` beside the output holds ``plan`` (the plan's digest), and per finished
segment ``seg-NNNNNN.pkt`` (as a worker made it) and ``seg-NNNNNN.json`` (its metadata,
written after the packets, atomically): a segment counts only when both are there and the
packets match the metadata's sha256. A different plan (another input, other settings)
empties the folder. The folder goes once the output is written, and stays after a cancel, a
crash or a lost connection, so the same request again sends only the missing segments.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..integrity import sha256

__all__ = ["VideoParts"]

log = logging.getLogger(__name__)


class VideoParts:
    def __init__(self, dst: Path, digest: str) -> None:
        self.folder = dst.with_name(f".{dst.name}.cluster")
        self.digest = digest

    def open(self) -> dict[int, tuple[dict[str, Any], Path]]:
        """The segments kept from an earlier run of this plan (index -> (metadata, file));
        anything else in the folder is removed."""
        stamp = self.folder / "plan"
        try:
            same = stamp.read_text().strip() == self.digest
        except OSError:
            same = False
        if not same:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp.write_text(self.digest)
            return {}
        kept: dict[int, tuple[dict[str, Any], Path]] = {}
        for meta_file in sorted(self.folder.glob("seg-*.json")):
            pkt = meta_file.with_suffix(".pkt")
            try:
                index = int(meta_file.stem.split("-", 1)[1])
                meta = json.loads(meta_file.read_text())
                if sha256(pkt) != meta["segment"]["sha256"]:
                    raise ValueError("its packets do not match")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.info("dropping kept segment %s: %s", meta_file.name, exc)
                for path in (meta_file, pkt):
                    path.unlink(missing_ok=True)
                continue
            kept[index] = (meta, pkt)
        return kept

    def segment(self, index: int) -> Path:
        return self.folder / f"seg-{index:06d}.pkt"

    def keep(self, index: int, meta: dict[str, Any]) -> None:
        """Record a finished segment (its packets are already at ``segment(index)``)."""
        final = self.segment(index).with_suffix(".json")
        tmp = final.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, final)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.folder)
