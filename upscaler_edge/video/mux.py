"""The last step: finished segments + the source's other streams -> the output, atomically.

The video packets are copied from the segments as they are (no re-encoding); audio,
subtitle and attachment streams, chapters and metadata come from the source, packet for
packet, where the output container can hold them (each one left out is said once). Packets
are interleaved by time as they are read, so memory stays small however long the video.
The output is written as a hidden ``.NAME.*.tmp`` beside it (the pattern
``imageio.leftovers`` knows), fsynced and moved into place: it appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av

from ..errors import Cancelled, OutputError
from ..imageio.atomic import place
from ..pipeline import CancelToken
from .codecs import EncoderChoice, configure
from .segments import Packet, Segment
from .source import VideoInfo

__all__ = ["Joinable", "join"]

log = logging.getLogger(__name__)

# tags the muxer writes itself, or that describe the old encoding and would now be wrong
_STALE_TAGS = ("encoder", "major_brand", "minor_version", "compatible_brands", "rotate")
_STALE_PREFIXES = ("duration", "bps", "number_of_", "_statistics_")


def _tags(meta: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in meta.items()
        if k.lower() not in _STALE_TAGS and not k.lower().startswith(_STALE_PREFIXES)
    }


class Joinable(Protocol):
    """Finished segments in order, sharing one encoder header: a resumable :class:`Job`,
    or segments made on several machines (see ``distributed``)."""

    @property
    def segments(self) -> list[Segment]: ...

    @property
    def extradata(self) -> bytes | None: ...

    def packets(self) -> Iterator[Packet]:
        """Every segment's packets, in order."""
        ...


def join(
    job: Joinable,
    choice: EncoderChoice,
    info: VideoInfo,
    dst: Path,
    container: str,
    overwrite: bool,
    cancel: CancelToken | None = None,
) -> list[str]:
    """Write ``dst`` from the job's segments and the source's other streams. Returns one
    line per source stream left out (the container cannot hold it)."""
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    placed = False
    try:
        notes = _write(job, choice, info, tmp, container, cancel)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        place(tmp, dst, overwrite)
        placed = True
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or exc}") from exc
    finally:
        if not placed:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return notes


def _write(
    job: Joinable,
    choice: EncoderChoice,
    info: VideoInfo,
    tmp: Path,
    container: str,
    cancel: CancelToken | None,
) -> list[str]:
    notes: list[str] = []
    src: Any = None if info.animation else av.open(str(info.path), metadata_errors="replace")
    try:
        with av.open(str(tmp), "w", format=container) as out:
            ov = out.add_stream(choice.name, rate=choice.rate)
            configure(ov.codec_context, choice)
            ov.time_base = choice.time_base
            copies: dict[int, Any] = {}
            if src is not None:
                out.metadata.update(_tags(src.metadata))
                vs = _video_stream(src)
                ov.metadata.update(_tags(vs.metadata))
                ov.disposition = vs.disposition
                supported = out.supported_codecs
                for s in src.streams:
                    if s.index == vs.index:
                        continue
                    note = _add_copy(out, s, container, supported, copies)
                    if note:
                        notes.append(note)
                with contextlib.suppress(Exception):
                    chapters = src.chapters()
                    if chapters:
                        out.set_chapters(chapters)
            out.start_encoding()
            got = ov.codec_context.extradata
            if (bytes(got) if got else None) != job.extradata:
                raise OutputError(
                    f"the {choice.name} here makes another stream header than the segments' "
                    "encoder did (another FFmpeg build?)"
                )
            video = _video_packets(job, ov, choice.time_base, container in ("mp4", "mov"))
            copied = _copied_packets(src, copies) if copies else iter(())
            for n, packet in enumerate(_by_time(video, copied)):
                if n % 256 == 0 and cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                out.mux(packet)
    except av.FFmpegError as exc:
        raise OutputError(f"cannot write {container}: {' '.join(str(exc).split())}") from exc
    finally:
        if src is not None:
            src.close()
    return notes


def _video_stream(src: Any) -> Any:
    for s in src.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    raise OutputError("the source's video stream is gone")


def _add_copy(
    out: Any, s: Any, container: str, supported: set[str], copies: dict[int, Any]
) -> str | None:
    """Add a copy of source stream ``s``; a line saying why not, when it cannot go in."""
    what = f"{s.type} stream {s.index}"
    if s.type == "attachment":
        if container != "matroska":
            return f"{what} ({s.name}) left out: {container} has no attachments"
        out.add_attachment(s.name or f"attachment{s.index}", s.mimetype or "", s.data)
        return None
    if s.type not in ("audio", "subtitle"):
        return f"{what} ({s.type}) left out"
    codec = s.codec_context.name
    if codec not in supported:
        return f"{what} ({codec}) left out: {container} cannot hold it"
    o = out.add_stream_from_template(s)
    o.metadata.update(_tags(s.metadata))
    o.disposition = s.disposition
    copies[s.index] = o
    return None


def _video_packets(job: Joinable, ov: Any, tb: Fraction, mov: bool) -> Iterator[tuple[float, Any]]:
    """The segments' packets, decode timestamps made strictly increasing across joins.

    MP4/MOV store each sample's duration as the gap to the next decode timestamp, so with
    B-frames and a variable rate the track would end early; the last packet's duration is
    set so that the track ends where the last frame does."""
    last_dts: int | None = None
    first_shift: int | None = None  # pts - dts of the first packet (the edit list's offset)
    end = max((s.end_pts for s in job.segments), default=0)
    held: Any = None
    for p in job.packets():
        dts = p.dts
        if dts is not None and last_dts is not None and dts <= last_dts:
            dts = last_dts + 1
            if p.pts is not None and dts > p.pts:
                raise OutputError("cannot join the segments: their timestamps overlap")
        if dts is not None:
            last_dts = dts
        if first_shift is None and dts is not None and p.pts is not None:
            first_shift = job.segments[0].first_pts - dts
        packet = av.Packet(p.data)
        packet.pts, packet.dts, packet.duration = p.pts, dts, p.duration
        packet.time_base = tb
        packet.is_keyframe = p.keyframe
        packet.stream = ov
        if held is not None:
            yield held
        at = dts if dts is not None else (p.pts or 0)
        held = (float(at * tb), packet)
    if held is not None:
        packet = held[1]
        if mov and packet.dts is not None and first_shift is not None:
            tail = end - packet.dts - first_shift
            if tail > 0:
                packet.duration = tail
        yield held


def _copied_packets(src: Any, copies: dict[int, Any]) -> Iterator[tuple[float, Any]]:
    streams = [s for s in src.streams if s.index in copies]
    try:
        for packet in src.demux(streams):
            if packet.size == 0 or (packet.dts is None and packet.pts is None):
                continue
            at = packet.dts if packet.dts is not None else packet.pts
            tb = packet.time_base
            packet.stream = copies[packet.stream_index]
            yield float(at * tb), packet
    except av.FFmpegError as exc:
        log.warning("copying the source's other streams stopped early: %s", exc)


def _by_time(a: Iterator[tuple[float, Any]], b: Iterator[tuple[float, Any]]) -> Iterator[Any]:
    """Merge two time-ordered packet streams."""
    na, nb = next(a, None), next(b, None)
    while na is not None or nb is not None:
        if nb is None or (na is not None and na[0] <= nb[0]):
            assert na is not None
            yield na[1]
            na = next(a, None)
        else:
            yield nb[1]
            nb = next(b, None)
