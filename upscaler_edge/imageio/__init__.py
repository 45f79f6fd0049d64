"""Image I/O: bytes or a path <-> a decoded :class:`Picture`, and the atomic save back to disk.

``decode`` reads (by content, header checked before decoding), ``encode`` writes (format from
the suffix or asked for, metadata, atomic rename), ``png`` is our own 16-bit and streaming PNG
codec, ``tiff`` our 16-bit TIFF writer, ``atomic`` the temp-file-then-rename write and its
leftovers, ``metadata`` EXIF/ICC/DPI, ``quiet`` keeps Pillow and its C libraries off the
terminal and under our pixel limit, ``picture`` the data types. Everything a caller needs is
re-exported here.
"""

from __future__ import annotations

from .atomic import leftovers, remove_leftovers
from .decode import SUPPORTED_INPUTS, probe, read_picture
from .encode import (
    FORMAT_SUFFIX,
    OUTPUT_FORMATS,
    StreamedWrite,
    check_output_format,
    encode_picture,
    format_from_suffix,
    stream_picture,
    write_picture,
)
from .picture import DEFAULT_MAX_PIXELS, Frame, Picture, Source

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMAT_SUFFIX",
    "OUTPUT_FORMATS",
    "SUPPORTED_INPUTS",
    "Frame",
    "Picture",
    "Source",
    "StreamedWrite",
    "check_output_format",
    "encode_picture",
    "format_from_suffix",
    "leftovers",
    "probe",
    "read_picture",
    "remove_leftovers",
    "stream_picture",
    "write_picture",
]
