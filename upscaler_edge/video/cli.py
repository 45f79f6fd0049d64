"""The command line's video half: which inputs are videos, and running them with a bar.

``upscaler_edge.cli.run`` hands video inputs here (:func:`split_inputs`, :func:`run_videos`)
and keeps the images. Exit statuses and the one-line-per-failure rule are the CLI's.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli_args import PROG
from ..errors import ExitStatus, UpscalerError, UsageError
from ..naming import output_name
from ..options import Options
from .options import VideoOptions
from .segments import job_folder
from .sniff import CONTAINER_SUFFIX, container_for_suffix, is_animated_image, sniff

if TYPE_CHECKING:
    from ..cli import Env
    from ..models import Registry
    from .progress import VideoProgress

__all__ = ["run_videos", "split_inputs"]

_FORMAT_CONTAINER = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}


def split_inputs(inputs: list[Path], output: Path | None) -> tuple[list[Path], list[Path]]:
    """(videos, the rest): files whose content is a video container, files FFmpeg opens as
    video, and animated GIF/WebP when ``output`` names a video container. Folders and
    missing paths stay with the rest (the image path reports them)."""
    to_video = output is not None and container_for_suffix(output) is not None
    videos, rest = [], []
    for p in inputs:
        kind = sniff(p) if p.is_file() else "missing"
        if (
            kind == "video"
            or (kind == "animation" and to_video and is_animated_image(p))
            or (kind is None and _ffmpeg_sees_video(p))
        ):
            videos.append(p)
        else:
            rest.append(p)
    return videos, rest


_IMAGE_DEMUXERS = frozenset({"image2", "ico", "apng", "gif", "webp", "jpegxl_anim", "tga"})


def _ffmpeg_sees_video(path: Path) -> bool:
    """A file of unknown kind that is no image Pillow reads and that FFmpeg opens with a real
    video stream."""
    try:
        import av
    except ImportError:
        return False
    from PIL import Image

    try:
        with Image.open(path):
            return False
    except Exception:
        pass
    try:
        with av.open(str(path)) as c:
            name = c.format.name.split(",")[0]
            if name.endswith("_pipe") or name in _IMAGE_DEMUXERS:
                return False
            return any(
                not s.disposition & av.stream.Disposition.attached_pic for s in c.streams.video
            )
    except Exception:
        return False


def _video_options(args: argparse.Namespace) -> VideoOptions:
    container = None
    if args.format:
        container = _FORMAT_CONTAINER.get(args.format.lower().lstrip("."))
        if container is None:
            raise UsageError(
                f"-f {args.format} is an image format: a video is written as mp4, mkv, webm or mov"
            )
    return VideoOptions(
        codec=args.video_codec,
        crf=args.crf,
        preset=args.preset,
        segment_seconds=args.segment,
        resume=not args.no_resume,
        container=container,
    )


def _destination(
    src: Path, output: Path | None, single: bool, scale: int, vopts: VideoOptions
) -> Path:
    """Where one video goes: ``-o`` itself (one video), under ``-o`` (a folder), or beside
    the input as ``NAME_xS.<container>``."""
    if single and output is not None:
        return output
    from .transcode import output_container

    container = output_container(src, None, None, vopts.container)
    name = output_name(src, scale, CONTAINER_SUFFIX[container])
    return src.with_name(name) if output is None else output / name


def run_videos(
    videos: list[Path], options: Options, args: argparse.Namespace, env: Env, registry: Registry
) -> ExitStatus:
    """Upscale each video with the image ``options`` the CLI built (model, scale, tile,
    device, denoise, tta, overwrite, pixel cap per frame) and the video flags in ``args``;
    one line per failure on stderr. Raises UsageError (nothing run) when PyAV is missing or
    the options make no sense; KeyboardInterrupt after saying where the finished part was
    kept."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise UsageError(
            f'{videos[0]} is a video: videos need PyAV: pip install "upscaler-edge[video]"'
        ) from None
    from ..pipeline import Upscaler
    from .transcode import upscale_video

    vopts = _video_options(args)
    output: Path | None = args.output
    single = len(videos) == 1 and output is not None and not output.is_dir() and output.suffix != ""
    show = not args.quiet and env.interactive
    done = failed = skipped = 0
    started = time.perf_counter()
    device = ""
    with Upscaler(options, registry) as up:
        plan = up.prepare(options)
        for src in videos:
            dst = _destination(src, output, single, plan.scale, vopts)
            if args.skip_existing and dst.exists():
                skipped += 1
                continue
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                failed += 1
                env.stderr.write(
                    f"{PROG}: error: {src}: cannot write to {dst.parent}: {exc.strerror or exc}\n"
                )
                continue
            bar = _Bar(src, show, args.quiet, env)
            cancel = threading.Event()
            try:
                result = upscale_video(src, dst, options, vopts, bar.update, cancel, upscaler=up)
            except KeyboardInterrupt:
                cancel.set()
                bar.close()
                _say_kept(env, src, dst)
                raise
            except UsageError:
                bar.close()
                raise
            except UpscalerError as exc:
                bar.close()
                failed += 1
                env.stderr.write(f"{PROG}: error: {src}: {exc}{_kept_hint(dst)}\n")
                continue
            bar.close()
            done += 1
            device = result.device
            for note in result.notes:
                env.stderr.write(f"{PROG}: warning: {src}: {note}\n")
            if not args.quiet:
                (iw, ih), (ow, oh) = result.in_size, result.out_size
                again = f", {result.frames_resumed} resumed" if result.frames_resumed else ""
                env.stdout.write(
                    f"{src} -> {result.dst} ({iw}x{ih} -> {ow}x{oh}, {result.frames} frames"
                    f"{again}, {result.encoder}, {result.seconds:.1f} s)\n"
                )
    if not args.quiet:
        took = time.perf_counter() - started
        summary = f"{done} done, {failed} failed"
        if skipped:
            summary += f", {skipped} skipped (exist)"
        where = f" on {device}" if device else ""
        env.stderr.write(f"{summary} in {took:.1f} s with {plan.spec.name}{where}\n")
    return ExitStatus.FAILED if failed else ExitStatus.OK


def _kept_hint(dst: Path) -> str:
    if job_folder(dst).exists():
        return " (the finished part is kept: run the same command again to resume)"
    return ""


def _say_kept(env: Env, src: Path, dst: Path) -> None:
    folder = job_folder(dst)
    if folder.exists():
        env.stderr.write(
            f"\n{PROG}: {src}: the finished part is kept in {folder}: run the same command "
            "again to resume (or delete that folder)\n"
        )


class _Bar:
    """A tqdm bar of frames for one video (when the terminal is interactive)."""

    def __init__(self, src: Path, show: bool, quiet: bool, env: Env) -> None:
        self.src, self.show, self.quiet, self.env = src, show, quiet, env
        self._bar: Any = None
        self._said_resume = False

    def update(self, p: VideoProgress) -> None:
        if p.frames_resumed and not self._said_resume and not self.quiet:
            self._said_resume = True
            line = f"{PROG}: {self.src}: resuming after {p.frames_resumed} frames done earlier"
            if self.show:
                from tqdm import tqdm

                tqdm.write(line, file=self.env.stderr)
            else:
                self.env.stderr.write(line + "\n")
        if not self.show:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=p.frames_total,
                initial=p.frames_resumed,
                unit="frame",
                desc=self.src.name[:24],
                file=self.env.stderr,
                leave=False,
                dynamic_ncols=True,
            )
        if p.frames_total is not None and p.frames_total != self._bar.total:
            self._bar.total = p.frames_total
        if p.phase != "upscaling":
            self._bar.set_postfix_str(p.phase, refresh=False)
        if p.frames_done > self._bar.n:
            self._bar.update(p.frames_done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
