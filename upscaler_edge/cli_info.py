"""The command line's answers that upscale nothing: ``--list-models``, ``--list-devices``
and ``--import-model``.

``upscaler_edge.cli.run`` calls these (under private names there:
``_print_models``, ``_print_devices``, ``_import_model``) before any batch work.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from .cli_args import PROG
from .errors import ExitStatus, UsageError

if TYPE_CHECKING:
    from .cli import Env
    from .models import ModelFamily, Registry

__all__ = ["import_model_command", "print_devices", "print_models"]


def print_models(out: TextIO, registry: Registry) -> None:
    """``--list-models``: one line per model family (scales, kind, description), then its
    denoise levels or the models ``-s`` picks from."""
    fams = registry.families()
    width = max(len(f.name) for f in fams) + 2
    for f in fams:
        scales = "/".join(f"x{s}" for s in f.scales)
        out.write(f"{f.name:<{width}}{scales:<10}{f.kind:<7}{f.description}\n")
        if f.denoise:
            out.write(f"{'':<{width}}{_denoise_line(f)}\n")
        elif len(f.members) > 1:
            out.write(f"{'':<{width}}(-s picks: {', '.join(f.members)})\n")


def _denoise_line(f: ModelFamily) -> str:
    """``-n  x2: -1 0 1 2 3  x3: -1 0 3  (-1 conservative, 0 none = default)``."""
    per_scale = {s: f.denoise_for(s) for s in f.scales}
    if len(set(per_scale.values())) == 1:
        levels = " ".join(map(str, f.denoise))
    else:
        levels = "  ".join(f"x{s}: {' '.join(map(str, lv))}" for s, lv in per_scale.items() if lv)
    named = [
        f"{lv} {label}{' = default' if lv == f.default_denoise else ''}"
        for lv in f.denoise
        if (label := f.denoise_label(lv)) != str(lv)
    ]
    return f"-n  {levels}  ({', '.join(named)})" if named else f"-n  {levels}"


def import_model_command(args: argparse.Namespace, env: Env) -> ExitStatus:
    """--import-model FILE [--name NAME] [-s N]: one line naming the model, on stdout."""
    if args.inputs:
        raise UsageError("--import-model takes no INPUT images; import first, then upscale")
    from .convert import import_model

    def say(line: str) -> None:
        if not args.quiet and env.interactive:
            env.stderr.write(f"{PROG}: {line}\n")

    done = import_model(args.import_model, args.name, args.scale, say=say)
    env.stdout.write(
        f"imported {done.name} (x{done.scale}, {done.kind}, ncnn matches it at "
        f"{done.parity_db:.0f} dB, context {done.context}): use -m {done.name}\n"
    )
    return ExitStatus.OK


def print_devices(out: TextIO) -> None:
    """``--list-devices``: one line per device (``auto``'s pick marked), the GPU tile checks
    found for it, and why there is no GPU when there is none."""
    from .engine import list_devices, pick_device

    auto = pick_device("auto")
    devices = list_devices(backends=True)
    for d in devices:
        mark = "  <- auto" if d == auto else ""
        extra = ""
        if d.is_gpu:
            fp16 = "fp16" if d.fp16 else "no fp16 storage"
            extra = f", {d.driver}, {d.heap_budget_mb} MB heap budget, {fp16}"
        elif d.backend == "best":
            extra = ", OpenVINO where the model converts and runs faster, else ncnn"
        elif d.backend == "ncnn":
            extra = ", ncnn"
        out.write(f"{d.option:>12}  {d.name} ({d.kind}{extra}){mark}\n")
        if d.is_gpu:
            from . import gpu_windows

            for model, verdict in gpu_windows.checked_on(d):
                out.write(f"{'':>12}  tiles checked for {model}: {gpu_windows.describe(verdict)}\n")
    if not any(d.is_gpu for d in devices):
        from .vulkan_diag import diagnose

        out.write(f"{'':>12}  no GPU: {diagnose()}\n")
