"""Which file goes where: the inputs and ``-o`` planned into tasks before any model runs.

``upscaler_edge.cli.run`` decides the output format (:func:`output_format`), pairs every
input with its output path (:func:`plan_tasks`) and drops the tasks whose output folder
cannot be written (:func:`unwritable_folders`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .naming import find_images, output_names

__all__ = ["Task", "is_single_file", "output_format", "plan_tasks", "unwritable_folders"]


@dataclass(frozen=True)
class Task:
    """One input and the one path its result goes to."""

    src: Path
    dst: Path


def output_format(output: Path | None, fmt: str | None, single_file: bool) -> str | None:
    """The output format asked for (-f, or -o's suffix for one file); UsageError when they
    conflict or the format cannot be written here."""
    from . import imageio

    asked = imageio.check_output_format(fmt) if fmt else None
    if output is None or not single_file:
        return asked
    from_suffix = imageio.format_from_suffix(output)
    if from_suffix is None:
        raise UsageError(
            f"cannot tell the output format from {output.name!r}: "
            f"use one of {', '.join(imageio.OUTPUT_FORMATS)}"
        )
    if asked is not None and asked != from_suffix:
        raise UsageError(f"-f {fmt} conflicts with the suffix of {output.name!r}")
    return from_suffix


def is_single_file(inputs: list[Path], output: Path | None) -> bool:
    """One input file and an ``-o`` that names a file (not a folder): the result goes there."""
    return (
        output is not None
        and len(inputs) == 1
        and inputs[0].is_file()
        and not output.is_dir()
        and output.suffix != ""
    )


def plan_tasks(
    inputs: list[Path], output: Path | None, scale: int, fmt: str | None, recursive: bool
) -> tuple[list[Task], list[str]]:
    """Inputs and -o -> (src, dst) pairs, plus one error line per input that does not exist.

    Output names follow ``naming``: unique within the run (inputs whose names would collide
    carry their source suffix) and the same on every run over the same inputs.
    """
    found: list[tuple[Path, Path]] = []  # (source, output folder)
    problems: list[str] = []
    if is_single_file(inputs, output):
        assert output is not None
        return [Task(inputs[0], output)], problems
    for inp in inputs:
        if inp.is_dir():
            files = find_images(inp, recursive=recursive)
            if not files:
                problems.append(
                    f"{inp}: no images found" + ("" if recursive else " (use -r for subfolders)")
                )
            for f in files:
                rel = f.relative_to(inp).parent
                found.append((f, (output / inp.name / rel) if output is not None else f.parent))
        elif inp.is_file():
            found.append((inp, output if output is not None else inp.parent))
        else:
            problems.append(f"{inp}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for src, folder in found:  # the same file named twice is one task
        key = src.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((src, folder))
    dsts = output_names(unique, scale, fmt or "png")
    return [Task(src, dst) for (src, _), dst in zip(unique, dsts, strict=True)], problems


def unwritable_folders(tasks: Iterable[Task]) -> dict[Path, str]:
    """Output folders that cannot be written, with the reason: checked before the model
    runs, so a long job does not end in 'permission denied'."""
    bad: dict[Path, str] = {}
    for folder in sorted({t.dst.parent for t in tasks}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder, prefix=".upscaler-edge-check."):
                pass
        except FileExistsError:
            bad[folder] = f"cannot write to {folder}: not a folder"
        except OSError as exc:
            bad[folder] = f"cannot write to {folder}: {exc.strerror or exc}"
    return bad
