"""Where the window writes files: each result's path, and free names for new files."""

from __future__ import annotations

from pathlib import Path

from .settings import GuiSettings

__all__ = ["output_path_for", "unique_path", "video_output_path_for"]


def unique_path(path: Path) -> Path:
    """``path``, or ``NAME-2.ext``, ``NAME-3.ext`` ... when it exists."""
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    return path


def output_path_for(src: Path, s: GuiSettings) -> Path:
    """Where ``src``'s result goes: the core's default name, in ``s.output_dir`` or beside the
    input; a free name unless overwriting was asked for."""
    from upscaler_edge.pipeline import default_output_path

    default = default_output_path(src, s.scale, s.format)
    folder = Path(s.output_dir) if s.output_dir else default.parent
    dst = folder / default.name
    return dst if s.overwrite else unique_path(dst)


def video_output_path_for(src: Path, s: GuiSettings) -> Path:
    """Where the video ``src``'s result goes: ``NAME_xS.ext`` in the input's container (as
    ``default_video_output`` names it), in ``s.output_dir`` or beside the input; a free name
    unless overwriting was asked for. A cancelled job leaves no output, so running it again
    gets the same name and resumes from the segments kept beside it."""
    from .video import video_output_name

    folder = Path(s.output_dir) if s.output_dir else src.parent
    dst = folder / video_output_name(src, s.scale)
    return dst if s.overwrite else unique_path(dst)
