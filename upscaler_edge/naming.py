"""Which files are images, and what their results are called: one owner for CLI, window and bot.

Output names: ``NAME_xS.EXT`` beside the input (or under ``-o``). When two inputs of one run
would get the same output name (``hopper.bmp`` and ``hopper.png`` -> ``hopper_x4.png``), each
such input's name carries its source suffix instead: ``hopper_bmp_x4.png``,
``hopper_png_x4.png``. The rule depends only on the set of inputs, so a second run over the
same folder finds the same names again (``--skip-existing``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "find_images",
    "is_image_name",
    "output_name",
    "output_names",
]

#: File suffixes (lower case, with the dot) that mark a file as an image when scanning folders.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".png",
        ".apng",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".mpo",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".gif",
        ".avif",
        ".avifs",
        ".heic",
        ".heif",
        ".tga",
        ".dds",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".qoi",
        ".ico",
        ".jp2",
        ".j2k",
        ".jpx",
        ".psd",
    }
)

# NAME_x4, NAME_x4-2 (older runs) and NAME_png_x4 (the collision rule) are our own results
_OUR_OUTPUT = re.compile(r"^(?P<source>.+?)(?:_(?P<ext>[a-z0-9]{2,5}))?_x\d{1,2}(-\d+)?$")


def is_image_name(name: str) -> bool:
    """True for a file name with an image suffix (the content is checked on decoding)."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def output_name(src: Path, scale: int, ext: str, *, with_suffix: bool = False) -> str:
    """``NAME_xS.EXT``, or ``NAME_SUF_xS.EXT`` when ``with_suffix`` (see the module's rule)."""
    ext = "jpg" if ext in ("jpg", "jpeg") else ext.lower().lstrip(".")
    stem = src.stem
    if with_suffix and src.suffix:
        stem += "_" + src.suffix.lower().lstrip(".")
    return f"{stem}_x{scale}.{ext}"


def output_names(sources: Iterable[tuple[Path, Path]], scale: int, ext: str) -> list[Path]:
    """Output paths for (input, output folder) pairs, unique within the set: inputs whose
    plain names would collide in one folder carry their source suffix (case-insensitive, as on
    Windows and macOS file systems)."""
    pairs = list(sources)
    plain = [(folder / output_name(src, scale, ext)) for src, folder in pairs]
    counts = Counter(str(p).lower() for p in plain)
    return [
        folder / output_name(src, scale, ext, with_suffix=True)
        if counts[str(path).lower()] > 1
        else path
        for (src, folder), path in zip(pairs, plain, strict=True)
    ]


def find_images(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by suffix; decoding still checks the content), sorted,
    hidden files and folders left out, and our own earlier results too (``NAME_x4.png``,
    ``NAME_x4-2.png`` or ``NAME_png_x4.png`` beside a ``NAME.*``), so running the same job
    twice does not upscale the results."""
    root = Path(folder)
    found: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [
            Path(dirpath) / name
            for name in files
            if not name.startswith(".") and is_image_name(name)
        ]
    stems = {(p.parent, p.stem) for p in found}
    return sorted(p for p in found if not _is_our_result(p, stems))


def _is_our_result(p: Path, stems: set[tuple[Path, str]]) -> bool:
    m = _OUR_OUTPUT.match(p.stem)
    if not m:
        return False
    if (p.parent, m["source"]) in stems:
        return True
    # a greedy-stem reading: NAME_part_x4 from NAME_part.png
    whole = p.stem[: p.stem.rfind("_x")]
    return (p.parent, whole) in stems
