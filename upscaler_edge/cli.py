"""``upscaler-edge`` / ``python -m upscaler_edge``: argv -> Options -> pipeline -> exit status.

``main(argv)`` turns every outcome into an :class:`~upscaler_edge.errors.ExitStatus` and never
raises; ``run(args, env)`` does the work and raises ``UsageError`` for what must stop it
before any work (httpie's split). Exit 0 when every input was upscaled (or skipped), 1 when any
input failed (the rest are still done; one line per failure on stderr, no traceback), 2 on
usage errors, 130 on Ctrl-C. ``--bot`` and ``--gui`` hand the rest of argv to the Telegram bot
and the desktop window.

The pieces live beside it and are imported here under the names other code and tests use:
the parser in ``cli_args``, the task planning in ``cli_plan``, the listing and import
commands in ``cli_info``. ``run`` looks them up on this module, so patching ``cli.NAME``
reaches it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .bars import ProgressBars
from .cli_args import PROG, build_parser
from .cli_args import options_from_args as _options
from .cli_info import import_model_command as _import_model
from .cli_info import print_devices as _print_devices
from .cli_info import print_models as _print_models
from .cli_plan import Task, plan_tasks
from .cli_plan import is_single_file as _is_single_file
from .cli_plan import output_format as _output_format
from .cli_plan import unwritable_folders as _unwritable
from .errors import ExitStatus, UnknownModelError, UpscalerError, UsageError
from .options import Options

__all__ = ["Env", "build_parser", "main", "plan_tasks", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Env:
    """Where the CLI talks: injected so tests never touch the real terminal."""

    stdout: TextIO
    stderr: TextIO

    @property
    def interactive(self) -> bool:
        return bool(self.stderr.isatty())


def _dispatch_front_end(argv: list[str], stderr: TextIO) -> int | None:
    if "--coordinator" in argv or "--serve" in argv:
        from .cluster.cli import main as cluster_main

        return cluster_main(argv)
    if "--bot" in argv:
        rest = [a for a in argv if a != "--bot"]
        try:
            from .bot.cli import main as bot_main
        except ImportError as exc:
            stderr.write(
                f"{PROG}: the Telegram bot needs the bot extra: "
                f'pip install "upscaler-edge[bot]" ({exc})\n'
            )
            return ExitStatus.USAGE
        return bot_main(rest)
    if "--gui" in argv:
        rest = [a for a in argv if a != "--gui"]
        try:
            import PySide6  # noqa: F401
        except ImportError:
            stderr.write(
                f'{PROG}: the desktop window needs PySide6: pip install "upscaler-edge[gui]"\n'
            )
            return ExitStatus.USAGE
        from upscaler_edge_gui.app import main as gui_main

        return gui_main(rest)
    return None


def main(
    argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit status (never raises)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = Env(stdout or sys.stdout, stderr or sys.stderr)
    front = _dispatch_front_end(argv, env.stderr)
    if front is not None:
        return front
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message
        return int(exc.code or 0) and ExitStatus.USAGE
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format=f"{PROG}: %(levelname)s: %(message)s",
        stream=env.stderr,
    )
    if not (args.inputs or args.list_models or args.list_devices or args.import_model):
        parser.print_usage(env.stderr)
        env.stderr.write(
            f"{PROG}: error: give at least one INPUT (file or folder), or --gui / --bot\n"
        )
        return ExitStatus.USAGE
    try:
        return run(args, env)
    except (UsageError, UnknownModelError) as exc:
        env.stderr.write(f"{PROG}: error: {exc}\n")
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        env.stderr.write(f"\n{PROG}: cancelled; no partial files were written\n")
        return ExitStatus.INTERRUPTED
    except UpscalerError as exc:  # a device or model failure that stops the whole batch
        env.stderr.write(f"{PROG}: error: {exc}\n")
        return ExitStatus.FAILED
    except Exception as exc:  # a bug: one line for the user, the traceback with -v
        log.info("internal error", exc_info=True)
        env.stderr.write(f"{PROG}: internal error: {type(exc).__name__}: {exc} (-v for details)\n")
        return ExitStatus.FAILED


def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    """Do what the parsed arguments ask. Raises UsageError before any work when the request
    makes no sense; a failing input is reported and counted, never raised."""
    from .models import default_registry

    if args.import_model is not None:
        return _import_model(args, env)
    registry = default_registry()
    if args.list_models:
        _print_models(env.stdout, registry)
        return ExitStatus.OK
    if args.list_devices:
        _print_devices(env.stdout)
        return ExitStatus.OK

    from .engine import pick_devices
    from .pipeline import Upscaler, UpscaleResult

    inputs = [Path(p) for p in args.inputs]
    from .video.cli import run_videos, split_inputs  # video files go to upscaler_edge.video

    videos, inputs = split_inputs(inputs, args.output)
    if args.cluster and videos and not inputs:
        return _on_cluster(args, env, [], videos, _options(args, None), 0, 0)
    videos_for_cluster: list[Path] = []
    if args.cluster:
        videos_for_cluster, videos = videos, []
    video_status = (
        run_videos(videos, _options(args, None), args, env, registry) if videos else ExitStatus.OK
    )
    if not inputs:
        return video_status
    fmt = _output_format(args.output, args.format, _is_single_file(inputs, args.output))
    options = _options(args, fmt)
    spec = registry.resolve(options.model, options.scale, options.denoise)
    devices = pick_devices(options.device)
    scale = options.scale or spec.scale
    tasks, problems = plan_tasks(inputs, args.output, scale, fmt, args.recursive)
    for problem in problems:  # inputs that do not exist: said at once, counted as failures
        env.stderr.write(f"{PROG}: error: {problem}\n")
    failed = len(problems)
    skipped = 0
    if args.skip_existing:
        kept = [t for t in tasks if not t.dst.exists()]
        skipped = len(tasks) - len(kept)
        tasks = kept
    blocked = _unwritable(tasks)
    for t in tasks:
        if t.dst.parent in blocked:
            env.stderr.write(f"{PROG}: error: {t.src}: {blocked[t.dst.parent]}\n")
            failed += 1
    tasks = [t for t in tasks if t.dst.parent not in blocked]
    if args.cluster:
        return _on_cluster(args, env, tasks, videos_for_cluster, options, scale, failed)

    def on_which(r: UpscaleResult) -> str:  # which device, when there are several
        return f", {r.device}" if len(devices) > 1 else ""

    done = 0
    ran_on = ""  # what the one device turned out to be ("cpu": OpenVINO's or ncnn's)
    started = time.perf_counter()
    cancel = threading.Event()
    try:
        with (
            Upscaler(options, registry) as up,
            ProgressBars(len(tasks), not args.quiet and env.interactive, env.stderr) as bars,
        ):
            for item in up.upscale_many(
                [(t.src, t.dst) for t in tasks], options, bars.tile, cancel
            ):
                bars.file_done()
                if item.error is not None or item.result is None:
                    failed += 1
                    bars.write(f"{PROG}: error: {item.src}: {item.error}")
                    continue
                done += 1
                ran_on = item.result.device
                if not args.quiet:
                    r = item.result
                    bars.write(
                        f"{item.src} -> {r.dst} ({r.in_size[0]}x{r.in_size[1]} -> "
                        f"{r.out_size[0]}x{r.out_size[1]}, {r.seconds:.1f} s{on_which(r)})",
                        env.stdout,
                    )
    except KeyboardInterrupt:
        cancel.set()
        raise
    if not args.quiet:
        took = time.perf_counter() - started
        summary = f"{done} done, {failed} failed"
        if skipped:
            summary += f", {skipped} skipped (exist)"
        on = ran_on if ran_on and len(devices) == 1 else " + ".join(d.name for d in devices)
        env.stderr.write(f"{summary} in {took:.1f} s with {spec.name} on {on}\n")
    return ExitStatus.FAILED if failed or video_status else ExitStatus.OK


def _on_cluster(
    args: argparse.Namespace,
    env: Env,
    tasks: list[Task],
    videos: list[Path],
    options: Options,
    scale: int,
    failed: int,
) -> ExitStatus:
    """The batch through the cluster (``--cluster``) instead of this PC's devices."""
    from .cluster.batch import address_from_args, run_batch
    from .models import default_registry

    video_pairs: list[tuple[Path, Path]] = []
    vopts = None
    if videos:
        from .video.cli import _destination, _video_options

        vopts = _video_options(args)
        scale = (
            scale
            or options.scale
            or default_registry().resolve(options.model, options.scale, options.denoise).scale
        )
        single = len(videos) == 1 and args.output is not None and args.output.suffix != ""
        video_pairs = [(v, _destination(v, args.output, single, scale, vopts)) for v in videos]
    _done, more = run_batch(
        address_from_args(args),
        [(t.src, t.dst) for t in tasks],
        video_pairs,
        options,
        vopts,
        env.stdout,
        env.stderr,
        args.quiet,
    )
    return ExitStatus.FAILED if failed or more else ExitStatus.OK
