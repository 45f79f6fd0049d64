"""``upscaler-edge`` / ``python -m upscaler_edge``: argv -> Options -> pipeline -> exit status.

Exit 0 when every input was upscaled (or skipped), 1 when any input failed (the rest are still
done; one line per failure on stderr, no traceback), 2 on usage errors, 130 on Ctrl-C.
``--bot`` and ``--gui`` hand the rest of argv to the Telegram bot and the desktop window.
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

from . import __version__
from .errors import UpscalerError, UsageError
from .naming import find_images
from .options import DEFAULT_MODEL, OUTPUT_FORMATS, Options

__all__ = ["build_parser", "main"]

PROG = "upscaler-edge"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Real-ESRGAN super-resolution on your Vulkan GPU or CPU (ncnn).",
        epilog="Also: --gui opens the desktop window, --bot runs the Telegram bot.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=Path,
        help="output file (one input) or folder; default: NAME_x4.png beside each input",
    )
    p.add_argument(
        "-m",
        "--model",
        default=DEFAULT_MODEL,
        help=f"model name (default {DEFAULT_MODEL}; see --list-models)",
    )
    p.add_argument(
        "-s",
        "--scale",
        type=int,
        help="output scale (default: the model's; smaller ones resize with Lanczos)",
    )
    p.add_argument(
        "-t",
        "--tile",
        type=int,
        default=0,
        help="tile size in input pixels, >= 32; 0 = auto (default)",
    )
    p.add_argument(
        "-d", "--device", default="auto", help="auto (default), cpu, or a Vulkan GPU index"
    )
    p.add_argument(
        "-f",
        "--format",
        choices=OUTPUT_FORMATS,
        help="output format (default png, or from -o's suffix)",
    )
    p.add_argument("--quality", type=int, default=95, help="jpg/webp quality 1-100 (default 95)")
    p.add_argument(
        "--tta", action="store_true", help="test-time augmentation: 8x slower, slightly cleaner"
    )
    p.add_argument(
        "--alpha",
        choices=("model", "bicubic"),
        default="model",
        help="upscale transparency with the model (default) or bicubic",
    )
    p.add_argument(
        "--all-frames",
        action="store_true",
        help="animated GIF/WebP: every frame, not just the first",
    )
    p.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="descend into subfolders (mirrored under OUT)",
    )
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--max-megapixels", type=float, default=50.0, help="refuse larger inputs (default 50)"
    )
    p.add_argument("--list-models", action="store_true", help="list the models and exit")
    p.add_argument("--list-devices", action="store_true", help="list the compute devices and exit")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    return p


@dataclass(frozen=True)
class _Task:
    src: Path
    dst: Path


def _out_name(src: Path, scale: int, fmt: str | None) -> str:
    ext = fmt or "png"
    return f"{src.stem}_x{scale}.{'jpg' if ext == 'jpeg' else ext}"


def plan_tasks(
    inputs: list[Path], output: Path | None, scale: int, fmt: str | None, recursive: bool
) -> tuple[list[_Task], list[str]]:
    """Inputs and -o -> (src, dst) pairs, plus one error line per input that does not exist."""
    tasks: list[_Task] = []
    problems: list[str] = []
    single_file_out = (
        output is not None
        and len(inputs) == 1
        and inputs[0].is_file()
        and not output.is_dir()
        and output.suffix != ""
    )
    for inp in inputs:
        if inp.is_dir():
            files = find_images(inp, recursive=recursive)
            if not files:
                problems.append(
                    f"{inp}: no images found" + ("" if recursive else " (use -r for subfolders)")
                )
            for f in files:
                rel = f.relative_to(inp).parent
                folder = (output / inp.name / rel) if output is not None else f.parent
                tasks.append(_Task(f, folder / _out_name(f, scale, fmt)))
        elif inp.is_file():
            if single_file_out:
                assert output is not None
                tasks.append(_Task(inp, output))
            else:
                folder = output if output is not None else inp.parent
                tasks.append(_Task(inp, folder / _out_name(inp, scale, fmt)))
        else:
            problems.append(f"{inp}: no such file or folder")
    return tasks, problems


def _print_models(out: TextIO) -> None:
    from .models import list_models

    specs = list_models()
    width = max(len(s.name) for s in specs) + 2
    for s in specs:
        out.write(f"{s.name:<{width}}x{s.scale}  {s.kind:<7}{s.description}\n")
    out.write(f"{'realesr-animevideov3':<{width}}x2-4 (picks the -xN variant from -s)\n")


def _print_devices(out: TextIO) -> None:
    from .engine import list_devices, pick_device

    auto = pick_device("auto")
    for d in list_devices():
        idx = "cpu" if d.index < 0 else str(d.index)
        mark = "  <- auto" if d == auto else ""
        extra = f", {d.heap_budget_mb} MB heap" if d.is_gpu else ""
        out.write(f"{idx:>4}  {d.name} ({d.kind}{extra}){mark}\n")


def _dispatch_front_end(argv: list[str], stderr: TextIO) -> int | None:
    if "--bot" in argv:
        rest = [a for a in argv if a != "--bot"]
        try:
            from .bot.cli import main as bot_main
        except ImportError as exc:
            stderr.write(
                f"{PROG}: the Telegram bot needs the bot extra: "
                f"pip install 'upscaler-edge[bot]' ({exc})\n"
            )
            return EXIT_USAGE
        return bot_main(rest)
    if "--gui" in argv:
        rest = [a for a in argv if a != "--gui"]
        try:
            import PySide6  # noqa: F401
        except ImportError:
            stderr.write(
                f"{PROG}: the desktop window needs PySide6: pip install 'upscaler-edge[gui]'\n"
            )
            return EXIT_USAGE
        from upscaler_edge_gui.app import main as gui_main

        return gui_main(rest)
    return None


def main(
    argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit status (never raises for user errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    front = _dispatch_front_end(argv, err)
    if front is not None:
        return front

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message
        return int(exc.code or 0) and EXIT_USAGE
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format=f"{PROG}: %(levelname)s: %(message)s",
        stream=err,
    )
    if args.list_models:
        _print_models(out)
        return EXIT_OK
    if args.list_devices:
        _print_devices(out)
        return EXIT_OK
    if not args.inputs:
        parser.print_usage(err)
        err.write(f"{PROG}: error: give at least one INPUT (file or folder), or --gui / --bot\n")
        return EXIT_USAGE

    from .models import resolve_model
    from .pipeline import Upscaler

    try:
        options = Options(
            model=args.model,
            scale=args.scale,
            tile=args.tile,
            device=args.device,
            format=args.format,
            quality=args.quality,
            tta=args.tta,
            alpha=args.alpha,
            all_frames=args.all_frames,
            overwrite=args.overwrite,
            max_pixels=int(args.max_megapixels * 1_000_000),
        )
        spec = resolve_model(options.model, options.scale, options.models_dirs)
        if options.scale is not None and options.scale > spec.scale:
            raise UsageError(f"{spec.name} upscales x{spec.scale}; -s {options.scale} is larger")
        from .engine import pick_device

        device = pick_device(options.device)
    except UpscalerError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    scale = options.scale or spec.scale
    fmt = options.format
    tasks, problems = plan_tasks(
        [Path(p) for p in args.inputs], args.output, scale, fmt, args.recursive
    )
    for problem in problems:  # inputs that do not exist: said at once, counted as failures
        err.write(f"{PROG}: error: {problem}\n")
    failed = len(problems)
    if args.skip_existing:
        kept = [t for t in tasks if not t.dst.exists()]
        skipped = len(tasks) - len(kept)
        tasks = kept
    else:
        skipped = 0
    show = not args.quiet and err.isatty()
    done = 0
    started = time.perf_counter()
    cancel = threading.Event()
    try:
        with Upscaler(options) as up, _Bars(len(tasks), show, err) as bars:
            for item in up.upscale_many(
                [(t.src, t.dst) for t in tasks], options, bars.tile, cancel
            ):
                bars.file_done(item.src)
                if item.error is not None:
                    failed += 1
                    bars.write(f"{PROG}: error: {item.src}: {item.error}")
                else:
                    done += 1
                    if not args.quiet:
                        r = item.result
                        assert r is not None
                        bars.write(
                            f"{item.src} -> {r.dst} ({r.in_size[0]}x{r.in_size[1]} -> "
                            f"{r.out_size[0]}x{r.out_size[1]}, {r.seconds:.1f} s)",
                            out,
                        )
    except KeyboardInterrupt:
        cancel.set()
        err.write(f"\n{PROG}: cancelled; no partial files were written\n")
        return EXIT_INTERRUPTED
    except UpscalerError as exc:  # a device or model failure that stops the whole batch
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_FAILED
    if not args.quiet:
        took = time.perf_counter() - started
        summary = f"{done} done, {failed} failed"
        if skipped:
            summary += f", {skipped} skipped (exist)"
        err.write(f"{summary} in {took:.1f} s with {spec.name} on {device.name}\n")
    return EXIT_FAILED if failed else EXIT_OK


class _Bars:
    """tqdm bars: files across the batch (when more than one) and tiles within a file."""

    def __init__(self, files: int, show: bool, stream: TextIO) -> None:
        self.show, self.stream, self.files = show, stream, files
        self._files_bar = self._tiles_bar = None

    def __enter__(self) -> _Bars:
        if self.show:
            from tqdm import tqdm

            self._tqdm = tqdm
            if self.files > 1:
                self._files_bar = tqdm(
                    total=self.files, unit="file", desc="files", file=self.stream, position=0
                )
        return self

    def tile(self, done: int, total: int) -> None:
        if not self.show:
            return
        if self._tiles_bar is None or done == 0:
            if self._tiles_bar is not None:
                self._tiles_bar.close()
            self._tiles_bar = self._tqdm(
                total=total,
                unit="tile",
                desc="tiles",
                file=self.stream,
                leave=False,
                position=1 if self._files_bar is not None else 0,
            )
        self._tiles_bar.n = done
        self._tiles_bar.refresh()

    def file_done(self, src: Path) -> None:
        if self._files_bar is not None:
            self._files_bar.update(1)

    def write(self, line: str, stream: TextIO | None = None) -> None:
        target = stream or self.stream
        if self.show:
            self._tqdm.write(line, file=target)
        else:
            target.write(line + "\n")

    def __exit__(self, *exc: object) -> None:
        for bar in (self._tiles_bar, self._files_bar):
            if bar is not None:
                bar.close()
