"""Property: whatever bytes come in, decoding returns a Picture or raises InputError.

Never ``struct.error``, ``zlib.error``, ``KeyError``, ``MemoryError`` from a lying header or
anything else. Seeds are valid files of every supported input variant (corpus.samples),
mutated by bit flips, truncation, inserted and deleted byte runs and huge header fields.
``FUZZ_EXAMPLES`` in the environment raises the example count for a longer hunt.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from corpus import samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upscaler_edge.errors import InputError
from upscaler_edge.imageio import Picture, probe, read_picture

SEEDS = samples()
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
CAP = 2_000_000  # lying headers may claim up to this many pixels: keeps each try fast
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_HUGE = [
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x01\x00",
    b"\x00\x01\x00\x00",
]


_SIGNATURES = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"qoif",
    b"DDS ",
    b"8BPS",
    b"\x00\x00\x01\x00",
    b"P6\n",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",
    b"\x00\x00\x00\x18ftypavif",
]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        size = len(out)
        # half the edits land in the first 64 bytes, where the headers are
        pos = draw(st.one_of(st.integers(0, min(size, 64) - 1), st.integers(0, size - 1)))
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "huge"]))
        if kind == "flip":
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            out[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 64))]
        else:
            out[pos : pos + 4] = draw(st.sampled_from(_HUGE))
    return bytes(out)


def _decode_or_refuse(data: bytes, all_frames: bool, max_pixels: int = CAP) -> None:
    try:
        pic = read_picture(data, max_pixels=max_pixels, all_frames=all_frames)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(pic, Picture) and pic.frames
        for frame in pic.frames:
            assert frame.rgb.ndim == 3 and frame.rgb.shape[2] == 3
            assert frame.rgb.dtype in (np.uint8, np.uint16)
            assert frame.alpha is None or frame.alpha.shape == frame.rgb.shape[:2]
    try:
        fmt, width, height = probe(data, max_pixels=max_pixels)
    except InputError:
        pass
    else:
        assert isinstance(fmt, str) and width * height <= max_pixels


def test_seeds_decode() -> None:
    """Every seed is valid: the fuzzing starts from files that decode."""
    assert len(SEEDS) >= 25
    for name, data in SEEDS.items():
        pic = read_picture(data, all_frames=True)
        assert pic.width > 0, name


@pytest.mark.parametrize("seed", sorted(SEEDS))
@FUZZ
@given(data=st.data(), all_frames=st.booleans())
def test_mutated_files_decode_or_refuse(seed: str, data: st.DataObject, all_frames: bool) -> None:
    _decode_or_refuse(data.draw(mutated(SEEDS[seed])), all_frames)


@settings(max_examples=EXAMPLES * 4, deadline=None)
@given(blob=st.binary(min_size=0, max_size=512), all_frames=st.booleans())
def test_arbitrary_bytes_decode_or_refuse(blob: bytes, all_frames: bool) -> None:
    _decode_or_refuse(blob, all_frames, max_pixels=50_000_000)


@FUZZ
@given(
    magic=st.sampled_from(_SIGNATURES),
    rest=st.binary(max_size=256),
    all_frames=st.booleans(),
)
def test_right_signature_wrong_body(magic: bytes, rest: bytes, all_frames: bool) -> None:
    _decode_or_refuse(magic + rest, all_frames)
