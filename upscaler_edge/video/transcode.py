"""Decode -> upscale -> encode, concurrently and in bounded memory; resumable; the video API.

Three threads: the decoder (PyAV, which drops the GIL in codec work) fills a queue of two
RGB frames; the calling thread upscales them one by one with the image pipeline (tiles,
progress, cancel as for pictures); the encoder takes the results from a second queue of two
and writes segments. Memory is therefore a few frames plus one tile's working set plus the
encoder's look-ahead, whatever the video's length; frames never touch the disk as images.

Each segment (``segment_seconds`` of output, starting with a keyframe) is made durable in
the job folder as soon as it is finished (see ``segments``); the last step joins them with
the source's other streams into the output (see ``mux``). A failed, cancelled or killed run
keeps its finished segments: the same call again resumes after the last one and produces the
same file as an uninterrupted run. A damaged input discards them (a resume would fail too).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from ..errors import Cancelled, InputError, OutputError, OutputExistsError, UsageError
from ..imageio import Frame, Picture
from ..naming import output_name
from ..options import Options
from ..pipeline import CancelToken, Plan, Upscaler
from ..tiling import MIN_TILE
from .codecs import EncoderChoice, choose_encoder
from .encode import SegmentEncoder
from .mux import join
from .options import VideoOptions
from .progress import VideoProgressCallback, _Meter
from .segments import Job, Segment, SegmentWriter, input_identity, job_folder
from .sniff import CONTAINER_SUFFIX, container_for_suffix
from .source import ResumePoint, SourceFrame, VideoInfo, open_reader

__all__ = ["VideoResult", "default_video_output", "discard_job", "upscale_video"]

log = logging.getLogger(__name__)

_QUEUE = 2  # frames waiting on each side of the upscaler


@dataclass(frozen=True)
class VideoResult:
    """What one finished video job produced. Sizes are (width, height) as displayed."""

    src: Path
    dst: Path
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    frames: int
    frames_resumed: int
    model: str
    scale: int
    device: str
    encoder: str
    pix_fmt: str
    seconds: float
    notes: tuple[str, ...] = ()  # source streams the container could not hold


def output_container(src: Path, dst: Path | None, info: VideoInfo | None, asked: str | None) -> str:
    """The container to write: asked, else ``dst``'s suffix, else the input's own (by suffix,
    then by content), else MP4. UsageError when ``dst`` names something else."""
    from_dst = container_for_suffix(dst) if dst is not None else None
    if dst is not None and from_dst is None and asked is None:
        raise UsageError(
            f"cannot write a video to {dst.name!r}: use a name ending in .mp4, .mkv, .webm or .mov"
        )
    if asked and from_dst and asked != from_dst:
        raise UsageError(f"container {asked} conflicts with the suffix of {dst}")
    chosen = asked or from_dst or container_for_suffix(src)
    if chosen:
        return chosen
    if info is not None:
        return "matroska" if info.container == "matroska" else "mp4"
    try:
        with open(src, "rb") as fh:
            return "matroska" if fh.read(4) == b"\x1a\x45\xdf\xa3" else "mp4"
    except OSError:
        return "mp4"


def default_video_output(src: Path | str, scale: int, container: str = "mp4") -> Path:
    """``NAME_xS.<container suffix>`` beside the input."""
    src = Path(src)
    return src.with_name(output_name(src, scale, CONTAINER_SUFFIX[container]))


def discard_job(dst: Path | str) -> bool:
    """Delete what unfinished runs writing ``dst`` kept for a resume; True if there was any."""
    folder = job_folder(Path(dst))
    if not folder.exists():
        return False
    Job(folder).remove()
    return True


def upscale_video(
    src: Path | str,
    dst: Path | str | None = None,
    options: Options | None = None,
    video: VideoOptions | None = None,
    progress: VideoProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    upscaler: Upscaler | None = None,
) -> VideoResult:
    """Upscale the video ``src`` into ``dst`` (default ``NAME_xS.<same container>`` beside
    it), resuming an unfinished earlier run of the same job.

    ``options`` are the image options (model, scale, tile, device, tta, overwrite,
    max_pixels per frame); ``video`` the encoder, segment and resume settings. ``progress``
    gets a :class:`VideoProgress` per frame (and per tile of a slow frame) in this thread;
    ``cancel`` (anything with ``is_set()``) stops between tiles with ``Cancelled``.
    ``upscaler`` reuses a caller's loaded model (it is not closed here).

    Raises before any work: UsageError (codec, container), InputError (not a readable
    video), OutputError (output exists, is the input, cannot be written). Later: InputError
    for a damaged input (nothing kept), DeviceError, OutputError, Cancelled or
    KeyboardInterrupt (finished segments kept for a resume; :func:`discard_job` drops them).
    The output file appears whole or not at all.
    """
    opts = options or Options()
    vopts = video or VideoOptions()
    src = Path(src)
    started = time.perf_counter()
    up = upscaler or Upscaler(opts)
    try:
        plan = up.prepare(opts)
        with open_reader(src) as reader:
            info = reader.info
            _check_frame_pixels(src, info, opts.max_pixels)
            asked_dst = Path(dst) if dst is not None else None
            container = output_container(src, asked_dst, info, vopts.container)
            out = asked_dst or default_video_output(src, plan.scale, container)
            _check_output(src, out, opts.overwrite)
            size = (info.width * plan.scale, info.height * plan.scale)
            choice = choose_encoder(info, size[0], size[1], container, vopts)
            seg_frames = segment_frames(info, vopts)
            settings = _settings(opts, vopts, plan, choice, container, seg_frames)
            job = Job.open(job_folder(out), input_identity(src), settings, vopts.resume)
            if job.stale_reason:
                level = logging.INFO if not vopts.resume else logging.WARNING
                log.log(
                    level,
                    "starting %s over: %s since the unfinished run",
                    out.name,
                    job.stale_reason,
                )
            try:
                resumed = job.frames_done
                tile = int(job.resolved.get("tile") or _pin_tile(up, plan, opts, info))
                if job.resolved.get("tile") != tile:
                    job.resolve(tile=tile)
                meter = _Meter(info.frames, resumed)
                frames = _pump(
                    reader.frames(_resume_point(job)),
                    src.name,
                    job,
                    choice,
                    up,
                    plan,
                    opts.replace(tile=tile),
                    seg_frames,
                    progress,
                    cancel,
                    meter,
                )
                if progress is not None:
                    progress(meter.report(frames, len(job.segments), "joining"))
                notes = join(job, choice, info, out, container, opts.overwrite, cancel)
                for note in notes:  # front ends show result.notes
                    log.info("%s: %s", src.name, note)
            except InputError:
                job.remove()  # the input is damaged: a resume would meet the same damage
                raise
            except BaseException:
                if job.segments:
                    job.close()
                else:
                    job.remove()
                raise
            job.remove()
            if progress is not None:
                progress(meter.report(frames, len(job.segments), "done"))
    finally:
        if upscaler is None:
            up.close()
    return VideoResult(
        src=src,
        dst=out,
        in_size=(info.width, info.height),
        out_size=size,
        frames=frames,
        frames_resumed=resumed,
        model=plan.spec.name,
        scale=plan.scale,
        device=plan.device.name,
        encoder=choice.name,
        pix_fmt=choice.pix_fmt,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )


def segment_frames(info: VideoInfo, vopts: VideoOptions) -> int:
    """Frames per segment: ``segment_seconds`` at the source's average rate (25 if unknown)."""
    return max(1, round(vopts.segment_seconds * float(info.rate or 25)))


def _check_frame_pixels(src: Path, info: VideoInfo, max_pixels: int) -> None:
    """InputError when a frame of ``src`` has more than ``max_pixels`` (checked before any
    work by :func:`upscale_video` and by the distributed ``plan_segments``)."""
    if info.width * info.height > max_pixels:
        raise InputError(
            f"{src.name}: frames are {info.width}x{info.height}, over the "
            f"{max_pixels / 1e6:g} MP cap"
        )


def _check_output(src: Path, dst: Path, overwrite: bool) -> None:
    try:
        same = dst.exists() and dst.samefile(src)
    except OSError:
        same = False
    if same or dst.resolve() == src.resolve():
        raise OutputError(f"refusing to write over the input {src}")
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst} exists (use --overwrite)")
    if not dst.parent.is_dir():
        raise OutputError(f"cannot write {dst}: {dst.parent} is not a folder")


def _settings(
    opts: Options,
    vopts: VideoOptions,
    plan: Plan,
    choice: EncoderChoice,
    container: str,
    seg_frames: int,
) -> dict[str, Any]:
    """Everything that shapes the output's pixels or packets: a resume needs it unchanged."""
    import av

    return {
        "model": plan.spec.name,
        "scale": plan.scale,
        "denoise": opts.denoise,
        "tile": opts.tile,
        "tta": opts.tta,
        "device": plan.device.name,
        "container": container,
        "segment_frames": seg_frames,
        "encoder": choice.settings(),
        "upscaler_edge": __version__,
        "pyav": av.__version__,
    }


def _pin_tile(up: Upscaler, plan: Plan, opts: Options, info: VideoInfo) -> int:
    """One tile size for the whole job (and its resumes): the automatic layout depends on
    the memory free at the moment, and a frame must come out the same in every run."""
    if opts.tile:
        return opts.tile
    tiles = up.tiles(info.width, info.height, plan, opts)
    if len(tiles) == 1:
        return max(MIN_TILE, info.width, info.height)
    core_w = max(t.x1 - t.x0 for t in tiles)
    core_h = max(t.y1 - t.y0 for t in tiles)
    return max(MIN_TILE, min(core_w, core_h))


class _End:
    """Marks the end of a queue's frames."""


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = _End()


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put unless ``stop`` is set first; False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


class SegmentSink(Protocol):
    """Where :func:`_pump` puts finished segments: a :class:`Job`, or one worker's segment."""

    segments: list[Segment]

    @property
    def frames_done(self) -> int: ...

    def new_writer(self) -> SegmentWriter: ...

    def commit(self, writer: SegmentWriter, extradata: bytes | None) -> Segment: ...


def _pump(
    source: Iterator[SourceFrame],
    name: str,
    job: SegmentSink,
    choice: EncoderChoice,
    up: Upscaler,
    plan: Plan,
    opts: Options,
    seg_frames: int,
    progress: VideoProgressCallback | None,
    cancel: CancelToken | None,
    meter: _Meter,
) -> int:
    """Run the three stages until ``source`` (the frames still to do, read in the decoder
    thread) ends; returns the frames in the job. ``name`` is the input's, for errors."""
    stop = threading.Event()
    decoded: queue.Queue[Any] = queue.Queue(_QUEUE)
    upscaled: queue.Queue[Any] = queue.Queue(_QUEUE)
    failures: list[BaseException] = []

    def decode() -> None:
        try:
            for frame in source:
                if not _put(decoded, frame, stop):
                    return
            _put(decoded, _END, stop)
        except BaseException as exc:
            _put(decoded, _Failed(exc), stop)

    def encode() -> None:
        enc: SegmentEncoder | None = None
        try:
            while True:
                item = upscaled.get()
                if item is _END or isinstance(item, _Failed):
                    break
                if enc is None:
                    enc = SegmentEncoder(choice, job.new_writer())
                enc.add(item.rgb, item.pts, item.duration, item.raw_pts)
                if enc.writer.frames >= seg_frames:
                    job.commit(enc.writer, enc.finish())
                    enc = None
            if item is _END and enc is not None:
                job.commit(enc.writer, enc.finish())
                enc = None
        except BaseException as exc:
            failures.append(exc)
            stop.set()
        finally:
            if enc is not None:
                enc.writer.abort()

    threads = [
        threading.Thread(target=decode, name="video-decode", daemon=True),
        threading.Thread(target=encode, name="video-encode", daemon=True),
    ]
    for t in threads:
        t.start()
    done = job.frames_done
    try:
        while True:
            item = _get(decoded, stop, failures)
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.exc
            frame: SourceFrame = item
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")

            def tiles(n: int, total: int, _done: int = done) -> None:
                if progress is not None and 0 < n < total:
                    progress(meter.report(_done, len(job.segments), fraction=n / total))

            pic = Picture(frames=[Frame(rgb=frame.rgb)], source_format="video")
            out = up.upscale_picture(pic, opts, tiles, cancel, plan=plan)
            frame.rgb = out.frames[0].rgb
            if not _put(upscaled, frame, stop):
                break
            done += 1
            if progress is not None:
                progress(meter.report(done, len(job.segments)))
        _put(upscaled, _END, stop)
        threads[1].join()
        if failures:
            raise failures[0]
        if done == 0:
            raise InputError(f"{name}: no video frame could be decoded")
        return done
    except BaseException:
        stop.set()
        _drain(upscaled)
        with contextlib.suppress(queue.Full):
            upscaled.put_nowait(_Failed(RuntimeError("stopped")))
        raise
    finally:
        stop.set()
        _drain(decoded)
        for t in threads:
            t.join()


def _get(q: queue.Queue[Any], stop: threading.Event, failures: list[BaseException]) -> Any:
    while True:
        if failures:
            raise failures[0]
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            if stop.is_set() and not failures:
                raise OutputError("internal error: the encoder stopped") from None


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _resume_point(job: Job) -> ResumePoint | None:
    if not job.segments:
        return None
    last = job.segments[-1]
    return ResumePoint(
        frames=job.frames_done,
        pts=last.last_pts,
        raw_pts=last.last_raw_pts,
        seek_pts=last.first_raw_pts if last.clean else None,
    )
