"""The job folder that makes a video job resumable: finished segments and their manifest.

``.NAME_x2.mp4.parts/`` beside the output holds ``job.json`` (the input's identity, the
settings, the finished segments) and one ``seg-NNNNNN.pkt`` per finished segment: the
encoded packets of a run of output frames, starting with a keyframe. A segment is written
as ``*.tmp``, fsynced, renamed, and only then listed in the manifest (itself replaced
atomically), so after a crash or a kill -9 the manifest lists exactly the segments that are
whole. A changed input or changed settings make the folder stale: it is emptied and the job
starts over. ``lock`` is held (flock) while a process works on the job.

Segment file: ``UESEG1\\n`` then one record per packet, ``<qqqIi`` (pts, dts, duration in the
source's time base, flags: 1 = keyframe, size) and the packet's bytes; INT64_MIN stands for
a missing timestamp. No container: the timestamps stay exactly as the encoder made them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import OutputError
from ..imageio.atomic import fsync_dir
from ..integrity import sha256 as _sha256

__all__ = ["Job", "Packet", "Segment", "SegmentWriter", "job_folder", "read_segment"]

log = logging.getLogger(__name__)

_MAGIC = b"UESEG1\n"
_RECORD = struct.Struct("<qqqIi")
_NONE = -(2**63)
MANIFEST_VERSION = 2


def job_folder(dst: Path) -> Path:
    """Where the resumable state of the job writing ``dst`` lives."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.parts")


@dataclass(frozen=True)
class Packet:
    """One encoded packet as stored (timestamps in the source's time base)."""

    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class Segment:
    """A finished segment: frames ``first_frame`` .. ``first_frame + frames - 1``."""

    index: int
    first_frame: int
    frames: int
    first_pts: int
    last_pts: int
    end_pts: int  # where the last frame (in presentation) ends
    first_raw_pts: int | None
    last_raw_pts: int | None
    clean: bool  # every timestamp so far was the source's own (no fix-ups): seeking is safe
    file: str
    size: int
    sha256: str


def input_identity(src: Path) -> dict[str, Any]:
    """Size, mtime and a hash of the first and last MiB: a changed input is noticed."""
    st = src.stat()
    h = hashlib.sha256()
    with open(src, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return {
        "path": str(src.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256_ends": h.hexdigest(),
    }


class Job:
    """The job folder of one output: finished segments, and the writer of the next.

    ``open`` takes the lock and keeps the finished segments when the manifest matches
    ``identity`` and ``settings``; otherwise (or with ``resume=False``) it starts empty.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.segments: list[Segment] = []
        self.extradata: bytes | None = None
        self._identity: dict[str, Any] = {}
        self._settings: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self.stale_reason: str | None = None
        #: facts the first run resolved and a resume must reuse (the tile size), JSON-able
        self.resolved: dict[str, Any] = {}

    # -- life cycle ------------------------------------------------------------------------
    @classmethod
    def open(
        cls, folder: Path, identity: dict[str, Any], settings: dict[str, Any], resume: bool
    ) -> Job:
        job = cls(folder)
        job._identity, job._settings = identity, settings
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        job._lock()
        try:
            job._load(resume)
        except BaseException:
            job.close()
            raise
        return job

    def _lock(self) -> None:
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock, as before this module
            pass
        except OSError:
            os.close(fd)
            raise OutputError(
                f"another upscaler-edge is already writing {self.folder.name[1:-6]}"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock; the folder stays for a resume."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Delete the folder and everything in it (the job is done or abandoned)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _load(self, resume: bool) -> None:
        manifest = self.folder / "job.json"
        data: dict[str, Any] | None = None
        if manifest.exists():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
                self.stale_reason = "its manifest is unreadable"
        if data is not None:
            if not resume:
                self.stale_reason = "--no-resume"
            elif data.get("version") != MANIFEST_VERSION:
                self.stale_reason = "it was made by another version"
            elif data.get("input") != self._identity:
                self.stale_reason = "the input changed"
            elif data.get("settings") != self._settings:
                self.stale_reason = "the settings changed"
            else:
                self._adopt(data)
        if not self.segments:
            self._clear()
        self._write_manifest()

    def _adopt(self, data: dict[str, Any]) -> None:
        """Keep the leading run of listed segments whose files are whole."""
        self.resolved = dict(data.get("resolved") or {})
        extradata = data.get("extradata")
        self.extradata = base64.b64decode(extradata) if extradata else None
        for i, raw in enumerate(data.get("segments", [])):
            seg = Segment(**raw)
            path = self.folder / seg.file
            if seg.index != i or not path.is_file() or path.stat().st_size != seg.size:
                log.info("segment %d of the unfinished job is missing or damaged", i)
                break
            if _sha256(path) != seg.sha256:
                log.info("segment %d of the unfinished job is damaged", i)
                break
            self.segments.append(seg)
        if not self.segments:
            self.extradata = None

    def _clear(self) -> None:
        for p in self.folder.iterdir():
            if p.name != "lock":
                with contextlib.suppress(OSError):
                    p.unlink()
        self.segments = []
        self.extradata = None
        self.resolved = {}

    def _write_manifest(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "input": self._identity,
            "settings": self._settings,
            "resolved": self.resolved,
            "extradata": base64.b64encode(self.extradata).decode() if self.extradata else None,
            "segments": [asdict(s) for s in self.segments],
        }
        tmp = self.folder / "job.json.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / "job.json")
        fsync_dir(self.folder)

    # -- state -----------------------------------------------------------------------------
    def resolve(self, **facts: Any) -> None:
        """Record what this run resolved (kept while the job's segments are kept)."""
        self.resolved.update(facts)
        self._write_manifest()

    @property
    def frames_done(self) -> int:
        return sum(s.frames for s in self.segments)

    def new_writer(self) -> SegmentWriter:
        index = len(self.segments)
        return SegmentWriter(self.folder / f"seg-{index:06d}.pkt", index, self.frames_done)

    def commit(self, writer: SegmentWriter, extradata: bytes | None) -> Segment:
        """Make the writer's segment durable and list it; from now on it survives a crash."""
        if self.segments and extradata != self.extradata:
            raise OutputError("internal error: segment headers differ; run again")
        seg = writer.finish_segment(clean=not self.segments or self.segments[-1].clean)
        self.segments.append(seg)
        self.extradata = extradata
        self._write_manifest()
        return seg

    def packets(self) -> Iterator[Packet]:
        """Every finished segment's packets, in order."""
        for seg in self.segments:
            yield from read_segment(self.folder / seg.file)


class SegmentWriter:
    """Packets of one segment into ``NAME.tmp``; :meth:`finish` fsyncs and renames it."""

    def __init__(self, path: Path, index: int, first_frame: int) -> None:
        self.path, self.index, self.first_frame = path, index, first_frame
        self.tmp = path.with_name(path.name + ".tmp")
        self._fh: BinaryIO | None = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self._fh.write(_MAGIC)
        self._hash = hashlib.sha256(_MAGIC)
        self._size = len(_MAGIC)
        self.frames = 0
        self.first_pts = self.last_pts = self.end_pts = 0
        self.first_raw_pts: int | None = None
        self.last_raw_pts: int | None = None
        self.clean = True

    def add_frame(self, pts: int, duration: int, raw_pts: int | None) -> None:
        """Count one frame handed to the encoder (in presentation order)."""
        if self.frames == 0:
            self.first_pts, self.first_raw_pts = pts, raw_pts
        self.last_pts, self.last_raw_pts = pts, raw_pts
        self.end_pts = max(self.end_pts, pts + duration)
        self.clean = self.clean and raw_pts == pts
        self.frames += 1

    def write(self, pkt: Packet) -> None:
        assert self._fh is not None
        head = _RECORD.pack(
            _NONE if pkt.pts is None else pkt.pts,
            _NONE if pkt.dts is None else pkt.dts,
            pkt.duration,
            1 if pkt.keyframe else 0,
            len(pkt.data),
        )
        for part in (head, pkt.data):
            self._fh.write(part)
            self._hash.update(part)
        self._size += len(head) + len(pkt.data)

    def finish(self) -> tuple[Path, int, str]:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.replace(self.tmp, self.path)
        return self.path, self._size, self._hash.hexdigest()

    def finish_segment(self, clean: bool = True) -> Segment:
        """:meth:`finish`, and the finished segment's facts (``clean``: so were the
        segments before it)."""
        path, size, digest = self.finish()
        return Segment(
            index=self.index,
            first_frame=self.first_frame,
            frames=self.frames,
            first_pts=self.first_pts,
            last_pts=self.last_pts,
            end_pts=self.end_pts,
            first_raw_pts=self.first_raw_pts,
            last_raw_pts=self.last_raw_pts,
            clean=self.clean and clean,
            file=path.name,
            size=size,
            sha256=digest,
        )

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def read_segment(path: Path) -> Iterator[Packet]:
    """The packets of a finished segment file."""
    with open(path, "rb") as fh:
        if fh.read(len(_MAGIC)) != _MAGIC:
            raise OutputError(f"{path} is not a segment file")
        while True:
            head = fh.read(_RECORD.size)
            if not head:
                return
            if len(head) != _RECORD.size:
                raise OutputError(f"{path} is truncated")
            pts, dts, duration, flags, size = _RECORD.unpack(head)
            data = fh.read(size)
            if len(data) != size:
                raise OutputError(f"{path} is truncated")
            yield Packet(
                None if pts == _NONE else pts,
                None if dts == _NONE else dts,
                duration,
                bool(flags & 1),
                data,
            )
