"""Tests for upscaler_edge.imageio: decoding by content, limits, metadata, 16-bit, atomic save.

Every input is made here, in tmp_path or in memory, with Pillow/numpy; images stay tiny.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageCms, ImageFile, ImageOps, features

from upscaler_edge import errors, imageio
from upscaler_edge.imageio import (
    SUPPORTED_INPUTS,
    Frame,
    Picture,
    decode,
    encode_picture,
    metadata,
    probe,
    read_picture,
    write_picture,
)
from upscaler_edge.naming import IMAGE_SUFFIXES

SUPPORTED_LINE = (
    "not a supported image "
    "(png, jpeg, webp, bmp, tiff, gif, avif, heic, tga, dds, pnm, qoi, ico, jpeg2000, psd)"
)


# --------------------------------------------------------------------------------------------
# helpers


def png_bytes(im: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **params)
    return buf.getvalue()


def encoded(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def chunk(name: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))


def png_header_only(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """Signature + IHDR (correct CRC) + an empty IDAT + IEND: a header that claims a size."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def bmp_header_only(width: int, height: int) -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib), 0, 0, 14 + len(dib)) + dib


def interlaced_png16(arr: np.ndarray) -> bytes:
    """Adam7 16-bit PNG written by hand (filter 0), independent of the module's encoder."""
    height, width, channels = arr.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b""
    for x0, y0, dx, dy in (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ):
        sub = arr[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.astype(">u2").tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    exif[0x010F] = "upscaler-edge test"  # Make: something besides orientation to carry
    return exif.tobytes()


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_icc() -> bytes:
    """A tiny but valid ICC v2 CMYK printer profile (lut8 A2B0 to Lab), built by hand."""
    grid = 2
    clut = bytearray()
    for c in range(grid):  # first input channel varies slowest
        for m in range(grid):
            for y in range(grid):
                for k in range(grid):
                    ink = (c + m + y) / 3
                    lightness = 255 * (1 - k) * (1 - 0.7 * ink)
                    a = 128 + 50 * (m - c)
                    b = 128 + 50 * (y - (c + m) / 2)
                    clut += bytes(round(v) for v in (lightness, a, b))
    ramp = bytes(range(256))
    identity = b"".join(struct.pack(">i", v) for v in (65536, 0, 0, 0, 65536, 0, 0, 0, 65536))
    a2b0 = (
        b"mft1" + b"\0" * 4 + bytes([4, 3, grid, 0]) + identity + ramp * 4 + bytes(clut) + ramp * 3
    )
    desc_text = b"test CMYK\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(desc_text)) + desc_text
    desc += b"\0" * 8 + b"\0" * 3 + b"\0" * 67  # empty Unicode and ScriptCode parts
    wtpt = b"XYZ " + b"\0" * 4 + struct.pack(">iii", 63190, 65536, 54061)
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for name, body in tags:
        table += name + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"prtr", b"CMYK", b"Lab ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
    header += struct.pack(">iii", 63190, 65536, 54061) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def rgb_picture(rgb: np.ndarray, alpha: np.ndarray | None = None, **kw: object) -> Picture:
    return Picture([Frame(rgb, alpha)], "PNG", **kw)  # type: ignore[arg-type]


def gradient(h: int = 6, w: int = 8) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 30, y * 40, (x + y) * 10], axis=2).astype(np.uint8)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# constants


def test_public_constants() -> None:
    assert SUPPORTED_INPUTS == (
        "png",
        "jpeg",
        "webp",
        "bmp",
        "tiff",
        "gif",
        "avif",
        "heic",
        "tga",
        "dds",
        "pnm",
        "qoi",
        "ico",
        "jpeg2000",
        "psd",
    )
    assert {
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
    } == set(IMAGE_SUFFIXES)


def test_pillow_global_settings_untouched() -> None:
    limit = Image.MAX_IMAGE_PIXELS
    read_picture(png_bytes(Image.new("RGB", (3, 3))))
    with pytest.raises(errors.ImageTooLargeError):
        read_picture(bmp_header_only(10000, 10000))
    assert limit == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_pipe_source(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    data = png_bytes(Image.fromarray(gradient()))

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    import threading

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        np.testing.assert_array_equal(read_picture(fifo).frames[0].rgb, gradient())
    finally:
        writer.join(5)


# --------------------------------------------------------------------------------------------
# bad input


def test_empty_file(tmp_path: Path) -> None:
    src = tmp_path / "empty.png"
    src.write_bytes(b"")
    with pytest.raises(errors.InputError, match="empty file"):
        read_picture(src)
    with pytest.raises(errors.InputError, match="empty file"):
        probe(src)
    with pytest.raises(errors.InputError, match="empty file"):
        read_picture(b"")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.InputError, match=r"^no such file: .*nothing\.png$"):
        read_picture(tmp_path / "nothing.png")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(errors.InputError, match="not a file"):
        read_picture(tmp_path)


def test_text_renamed_png(tmp_path: Path) -> None:
    src = tmp_path / "notes.png"
    src.write_text("just some words, not pixels\n" * 5)
    for call in (read_picture, probe):
        with pytest.raises(errors.InputError) as info:
            call(src)
        assert str(info.value) == SUPPORTED_LINE
        assert "\n" not in str(info.value)


def test_format_outside_allowlist_refused() -> None:
    # Pillow reads PCX, but it is not on our list.
    data = encoded(Image.new("RGB", (4, 4), "red"), "PCX")
    assert Image.open(io.BytesIO(data)).format == "PCX"
    with pytest.raises(errors.InputError, match="not a supported image"):
        read_picture(data)


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encoded(noisy, "JPEG", quality=90)
    src = tmp_path / "cut.jpg"
    src.write_bytes(data[: len(data) // 2])
    assert probe(src) == ("JPEG", 64, 64)  # the header is intact
    with pytest.raises(errors.InputError) as info:
        read_picture(src)
    message = str(info.value)
    assert "truncated" in message and "JPEG" in message and "\n" not in message


def test_truncated_png() -> None:
    data = png_bytes(Image.fromarray(gradient(32, 32)))
    with pytest.raises(errors.InputError, match=r"truncated|damaged"):
        read_picture(data[:-40])


def test_huge_png_header_refused_before_decoding(tmp_path: Path) -> None:
    src = tmp_path / "bomb.png"
    src.write_bytes(png_header_only(60000, 60000))
    expected = "image is 60000x60000 = 3600.0 MP, over the 50.0 MP limit"
    with pytest.raises(errors.ImageTooLargeError) as info:
        probe(src)
    assert str(info.value) == expected
    with pytest.raises(errors.ImageTooLargeError) as info:
        read_picture(src)
    assert str(info.value) == expected
    assert isinstance(info.value, errors.InputError)


def test_own_cap_is_configurable() -> None:
    data = png_bytes(Image.new("RGB", (20, 10)))
    with pytest.raises(errors.ImageTooLargeError, match=r"20x10 = 0\.0 MP"):
        read_picture(data, max_pixels=199)
    assert read_picture(data, max_pixels=200).width == 20


def test_our_cap_is_the_only_limit_above_pillows() -> None:
    """--max-megapixels above Pillow's 89.5 MP bomb limit: only our cap counts."""
    limit = Image.MAX_IMAGE_PIXELS
    header = png_header_only(10000, 10000)  # claims 100 MP, holds no pixels
    assert probe(header, max_pixels=120_000_000) == ("PNG", 10000, 10000)
    with pytest.raises(errors.InputError) as info:
        read_picture(header, max_pixels=120_000_000)
    assert not isinstance(info.value, errors.ImageTooLargeError)
    assert "bomb" not in str(info.value) and "limit" not in str(info.value)
    assert "truncated" in str(info.value) or "damaged" in str(info.value)
    # over twice Pillow's limit, where Pillow itself raises instead of warning
    assert probe(bmp_header_only(20000, 20000), max_pixels=500_000_000) == ("BMP", 20000, 20000)
    with pytest.raises(errors.ImageTooLargeError, match=r"400\.0 MP, over the 399\.0 MP limit"):
        probe(bmp_header_only(20000, 20000), max_pixels=399_000_000)
    assert limit == Image.MAX_IMAGE_PIXELS


def test_default_cap_still_refuses_before_pillow() -> None:
    with pytest.raises(errors.ImageTooLargeError, match=r"100\.0 MP, over the 50\.0 MP limit"):
        read_picture(bmp_header_only(10000, 10000))


def test_pillow_bomb_check_unchanged_outside_our_calls() -> None:
    read_picture(png_bytes(Image.new("RGB", (3, 3))), max_pixels=10**12)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bmp_header_only(20000, 20000)))


def test_bomb_check_is_per_thread() -> None:
    """Another thread opening a file while we decode still gets Pillow's own check."""
    import threading

    seen: list[BaseException] = []
    entered, release = threading.Event(), threading.Event()
    original = decode._to_arrays

    def slow_to_arrays(*args: object, **kw: object) -> object:
        entered.set()
        release.wait(5)
        return original(*args, **kw)  # type: ignore[arg-type]

    def other() -> None:
        entered.wait(5)
        try:
            Image.open(io.BytesIO(bmp_header_only(20000, 20000)))
        except BaseException as exc:
            seen.append(exc)
        finally:
            release.set()

    decode._to_arrays = slow_to_arrays  # type: ignore[assignment]
    thread = threading.Thread(target=other)
    thread.start()
    try:
        read_picture(png_bytes(Image.new("RGB", (3, 3))), max_pixels=10**12)
    finally:
        decode._to_arrays = original  # type: ignore[assignment]
        release.set()
        thread.join(5)
    assert len(seen) == 1 and isinstance(seen[0], Image.DecompressionBombError)


def test_animation_total_pixels_capped() -> None:
    frames = [Image.new("RGB", (10, 10), (i * 40, 0, 0)) for i in range(4)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert len(read_picture(data, max_pixels=400, all_frames=True).frames) == 4
    with pytest.raises(errors.ImageTooLargeError, match="4 frames"):
        read_picture(data, max_pixels=399, all_frames=True)


# --------------------------------------------------------------------------------------------
# formats by content


def test_probe_reads_header_only(monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_bytes(Image.fromarray(gradient(7, 9)))

    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("probe decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert probe(data) == ("PNG", 9, 7)
    with pytest.raises(errors.InputError, match="probe decoded pixels"):  # the trap works
        read_picture(data)


def test_tiff_named_jpg_is_read_as_tiff(tmp_path: Path) -> None:
    src = tmp_path / "scan.jpg"
    Image.fromarray(gradient()).save(src, "TIFF")
    assert probe(src) == ("TIFF", 8, 6)
    pic = read_picture(src)
    assert pic.source_format == "TIFF"
    np.testing.assert_array_equal(pic.frames[0].rgb, gradient())


@pytest.mark.parametrize(
    ("fmt", "params", "lossless"),
    [
        ("PNG", {}, True),
        ("BMP", {}, True),
        ("TIFF", {}, True),
        ("WEBP", {"lossless": True}, True),
        ("JPEG", {"quality": 95}, False),
        ("GIF", {}, False),
    ],
)
def test_reads_each_format(fmt: str, params: dict[str, object], lossless: bool) -> None:
    data = encoded(Image.fromarray(gradient()), fmt, **params)
    pic = read_picture(data)
    assert pic.source_format == fmt
    assert (pic.width, pic.height) == (8, 6)
    assert pic.frames[0].rgb.shape == (6, 8, 3) and pic.frames[0].rgb.dtype == np.uint8
    if lossless:
        np.testing.assert_array_equal(pic.frames[0].rgb, gradient())


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_reads_avif() -> None:
    data = encoded(Image.new("RGB", (16, 16), (200, 30, 30)), "AVIF", quality=90)
    pic = read_picture(data)
    assert pic.source_format == "AVIF" and (pic.width, pic.height) == (16, 16)
    assert abs(int(pic.frames[0].rgb[8, 8, 0]) - 200) < 12


def _heic_bytes() -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    try:
        heif = pillow_heif.from_pillow(Image.new("RGB", (16, 16), (30, 200, 30)))
        buf = io.BytesIO()
        heif.save(buf, format="HEIF", quality=90)
    except Exception as exc:
        pytest.skip(f"cannot encode HEIC here: {exc}")
    return buf.getvalue()


def test_reads_heic_with_pillow_heif() -> None:
    pic = read_picture(_heic_bytes())
    assert pic.source_format == "HEIF" and (pic.width, pic.height) == (16, 16)
    assert abs(int(pic.frames[0].rgb[8, 8, 1]) - 200) < 12


def test_heic_without_pillow_heif_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _heic_bytes()
    monkeypatch.setattr(decode, "_allowed_formats", lambda: list(decode._BASE_FORMATS))
    with pytest.raises(errors.InputError, match="pillow-heif"):
        read_picture(data)


def test_works_without_pillow_heif(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import now fails
    assert decode._heif_available.__wrapped__() is False
    monkeypatch.setattr(decode, "_heif_available", lambda: False)
    assert "HEIF" not in decode._allowed_formats()
    assert read_picture(png_bytes(Image.fromarray(gradient()))).source_format == "PNG"


def test_mpo_counts_as_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    im = Image.new("RGB", (4, 4))
    im.format = "MPO"
    assert decode._format_name(im) == "JPEG"


# --------------------------------------------------------------------------------------------
# orientation, profiles, dpi


def test_exif_orientation_6_rotates_and_resets(tmp_path: Path) -> None:
    arr = np.zeros((2, 4, 3), np.uint8)  # 4 wide, 2 high
    arr[0, 0] = (255, 0, 0)  # red in the stored top-left corner
    data = png_bytes(Image.fromarray(arr), exif=exif_with_orientation(6))
    pic = read_picture(data)
    rgb = pic.frames[0].rgb
    assert rgb.shape == (4, 2, 3)  # turned 90 degrees clockwise: now 2 wide, 4 high
    assert tuple(rgb[0, 1]) == (255, 0, 0)  # top-left went to the top-right
    assert pic.exif is not None
    carried = Image.Exif()
    carried.load(pic.exif)
    assert carried[0x0112] == 1 and carried[0x010F] == "upscaler-edge test"
    out = write_picture(pic, tmp_path / "turned.jpg")
    with Image.open(out) as back:
        assert back.getexif()[0x0112] == 1
        assert back.size == (2, 4)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    arr = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    im = Image.fromarray(arr, "RGBA")
    data = png_bytes(im, exif=exif_with_orientation(orientation))
    pic = read_picture(data)
    with Image.open(io.BytesIO(data)) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened))
    np.testing.assert_array_equal(pic.frames[0].rgb, expected[..., :3])
    np.testing.assert_array_equal(pic.frames[0].alpha, expected[..., 3])


def test_exif_orientation_on_jpeg() -> None:
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:8, :8] = (250, 250, 250)  # a white block in the stored top-left
    data = encoded(Image.fromarray(arr), "JPEG", quality=95, exif=exif_with_orientation(8))
    rgb = read_picture(data).frames[0].rgb
    assert rgb.shape == (32, 16, 3)  # 8 = turned 90 degrees counter-clockwise
    assert rgb[-4, 4].mean() > 200 and rgb[4, 4].mean() < 50


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_icc_profile_round_trips_byte_equal(tmp_path: Path, fmt: str) -> None:
    icc = srgb_icc()
    data = png_bytes(Image.fromarray(gradient()), icc_profile=icc)
    pic = read_picture(data)
    assert pic.icc_profile == icc
    out = write_picture(pic, tmp_path / f"out.{fmt}")
    with Image.open(out) as back:
        assert back.info.get("icc_profile") == icc


def test_cmyk_jpeg_with_profile_goes_through_srgb() -> None:
    profile = cmyk_icc()
    cmyk = np.zeros((8, 8, 4), np.uint8)
    cmyk[:, 4:, 3] = 255  # left half: bare paper, right half: full black ink
    data = encoded(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100, icc_profile=profile)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "CMYK" and raw.info["icc_profile"] == profile
    pic = read_picture(data)
    rgb = pic.frames[0].rgb
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert rgb[4, 1].min() > 220 and rgb[4, 6].max() < 40
    assert pic.icc_profile == metadata.srgb_bytes()
    assert pic.icc_profile[16:20] == b"RGB "
    out, _ = encode_picture(pic, "jpg")
    with Image.open(io.BytesIO(out)) as back:
        assert back.mode == "RGB" and back.info["icc_profile"][16:20] == b"RGB "


def test_cmyk_jpeg_without_profile() -> None:
    data = encoded(Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "JPEG", quality=100)
    pic = read_picture(data)
    assert pic.icc_profile is None and not pic.grayscale
    assert pic.frames[0].rgb.min() > 240


def test_cmyk_profile_never_carried_to_rgb() -> None:
    pic = rgb_picture(gradient(), icc_profile=cmyk_icc())
    out, _ = encode_picture(pic, "png")
    with Image.open(io.BytesIO(out)) as back:
        assert "icc_profile" not in back.info


def test_dpi_read_and_written(tmp_path: Path) -> None:
    data = encoded(Image.fromarray(gradient()), "JPEG", dpi=(300, 300))
    pic = read_picture(data)
    assert pic.dpi is not None and pic.dpi == pytest.approx((300, 300), abs=0.5)
    pic.dpi = (600.0, 600.0)  # what the pipeline does after a 2x upscale
    for fmt in ("png", "jpg"):
        out = write_picture(pic, tmp_path / f"dpi.{fmt}")
        with Image.open(out) as back:
            assert back.info["dpi"] == pytest.approx((600, 600), abs=0.5)


# --------------------------------------------------------------------------------------------
# modes


def test_rgba_alpha_preserved(tmp_path: Path) -> None:
    rgba = np.dstack([gradient(), (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)])
    pic = read_picture(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert pic.frames[0].alpha is not None
    np.testing.assert_array_equal(pic.frames[0].alpha, rgba[..., 3])
    out = write_picture(pic, tmp_path / "alpha.png")
    back = read_picture(out)
    np.testing.assert_array_equal(back.frames[0].rgb, rgba[..., :3])
    np.testing.assert_array_equal(back.frames[0].alpha, rgba[..., 3])


def test_palette_with_transparency_gives_alpha() -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    data = png_bytes(im, transparency=0)
    pic = read_picture(data)
    frame = pic.frames[0]
    assert frame.alpha is not None and not pic.grayscale
    assert frame.alpha[0, 0] == 0 and frame.alpha[1, 1] == 255
    assert tuple(frame.rgb[1, 1]) == (255, 0, 0)


def test_palette_without_transparency_is_rgb() -> None:
    data = encoded(Image.fromarray(gradient()).convert("P"), "PNG")
    frame = read_picture(data).frames[0]
    assert frame.alpha is None and frame.rgb.shape == (6, 8, 3)


def test_gray_is_flagged_and_saved_as_l(tmp_path: Path) -> None:
    gray = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)
    pic = read_picture(png_bytes(Image.fromarray(gray, "L")))
    assert pic.grayscale and pic.frames[0].alpha is None
    assert pic.frames[0].rgb.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pic.frames[0].rgb[..., channel], gray)
    for fmt in ("png", "jpg"):
        out = write_picture(pic, tmp_path / f"gray.{fmt}")
        with Image.open(out) as back:
            assert back.mode == "L"
            if fmt == "png":
                np.testing.assert_array_equal(np.asarray(back), gray)


def test_gray_alpha_saved_as_la(tmp_path: Path) -> None:
    la = np.dstack([np.full((4, 4), 90, np.uint8), np.full((4, 4), 128, np.uint8)])
    pic = read_picture(png_bytes(Image.fromarray(la, "LA")))
    assert pic.grayscale and pic.frames[0].alpha is not None
    out = write_picture(pic, tmp_path / "la.png")
    with Image.open(out) as back:
        assert back.mode == "LA"
        np.testing.assert_array_equal(np.asarray(back), la)


def test_one_bit_becomes_gray() -> None:
    im = Image.new("1", (8, 8), 0)
    im.putpixel((3, 3), 1)
    pic = read_picture(png_bytes(im))
    assert pic.grayscale and pic.frames[0].rgb.dtype == np.uint8
    assert tuple(pic.frames[0].rgb[3, 3]) == (255, 255, 255)


# --------------------------------------------------------------------------------------------
# 16-bit PNG


def _ramp16(h: int, w: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(h * w * channels)
    y, x = np.mgrid[0:h, 0:w]
    smooth = ((x * 4099 + y * 257) % 65536).astype(np.uint16)
    planes = [smooth + np.uint16(i * 9001) for i in range(channels)]
    arr = np.stack(planes, axis=2)
    arr[::3] = rng.integers(0, 65536, arr[::3].shape, dtype=np.uint16)
    arr[0, 0] = 65535
    arr[-1, -1] = 1  # values that 8 bits cannot hold
    return arr


def test_png16_gray_round_trip(tmp_path: Path) -> None:
    gray = _ramp16(9, 11, 1)[..., 0]
    src = tmp_path / "g16.png"
    Image.fromarray(gray).save(src)  # Pillow writes I;16
    pic = read_picture(src)
    assert pic.grayscale and pic.frames[0].rgb.dtype == np.uint16
    np.testing.assert_array_equal(pic.frames[0].rgb[..., 1], gray)
    out = write_picture(pic, tmp_path / "g16_out.png")
    assert out.read_bytes()[24:26] == b"\x10\x00"  # 16-bit gray
    np.testing.assert_array_equal(read_picture(out).frames[0].rgb[..., 0], gray)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_png16_colour_round_trip(tmp_path: Path, channels: int) -> None:
    arr = _ramp16(13, 17, channels)
    gray = channels == 2
    rgb = np.repeat(arr[..., :1], 3, axis=2) if gray else arr[..., :3]
    alpha = arr[..., -1] if channels in (2, 4) else None
    pic = Picture(
        [Frame(rgb.copy(), None if alpha is None else alpha.copy())],
        "PNG",
        gray,
        icc_profile=None if gray else srgb_icc(),
        dpi=(144.0, 144.0),
    )
    out = write_picture(pic, tmp_path / "c16.png")
    head = out.read_bytes()
    assert head[24] == 16 and head[25] == {2: 4, 3: 2, 4: 6}[channels]
    back = read_picture(out)
    assert back.frames[0].rgb.dtype == np.uint16 and back.grayscale == gray
    np.testing.assert_array_equal(back.frames[0].rgb, rgb)
    if alpha is None:
        assert back.frames[0].alpha is None
    else:
        np.testing.assert_array_equal(back.frames[0].alpha, alpha)
    assert back.dpi == pytest.approx((144, 144), abs=0.5)
    assert back.icc_profile == pic.icc_profile
    with Image.open(out) as other_reader:  # Pillow agrees on the high bytes
        assert other_reader.size == (17, 13)
        if channels == 3:
            np.testing.assert_array_equal(np.asarray(other_reader), (rgb >> 8).astype(np.uint8))


def test_png16_from_a_real_encoder() -> None:
    cv2 = pytest.importorskip("cv2")
    arr = _ramp16(23, 31, 4)
    for channels in (3, 4):
        bgr = arr[..., :channels][..., [2, 1, 0, 3][:channels]]
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
        assert ok
        frame = read_picture(buf.tobytes()).frames[0]
        np.testing.assert_array_equal(frame.rgb, arr[..., :3])
        if channels == 4:
            np.testing.assert_array_equal(frame.alpha, arr[..., 3])


def test_png16_adam7_interlaced() -> None:
    arr = _ramp16(11, 13, 3)
    pic = read_picture(interlaced_png16(arr))
    np.testing.assert_array_equal(pic.frames[0].rgb, arr)
    rgba = _ramp16(1, 3, 4)  # smaller than one Adam7 block: empty passes
    frame = read_picture(interlaced_png16(rgba)).frames[0]
    np.testing.assert_array_equal(frame.rgb, rgba[..., :3])
    np.testing.assert_array_equal(frame.alpha, rgba[..., 3])


def test_png16_exif_orientation() -> None:
    arr = _ramp16(3, 5, 3)
    png = interlaced_png16(arr)
    exif = exif_with_orientation(6)[6:]  # eXIf holds the TIFF data without "Exif\0\0"
    png = png[:-12] + chunk(b"eXIf", exif) + png[-12:]
    pic = read_picture(png)
    np.testing.assert_array_equal(pic.frames[0].rgb, np.rot90(arr, -1))
    assert pic.exif is not None
    carried = Image.Exif()
    carried.load(pic.exif)
    assert carried[0x0112] == 1


def test_png16_damage_is_an_input_error() -> None:
    good, _ = encode_picture(rgb_picture(_ramp16(8, 8, 3)))
    with pytest.raises(errors.InputError, match=r"truncated|damaged"):
        read_picture(good[:-30])
    idat = good.rindex(b"IDAT")
    broken = bytearray(good)
    broken[idat + 10] ^= 0xFF
    with pytest.raises(errors.InputError, match="checksum"):
        read_picture(bytes(broken))


def test_png16_to_lossy_is_8_bit() -> None:
    pic = rgb_picture(np.full((4, 4, 3), 65535, np.uint16))
    data, used = encode_picture(pic, "jpeg")
    assert used == "jpg"
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == "RGB" and np.asarray(back).min() > 250


# --------------------------------------------------------------------------------------------
# animation


def _gif(tmp_path: Path) -> Path:
    frames = [Image.new("RGB", (6, 4), colour) for colour in ("red", "lime", "blue")]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    return src


def test_animated_gif_first_frame_by_default(tmp_path: Path) -> None:
    pic = read_picture(_gif(tmp_path))
    assert len(pic.frames) == 1 and pic.frames[0].duration_ms is None
    assert pic.source_format == "GIF"
    assert tuple(pic.frames[0].rgb[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["webp", "png", "jpg"])
def test_animated_gif_all_frames_round_trip(tmp_path: Path, fmt: str) -> None:
    pic = read_picture(_gif(tmp_path), all_frames=True)
    assert [f.duration_ms for f in pic.frames] == [100, 200, 300]
    assert pic.loop == 0
    assert [tuple(f.rgb[0, 0]) for f in pic.frames] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    out = write_picture(pic, tmp_path / f"anim_out.{fmt}")
    assert out.suffix == (".png" if fmt == "jpg" else f".{fmt}")
    back = read_picture(out, all_frames=True)
    assert len(back.frames) == 3
    assert [f.duration_ms for f in back.frames] == [100, 200, 300]
    assert back.loop == 0
    for ours, theirs in zip(pic.frames, back.frames, strict=True):
        assert np.abs(ours.rgb.astype(int) - theirs.rgb.astype(int)).max() < 40


def test_animated_transparency_kept(tmp_path: Path) -> None:
    frames = []
    for i in range(2):
        arr = np.zeros((4, 4, 4), np.uint8)
        arr[..., 0] = 100 + i * 100
        arr[..., 3] = 255
        arr[0, 0, 3] = 0
        frames.append(Image.fromarray(arr, "RGBA"))
    data = encoded(
        frames[0],
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=80,
        lossless=True,
        loop=3,
    )
    pic = read_picture(data, all_frames=True)
    assert pic.loop == 3 and len(pic.frames) == 2
    assert all(f.alpha is not None and f.alpha[0, 0] == 0 for f in pic.frames)
    back = read_picture(write_picture(pic, tmp_path / "a.png"), all_frames=True)
    assert back.loop == 3
    assert [None if f.alpha is None else int(f.alpha[0, 0]) for f in back.frames] == [0, 0]


# --------------------------------------------------------------------------------------------
# encode / write


def test_encode_unknown_format_and_quality() -> None:
    pic = rgb_picture(gradient())
    with pytest.raises(errors.UsageError, match="unknown output format"):
        encode_picture(pic, "xcf")
    with pytest.raises(errors.UsageError, match="quality"):
        encode_picture(pic, "jpg", quality=0)
    with pytest.raises(errors.UsageError, match="quality"):
        encode_picture(pic, "jpg", quality="high")  # type: ignore[arg-type]
    assert encode_picture(pic, ".JPEG")[1] == "jpg"
    assert encode_picture(pic, "webp", quality=np.int64(80))[1] == "webp"


def test_encode_rejects_malformed_frames() -> None:
    with pytest.raises(errors.UsageError):
        encode_picture(rgb_picture(np.zeros((4, 4), np.uint8)))
    with pytest.raises(errors.UsageError):
        encode_picture(rgb_picture(np.zeros((4, 4, 3), np.uint8), np.zeros((3, 3), np.uint8)))


def test_jpeg_quality_and_subsampling() -> None:
    rng = np.random.default_rng(3)
    pic = rgb_picture(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    high, _ = encode_picture(pic, "jpg", quality=95)
    low, _ = encode_picture(pic, "jpg", quality=30)
    assert len(low) < len(high)
    with Image.open(io.BytesIO(high)) as im:
        assert im.layer[0][1:3] == im.layer[1][1:3]  # 4:4:4, no chroma subsampling


def test_jpg_with_alpha_becomes_png(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    alpha = np.full((6, 8), 255, np.uint8)
    alpha[0, 0] = 10
    pic = rgb_picture(gradient(), alpha)
    with caplog.at_level(logging.WARNING, logger="upscaler_edge.imageio"):
        out = write_picture(pic, tmp_path / "sticker.jpg")
    assert out == tmp_path / "sticker.png"
    assert out.exists() and not (tmp_path / "sticker.jpg").exists()
    assert "has transparency; saving PNG instead of JPEG" in caplog.text
    with Image.open(out) as back:
        assert back.format == "PNG" and back.mode == "RGBA"


def test_opaque_alpha_can_be_jpeg(tmp_path: Path) -> None:
    pic = rgb_picture(gradient(), np.full((6, 8), 255, np.uint8))
    out = write_picture(pic, tmp_path / "opaque.jpg")
    assert out.suffix == ".jpg"
    with Image.open(out) as back:
        assert back.format == "JPEG"


def test_fmt_none_follows_suffix(tmp_path: Path) -> None:
    pic = rgb_picture(gradient())
    for name, pillow_name in (
        ("a.webp", "WEBP"),
        ("b.JPEG", "JPEG"),
        ("c.png", "PNG"),
        ("d.out", "PNG"),
    ):
        out = write_picture(pic, tmp_path / name)
        assert out == tmp_path / name
        with Image.open(out) as back:
            assert back.format == pillow_name


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    dst = tmp_path / "out.png"
    dst.write_bytes(b"precious")
    pic = rgb_picture(gradient())
    with pytest.raises(errors.OutputExistsError) as info:
        write_picture(pic, dst)
    assert str(info.value) == f"{dst} exists (use --overwrite)"
    assert dst.read_bytes() == b"precious"
    assert write_picture(pic, dst, overwrite=True) == dst
    np.testing.assert_array_equal(read_picture(dst).frames[0].rgb, gradient())
    assert no_temp_files(tmp_path)


def test_race_lost_at_link_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / "raced.png"

    def someone_else_wrote_it(src: object, target: object) -> None:
        raise FileExistsError(17, "File exists")

    monkeypatch.setattr(os, "link", someone_else_wrote_it)
    with pytest.raises(errors.OutputExistsError):
        write_picture(rgb_picture(gradient()), dst)
    assert no_temp_files(tmp_path) and not dst.exists()


def test_no_hard_links_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(src: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", unsupported)
    dst = write_picture(rgb_picture(gradient()), tmp_path / "fat.png")
    assert dst.exists() and no_temp_files(tmp_path)
    with pytest.raises(errors.OutputExistsError):
        write_picture(rgb_picture(gradient()), dst)


def test_failed_write_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_trouble(src: object, target: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", disk_trouble)
    dst = tmp_path / "x.png"
    with pytest.raises(errors.OutputError) as info:
        write_picture(rgb_picture(gradient()), dst, overwrite=True)
    assert str(info.value) == f"cannot write {dst}: Input/output error"
    assert not dst.exists() and list(tmp_path.iterdir()) == []


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(errors.OutputError, match=r"cannot write .*not a folder") as info:
        write_picture(rgb_picture(gradient()), blocker / "out.png")
    assert not isinstance(info.value, errors.OutputExistsError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_creates_parents_and_respects_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        dst = write_picture(rgb_picture(gradient()), tmp_path / "new" / "deeper" / "o.png")
    finally:
        os.umask(old)
    assert dst.exists()
    if os.name == "posix":
        assert dst.stat().st_mode & 0o777 == 0o640


def test_bytes_and_str_sources(tmp_path: Path) -> None:
    data = png_bytes(Image.fromarray(gradient()))
    src = tmp_path / "s.png"
    src.write_bytes(data)
    for source in (data, bytearray(data), memoryview(data), str(src), src):
        np.testing.assert_array_equal(read_picture(source).frames[0].rgb, gradient())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arr=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([3, 4])),
    )
)
def test_png_round_trip_property(arr: np.ndarray) -> None:
    alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
    pic = rgb_picture(np.ascontiguousarray(arr[..., :3]), alpha)
    data, used = encode_picture(pic, "png")
    assert used == "png"
    back = read_picture(data).frames[0]
    np.testing.assert_array_equal(back.rgb, arr[..., :3])
    if alpha is None:
        assert back.alpha is None
    else:
        np.testing.assert_array_equal(back.alpha, alpha)


@settings(max_examples=25, deadline=None)
@given(
    arr=hnp.arrays(
        np.uint16,
        st.tuples(st.integers(1, 7), st.integers(1, 7), st.sampled_from([3, 4])),
    )
)
def test_png16_round_trip_property(arr: np.ndarray) -> None:
    alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
    data, _ = encode_picture(rgb_picture(np.ascontiguousarray(arr[..., :3]), alpha))
    back = read_picture(data).frames[0]
    np.testing.assert_array_equal(back.rgb, arr[..., :3])
    if alpha is not None:
        np.testing.assert_array_equal(back.alpha, alpha)


def test_find_images_skips_hidden_files_and_our_own_results(tmp_path: Path) -> None:
    from upscaler_edge.naming import find_images

    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    for name in (
        "a.png",
        "a_x4.png",
        "a_x4-2.png",
        "b_x2.jpg",
        "c.JPG",
        ".d.png",
        "notes.txt",
        "sub/e.webp",
        "sub/.hidden/f.png",
    ):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == [
        "a.png",
        "b_x2.jpg",
        "c.JPG",
        "sub/e.webp",
    ]
    assert [p.name for p in find_images(tmp_path, recursive=False)] == [
        "a.png",
        "b_x2.jpg",
        "c.JPG",
    ]


# --------------------------------------------------------------------------------------------
# more input formats (issue 8): decode by content, right size, right pixels


def _rgb16x12() -> np.ndarray:
    y, x = np.mgrid[0:12, 0:16]
    return np.stack([x * 16, y * 20, 255 - x * 8], axis=2).astype(np.uint8)


def _close(got: np.ndarray, want: np.ndarray, tolerance: int) -> None:
    assert got.shape == want.shape
    assert int(np.abs(got.astype(int) - want.astype(int)).max()) <= tolerance


@pytest.mark.parametrize(
    ("fmt", "params", "tolerance", "source_format"),
    [
        ("TGA", {}, 0, "TGA"),
        ("TGA", {"compression": "tga_rle"}, 0, "TGA"),
        ("DDS", {}, 0, "DDS"),
        ("DDS", {"pixel_format": "DXT1"}, 64, "DDS"),
        ("PPM", {}, 0, "PPM"),
        ("QOI", {}, 0, "QOI"),
        ("JPEG2000", {}, 0, "JPEG2000"),
        ("JPEG2000", {"no_jp2": True}, 0, "JPEG2000"),
    ],
)
def test_reads_new_formats(
    fmt: str, params: dict[str, object], tolerance: int, source_format: str
) -> None:
    data = encoded(Image.fromarray(_rgb16x12()), fmt, **params)
    pic = read_picture(data)
    assert pic.source_format == source_format and (pic.width, pic.height) == (16, 12)
    _close(pic.frames[0].rgb, _rgb16x12(), tolerance)


def test_reads_tga_and_dds_alpha() -> None:
    rgba = np.dstack([_rgb16x12(), np.full((12, 16), 200, np.uint8)])
    rgba[0, 0, 3] = 0
    for fmt in ("TGA", "DDS", "QOI"):
        frame = read_picture(encoded(Image.fromarray(rgba, "RGBA"), fmt)).frames[0]
        assert frame.alpha is not None and frame.alpha[0, 0] == 0 and frame.alpha[5, 5] == 200
        np.testing.assert_array_equal(frame.rgb, rgba[..., :3])


def test_reads_pnm_family() -> None:
    from corpus import pnm_variants

    gray = np.asarray(Image.fromarray(_rgb16x12()).convert("L"))
    pgm = read_picture(encoded(Image.fromarray(gray), "PPM"))  # P5
    assert pgm.grayscale and pgm.source_format == "PPM"
    np.testing.assert_array_equal(pgm.frames[0].rgb[..., 0], gray)
    pbm = read_picture(encoded(Image.fromarray(gray > 128), "PPM"))  # P4
    assert set(np.unique(pbm.frames[0].rgb)) <= {0, 255}
    variants = pnm_variants()
    for name, data in variants.items():
        pic = read_picture(data)
        assert (pic.width, pic.height) == (10, 6), name
    ascii_ppm = read_picture(variants["p3_ascii.ppm"]).frames[0].rgb
    binary_ppm = read_picture(variants["p6_binary.pnm"]).frames[0].rgb
    np.testing.assert_array_equal(ascii_ppm, binary_ppm)
    sixteen = read_picture(variants["p5_16bit.pgm"])
    assert sixteen.frames[0].rgb.dtype == np.uint16 and sixteen.grayscale


def test_reads_ico_largest_size() -> None:
    big = Image.new("RGBA", (48, 48), (0, 0, 255, 255))
    data = encoded(big, "ICO", sizes=[(16, 16), (48, 48), (32, 32)])
    pic = read_picture(data)
    assert pic.source_format == "ICO" and (pic.width, pic.height) == (48, 48)
    assert tuple(pic.frames[0].rgb[24, 24]) == (0, 0, 255)


def test_reads_psd_composite() -> None:
    from corpus import psd

    rgb = _rgb16x12()
    for rle in (False, True):
        pic = read_picture(psd(rgb, 3, rle=rle))
        assert pic.source_format == "PSD"
        np.testing.assert_array_equal(pic.frames[0].rgb, rgb)
    gray = read_picture(psd(rgb[..., :1], 1))
    assert gray.grayscale and (gray.width, gray.height) == (16, 12)


def test_reads_mpo_first_picture() -> None:
    first = Image.fromarray(_rgb16x12())
    second = Image.new("RGB", (16, 12), "black")
    data = encoded(first, "MPO", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.format == "MPO" and raw.n_frames == 2
    pic = read_picture(data, all_frames=True)
    assert pic.source_format == "JPEG" and len(pic.frames) == 1
    _close(pic.frames[0].rgb, _rgb16x12(), 24)


def _three_frames() -> list[Image.Image]:
    return [Image.new("RGB", (8, 6), colour) for colour in ("red", "lime", "blue")]


def test_reads_apng_frames() -> None:
    frames = _three_frames()
    data = encoded(
        frames[0], "PNG", save_all=True, append_images=frames[1:], duration=[40, 80, 120]
    )
    pic = read_picture(data, all_frames=True)
    assert [f.duration_ms for f in pic.frames] == [40, 80, 120]
    assert [tuple(f.rgb[0, 0]) for f in pic.frames] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_reads_avif_sequence() -> None:
    frames = _three_frames()
    data = encoded(
        frames[0],
        "AVIF",
        save_all=True,
        append_images=frames[1:],
        duration=[50, 60, 70],
        quality=90,
    )
    pic = read_picture(data, all_frames=True)
    assert pic.source_format == "AVIF" and len(pic.frames) == 3
    assert [f.duration_ms for f in pic.frames] == [50, 60, 70]
    assert abs(int(pic.frames[2].rgb[3, 3, 2]) - 255) < 16


def test_new_suffixes_are_scanned(tmp_path: Path) -> None:
    from upscaler_edge.naming import find_images

    names = [f"a{s}" for s in (".tga", ".dds", ".pgm", ".qoi", ".ico", ".jp2", ".psd", ".mpo")]
    for name in [*names, "b.apng", "c.avifs", "d.jpe", "e.pbm", "f.ppm", "g.pnm", "h.j2k"]:
        (tmp_path / name).write_bytes(b"x")
    assert len(find_images(tmp_path)) == len(names) + 7


# --------------------------------------------------------------------------------------------
# every failure is one InputError / OutputError line


@pytest.mark.parametrize(
    "error",
    [
        struct.error("unpack requires a buffer of 4 bytes"),
        zlib.error("Error -3 while decompressing data"),
        KeyError("MPO"),
        IndexError("index out of range"),
        TypeError("unsupported operand"),
        ValueError("buffer is not large enough"),
        OverflowError("int too large"),
        SyntaxError("not a TIFF file"),
        EOFError(),
        RuntimeError("decoder said no"),
        MemoryError(),
        AssertionError(),
        ZeroDivisionError("division by zero"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_decoder_exception_is_one_input_error(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def broken(self: Image.Image) -> None:
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    data = encoded(Image.fromarray(gradient()), "BMP")
    with pytest.raises(errors.InputError) as info:
        read_picture(data)
    message = str(info.value)
    assert message and "\n" not in message and "BMP" in message
    assert not isinstance(info.value, errors.ImageTooLargeError)


@pytest.mark.parametrize(
    "error", [struct.error("argument out of range"), OverflowError(), MemoryError(), KeyError(1)]
)
@pytest.mark.parametrize("fmt", ["jpg", "webp", "tiff", "bmp", "tga", "gif"])
def test_any_encoder_exception_is_one_output_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: BaseException, fmt: str
) -> None:
    def broken(self: Image.Image, *args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(errors.OutputError) as info:
        write_picture(rgb_picture(gradient()), tmp_path / f"out.{fmt}")
    assert str(info.value).startswith("cannot encode the image as ")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_bmp_variant_is_said_so() -> None:
    from corpus import bmp_variants

    variants = bmp_variants()
    for name in ("bmp_png_inside.bmp", "bmp_jpeg_inside.bmp", "bmp_64_bit.bmp"):
        with pytest.raises(errors.InputError, match=r"^unsupported BMP variant \(") as info:
            read_picture(variants[name][0])
        assert "damaged" not in str(info.value) and "truncated" not in str(info.value)
    for name in ("bmp_rle8.bmp", "bmp_rle4.bmp", "bmp_os2_v1.bmp", "bmp_565_bitfields.bmp"):
        assert read_picture(variants[name][0]).source_format == "BMP"


def test_lying_header_within_the_cap_is_an_input_error() -> None:
    # a TGA that claims 7000x7000 and holds 10 bytes: Pillow allocates, then runs dry
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, 7000, 7000, 24, 0x20)
    with pytest.raises(errors.InputError, match="TGA"):
        read_picture(header + bytes(10))


# --------------------------------------------------------------------------------------------
# quiet libraries


def test_pillow_warnings_go_to_logging(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import warnings

    original = ImageFile.ImageFile.load

    def warns(self: ImageFile.ImageFile) -> object:
        warnings.warn("Possibly corrupt EXIF data.  Expecting to read 12 bytes", stacklevel=2)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", warns)
    with (
        warnings.catch_warnings(record=True) as shown,
        caplog.at_level(logging.INFO, logger="upscaler_edge.imageio"),
    ):
        warnings.simplefilter("always")
        read_picture(encoded(Image.fromarray(gradient()), "BMP"))
    assert shown == []
    records = [r for r in caplog.records if "Possibly corrupt EXIF" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert records[0].name.startswith("upscaler_edge.imageio")


def test_warning_state_restored_after_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import warnings

    original = ImageFile.ImageFile.load

    def warns(self: ImageFile.ImageFile) -> object:
        warnings.warn("Truncated File Read", stacklevel=2)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", warns)
    before_show, before_filters = warnings.showwarning, list(warnings.filters)
    data = encoded(Image.fromarray(gradient()), "BMP")
    pic = rgb_picture(gradient())
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(20):
                read_picture(data)
                encode_picture(pic, "tiff" if i % 2 else "gif")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert warnings.showwarning is before_show and warnings.filters == before_filters


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_pillow_log_records_demoted_inside_our_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the root logger's handlers (the CLI's stderr handler) get from Pillow's loggers."""
    original = ImageFile.ImageFile.load

    def logs(self: ImageFile.ImageFile) -> object:
        logging.getLogger("PIL.TiffImagePlugin").error("More samples per pixel than can be decoded")
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", logs)
    root = logging.getLogger()
    collect = _Collect()
    old_level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        read_picture(encoded(Image.fromarray(gradient()), "BMP"))
        inside = [(r.name, r.levelno) for r in collect.records if "More samples" in r.getMessage()]
        collect.records.clear()
        logging.getLogger("PIL.TiffImagePlugin").error("outside")  # not in our call: as before
        outside = [(r.name, r.levelno) for r in collect.records]
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
    assert inside and set(inside) == {("upscaler_edge.imageio.pillow", logging.DEBUG)}
    assert outside == [("PIL.TiffImagePlugin", logging.ERROR)]


def _noisy_tiffs(count: int) -> list[bytes]:
    rng = np.random.default_rng(11)
    good = encoded(Image.fromarray(_rgb16x12()), "TIFF", compression="tiff_lzw")
    out = []
    for _ in range(count):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), 6):
            data[int(pos)] = int(rng.integers(0, 256))
        out.append(bytes(data))
    return out


def test_libtiff_noise_never_reaches_stderr(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG, logger="upscaler_edge.imageio"):
        for data in _noisy_tiffs(120):
            with contextlib.suppress(errors.InputError):
                read_picture(data)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    said = [r.getMessage() for r in caplog.records if r.name.endswith(("libtiff", "stderr"))]
    assert said, "the mutated TIFFs should have made libtiff talk"


def test_fd_capture_fallback(
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from upscaler_edge.imageio import quiet

    monkeypatch.setitem(quiet._libtiff, "ok", False)  # as where libtiff cannot be found
    capfd.readouterr()
    with (
        caplog.at_level(logging.DEBUG, logger="upscaler_edge.imageio"),
        quiet.library_call(capture_fd=True),
    ):
        os.write(2, b"TIFFReadDirectory: Warning, Unknown field with tag 50000.\n")
    assert capfd.readouterr().err == ""
    assert any("Unknown field with tag 50000" in r.getMessage() for r in caplog.records)
    with quiet.library_call(capture_fd=True):
        pass
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # fd 2 is back


# --------------------------------------------------------------------------------------------
# output formats (issue 8): the bytes written are that format


def _pixels(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize(
    ("suffix", "pillow_name", "tolerance"),
    [
        (".png", "PNG", 0),
        (".apng", "PNG", 0),
        (".jpg", "JPEG", 24),
        (".jpeg", "JPEG", 24),
        (".webp", "WEBP", 24),
        (".tiff", "TIFF", 0),
        (".tif", "TIFF", 0),
        (".bmp", "BMP", 0),
        (".tga", "TGA", 0),
        (".gif", "GIF", 24),
        (".avif", "AVIF", 40),
        (".dds", "DDS", 0),
    ],
)
def test_each_output_format_is_really_written(
    tmp_path: Path, suffix: str, pillow_name: str, tolerance: int
) -> None:
    fmt = imageio.format_from_suffix(suffix)
    if fmt is None:
        pytest.skip(f"{suffix} is not writable with this Pillow")
    pic = rgb_picture(_rgb16x12())
    out = write_picture(pic, tmp_path / f"out{suffix}")
    assert out == tmp_path / f"out{suffix}"
    with Image.open(out) as back:
        assert back.format == pillow_name and back.size == (16, 12)
        _close(_pixels(back), _rgb16x12(), tolerance)
    data, used = encode_picture(pic, fmt)
    assert used == fmt and data == out.read_bytes()


def test_explicit_format_wins_and_the_suffix_follows(tmp_path: Path) -> None:
    pic = rgb_picture(gradient())
    out = write_picture(pic, tmp_path / "x.png", fmt="tiff")
    assert out == tmp_path / "x.tiff"
    with Image.open(out) as back:
        assert back.format == "TIFF"
    out = write_picture(pic, tmp_path / "y.result", fmt="bmp")  # not an image suffix: kept
    with Image.open(out) as back:
        assert out.name == "y.result" and back.format == "BMP"


def test_unwritable_image_suffix_is_a_usage_error(tmp_path: Path) -> None:
    for name in ("x.heic", "x.qoi", "x.psd"):
        with pytest.raises(errors.UsageError, match="cannot write"):
            write_picture(rgb_picture(gradient()), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["gif", "apng", "webp", "avif", "png"])
def test_animation_formats_keep_frames_and_durations(tmp_path: Path, fmt: str) -> None:
    if fmt not in imageio.OUTPUT_FORMATS:
        pytest.skip(f"{fmt} is not writable here")
    pic = read_picture(_gif(tmp_path), all_frames=True)
    out = write_picture(pic, tmp_path / f"out{imageio.FORMAT_SUFFIX[fmt]}")
    assert out.suffix == imageio.FORMAT_SUFFIX[fmt]
    with Image.open(out) as back:
        assert back.format == {"apng": "PNG", "png": "PNG"}.get(fmt, fmt.upper())
        assert back.n_frames == 3
    again = read_picture(out, all_frames=True)
    assert [f.duration_ms for f in again.frames] == [100, 200, 300]
    assert again.loop == (None if fmt == "avif" else 0)  # Pillow reads no AVIF loop count
    for ours, theirs in zip(pic.frames, again.frames, strict=True):
        assert np.abs(ours.rgb.astype(int) - theirs.rgb.astype(int)).max() < 40


@pytest.mark.parametrize("fmt", ["jpg", "bmp", "tga", "dds", "tiff"])
def test_animation_in_a_still_format_becomes_apng(
    tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    if fmt not in imageio.OUTPUT_FORMATS:
        pytest.skip(f"{fmt} is not writable here")
    pic = read_picture(_gif(tmp_path), all_frames=True)
    with caplog.at_level(logging.WARNING, logger="upscaler_edge.imageio"):
        out = write_picture(pic, tmp_path / f"out{imageio.FORMAT_SUFFIX[fmt]}")
    assert out == tmp_path / "out.png"
    assert "image is animated; saving PNG (APNG) instead of" in caplog.text
    with Image.open(out) as back:
        assert back.format == "PNG" and back.n_frames == 3


@pytest.mark.parametrize(("fmt", "kept"), [("jpg", False), ("bmp", False), ("tiff", True)])
def test_transparency_rule(tmp_path: Path, fmt: str, kept: bool) -> None:
    alpha = np.full((6, 8), 255, np.uint8)
    alpha[0, 0] = 0
    out = write_picture(rgb_picture(gradient(), alpha), tmp_path / f"a.{fmt}")
    assert out.suffix == (f".{fmt}" if kept else ".png")
    with Image.open(out) as back:
        assert back.mode == "RGBA" and back.getpixel((0, 0))[3] == 0


@pytest.mark.parametrize("fmt", ["tga", "webp", "dds", "avif"])
def test_alpha_kept_in_formats_that_hold_it(tmp_path: Path, fmt: str) -> None:
    if fmt not in imageio.OUTPUT_FORMATS:
        pytest.skip(f"{fmt} is not writable here")
    alpha = np.full((12, 16), 255, np.uint8)
    alpha[:4, :4] = 0
    out = write_picture(rgb_picture(_rgb16x12(), alpha), tmp_path / f"a.{fmt}")
    with Image.open(out) as back:
        assert back.mode == "RGBA"
        assert np.asarray(back)[1, 1, 3] < 20 and np.asarray(back)[8, 8, 3] > 235


def test_gif_keeps_one_level_of_transparency(tmp_path: Path) -> None:
    alpha = np.full((12, 16), 255, np.uint8)
    alpha[:4, :4] = 0
    alpha[8:, 8:] = 100  # below half: transparent in a GIF
    out = write_picture(rgb_picture(_rgb16x12(), alpha), tmp_path / "t.gif")
    back = read_picture(out).frames[0]
    assert back.alpha is not None
    assert back.alpha[1, 1] == 0 and back.alpha[10, 10] == 0 and back.alpha[6, 6] == 255


def test_gray_output_formats(tmp_path: Path) -> None:
    gray = np.repeat(gradient()[..., :1], 3, axis=2)
    pic = rgb_picture(gray, grayscale=True)
    for fmt, mode, tolerance in (
        ("tiff", "L", 0),
        ("bmp", "L", 0),
        ("tga", "L", 0),
        ("gif", "P", 0),
        ("jpg", "L", 3),
        ("webp", "RGB", 3),
    ):
        with Image.open(write_picture(pic, tmp_path / f"g.{fmt}")) as back:
            assert back.mode == mode, fmt
            _close(_pixels(back)[..., 0], gray[..., 0], tolerance)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_tiff(tmp_path: Path, channels: int) -> None:
    arr = _ramp16(5, 7, channels)
    gray = channels <= 2
    rgb = np.repeat(arr[..., :1], 3, axis=2) if gray else arr[..., :3]
    alpha = arr[..., -1].copy() if channels in (2, 4) else None
    icc = None if gray else srgb_icc()
    pic = Picture([Frame(rgb.copy(), alpha)], "PNG", gray, icc_profile=icc, dpi=(300.0, 300.0))
    out = write_picture(pic, tmp_path / "s.tiff")
    with Image.open(out) as back:
        assert back.format == "TIFF" and back.size == (7, 5)
        assert back.tag_v2[258] == (16,) * {1: 1, 2: 4, 3: 3, 4: 4}[channels]
        assert back.info["dpi"] == pytest.approx((300, 300))
        assert back.info.get("icc_profile") == icc
        planes = _tiff_samples(out.read_bytes(), back)
    want = np.dstack([rgb[..., :1] if channels == 1 else rgb] + ([] if alpha is None else [alpha]))
    np.testing.assert_array_equal(planes, want)


def _tiff_samples(data: bytes, im: Image.Image) -> np.ndarray:
    """Our 16-bit TIFF's samples, read from its strips independently of our writer's code."""
    width, height = im.size
    spp = im.tag_v2[277]
    raw = b"".join(
        zlib.decompress(data[offset : offset + size])
        for offset, size in zip(im.tag_v2[273], im.tag_v2[279], strict=True)
    )
    return np.frombuffer(raw, "<u2").reshape(height, width, spp)


def test_16_bit_is_8_bit_in_other_formats(tmp_path: Path) -> None:
    pic = rgb_picture(np.full((4, 4, 3), 65535, np.uint16))
    for fmt in ("bmp", "tga", "gif", "webp", "dds"):
        with Image.open(write_picture(pic, tmp_path / f"w.{fmt}")) as back:
            assert _pixels(back).min() > 250, fmt


def test_metadata_carried_where_the_format_holds_it(tmp_path: Path) -> None:
    icc = srgb_icc()
    exif = exif_with_orientation(1)
    pic = rgb_picture(gradient(), icc_profile=icc, exif=exif, dpi=(150.0, 150.0))
    expected = {
        "png": (True, True, True),
        "jpg": (True, True, True),
        "webp": (True, True, False),
        "tiff": (True, True, True),
        "avif": (True, True, False),
        "bmp": (False, False, True),
    }
    for fmt, (has_icc, has_exif, has_dpi) in expected.items():
        if fmt not in imageio.OUTPUT_FORMATS:
            continue
        with Image.open(write_picture(pic, tmp_path / f"m.{fmt}")) as back:
            assert (back.info.get("icc_profile") == icc) == has_icc, fmt
            assert (back.getexif().get(0x010F) == "upscaler-edge test") == has_exif, fmt
            if has_dpi:
                assert back.info["dpi"] == pytest.approx((150, 150), abs=0.5), fmt


# --------------------------------------------------------------------------------------------
# DPI that a format cannot hold (issue 8: pHYs overflow)


def test_phys_overflow_is_dropped_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = (
        b"Exif\0\0II*\0\x08\0\0\0\x03\0"
        + struct.pack("<HHII", 0x011A, 5, 1, 50)
        + struct.pack("<HHII", 0x011B, 5, 1, 58)
        + struct.pack("<HHIHH", 0x0128, 3, 1, 2, 0)
        + b"\0\0\0\0"
        + struct.pack("<IIII", 4294967295, 1, 4294967295, 1)
    )
    data = encoded(Image.fromarray(gradient()), "JPEG", exif=raw)
    pic = read_picture(data)
    assert pic.dpi == (4294967295.0, 4294967295.0)  # what the camera said
    pic.dpi = (pic.dpi[0] * 4, pic.dpi[1] * 4)  # what the pipeline does after x4
    with caplog.at_level(logging.INFO, logger="upscaler_edge.imageio"):
        for fmt in ("png", "jpg", "tiff", "bmp"):
            out = write_picture(pic, tmp_path / f"dpi.{fmt}")
            with Image.open(out) as back:
                back.load()
                assert back.size == (8, 6)
    assert "cannot hold" in caplog.text
    assert b"pHYs" not in (tmp_path / "dpi.png").read_bytes()


def test_phys_within_range_is_kept() -> None:
    from upscaler_edge.imageio.png import png_phys

    assert png_phys((72.0, 72.0)) == (2835, 2835)
    assert png_phys((0.0, 72.0)) is None
    assert png_phys((float("inf"), 72.0)) is None
    assert png_phys((float("nan"), 72.0)) is None
    assert png_phys((4294967295.0 * 4, 1.0)) is None


# --------------------------------------------------------------------------------------------
# the format API the CLI calls


def test_output_format_api() -> None:
    assert imageio.OUTPUT_FORMATS[:8] == ("png", "jpg", "webp", "tiff", "bmp", "tga", "gif", "apng")
    assert set(imageio.OUTPUT_FORMATS) <= set(imageio.FORMAT_SUFFIX)
    assert ("avif" in imageio.OUTPUT_FORMATS) == bool(features.check("avif"))
    for name, fmt in (
        ("a.png", "png"),
        ("a.JPEG", "jpg"),
        ("a.jpe", "jpg"),
        ("dir.x/a.tif", "tiff"),
        (".tiff", "tiff"),
        ("a.apng", "apng"),
        ("a.gif", "gif"),
        ("a.bmp", "bmp"),
        ("a.tga", "tga"),
        ("a.qoi", None),
        ("a", None),
        ("a.png.txt", None),
    ):
        assert imageio.format_from_suffix(name) == fmt, name
        assert imageio.format_from_suffix(Path(name)) == fmt, name
    for fmt in imageio.OUTPUT_FORMATS:
        assert imageio.format_from_suffix("x" + imageio.FORMAT_SUFFIX[fmt]) == fmt
        assert imageio.check_output_format(fmt.upper()) == fmt
    assert imageio.check_output_format("jpeg") == "jpg"
    assert imageio.check_output_format(".TIF") == "tiff"
    with pytest.raises(errors.UsageError) as info:
        imageio.check_output_format("xcf")
    assert str(info.value) == (
        f"unknown output format 'xcf'; use one of {', '.join(imageio.OUTPUT_FORMATS)}"
    )
