"""Which inputs are videos, told by content (the first bytes), and which suffixes name video
containers. No PyAV here: the CLI sorts its inputs with this module even where the ``video``
extra is not installed, so it can say what to install instead of "unsupported image".
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = [
    "CONTAINER_SUFFIX",
    "OUTPUT_CONTAINERS",
    "container_for_suffix",
    "is_animated_image",
    "sniff",
]

#: Output containers we write, as FFmpeg names them, and the suffix of their default name.
CONTAINER_SUFFIX: dict[str, str] = {"mp4": "mp4", "mov": "mov", "matroska": "mkv", "webm": "webm"}
OUTPUT_CONTAINERS: tuple[str, ...] = tuple(CONTAINER_SUFFIX)

_SUFFIX_CONTAINER: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
}

# ISO BMFF brands of still images (AVIF, HEIF): ftyp files that the image path reads
_IMAGE_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"BM",
    b"II*\x00",  # TIFF
    b"MM\x00*",
)


def container_for_suffix(path: str | os.PathLike[str] | None) -> str | None:
    """The output container a file name asks for (``x.mkv`` -> ``matroska``), else None."""
    if path is None:
        return None
    return _SUFFIX_CONTAINER.get(Path(path).suffix.lower())


def sniff(path: str | os.PathLike[str]) -> str | None:
    """What the file's first bytes say: ``"video"`` (a video container: MP4/MOV, Matroska/
    WebM, AVI, FLV, MPEG-TS/PS, ASF, Ogg), ``"animation"`` (GIF or WebP, which may hold
    several frames), ``"image"`` (a still image format), or None (unknown: FFmpeg may still
    open it). Unreadable files are None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(400)
    except OSError:
        return None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "animation"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "animation"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "video"
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, WebM
        return "video"
    if head[:3] == b"FLV" or head[:4] == b"OggS":
        return "video"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):  # MPEG program stream
        return "video"
    if head[:4] == b"\x30\x26\xb2\x75":  # ASF / WMV
        return "video"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS
        return "video"
    if head.startswith(_IMAGE_MAGIC):
        return "image"
    return None


def is_animated_image(path: str | os.PathLike[str]) -> bool:
    """True for a GIF or WebP with more than one frame (Pillow reads the frame count)."""
    from PIL import Image

    with contextlib.suppress(Exception), Image.open(path) as im:
        return int(getattr(im, "n_frames", 1)) > 1
    return False
