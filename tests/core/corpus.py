"""A folder of odd image files, the way a user's photo folder really looks.

:func:`build` writes several hundred tiny files (8..48 px): every format Pillow writes in
every mode it takes, exotic but valid variants (16-bit, palettes with transparency, CMYK,
multi-size ICO, RLE BMP, ASCII PNM, hand-made PSD, animations, MPO, ...), extreme EXIF
(orientation 0..9 and garbage, resolution 0 and 2**32-1, huge and looping IFDs), ICC profiles
(sRGB, CMYK, garbage), huge text chunks, same-stem files in one folder, and broken files
(empty, text, truncated and bit-flipped copies, lying headers). Each file carries an
expectation: ``ok`` (a valid file of a supported format: must be upscaled), ``fail`` (must be
refused with one line) or ``either`` (damaged on purpose: refused, or decoded into whatever
the damage left, but never a crash).

:func:`samples` gives one valid file of every supported input variant, the seeds of the fuzz
test. Everything is deterministic (seeded).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, features

from upscaler_edge.imageio import Frame, Picture, encode_picture
from upscaler_edge.naming import IMAGE_SUFFIXES

__all__ = ["Entry", "build", "samples"]


@dataclass(frozen=True)
class Entry:
    """One corpus file: where it is (relative to the corpus root) and what must happen."""

    name: str
    expect: str  # "ok", "fail" or "either"
    why: str = ""


# --------------------------------------------------------------------------------------------
# pixels


def _rgb(w: int = 24, h: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) * 5], axis=2)
    noise = rng.integers(0, 40, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _rgba(w: int = 24, h: int = 16, seed: int = 0) -> np.ndarray:
    alpha = np.full((h, w, 1), 255, np.uint8)
    alpha[: h // 2, : w // 2] = 0
    alpha[h // 2 :, w // 2 :] = 128
    return np.concatenate([_rgb(w, h, seed), alpha], axis=2)


def _image(mode: str, w: int = 24, h: int = 16, seed: int = 0) -> Image.Image:
    """A test image in any Pillow mode."""
    rgba = Image.fromarray(_rgba(w, h, seed), "RGBA")
    rgb = rgba.convert("RGB")
    if mode == "RGBA":
        return rgba
    if mode in ("I;16", "I;16B", "I;16L"):
        ramp = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257).astype(np.uint16)
        return Image.fromarray(ramp).convert(mode) if mode != "I;16" else Image.fromarray(ramp)
    if mode == "I":
        return Image.fromarray(np.asarray(rgb.convert("L")).astype(np.int32) * 300)
    if mode == "F":
        return Image.fromarray(np.asarray(rgb.convert("L")).astype(np.float32) / 255)
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if mode == "PA":
        pa = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).convert("PA")
        pa.putalpha(rgba.getchannel("A"))
        return pa
    if mode in ("LA", "La", "RGBa", "RGBX"):
        return rgba.convert(mode if mode != "LA" else "LA")
    return rgb.convert(mode)


def _save(im: Image.Image, fmt: str, **params: object) -> bytes | None:
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IM is deprecated, palettes lose colours, ...
            im.save(buf, fmt, **params)
    except Exception:
        return None
    return buf.getvalue()


def _reads_back(data: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.load()
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------------------------
# metadata


def _exif(tags: dict[int, object], exif_ifd: dict[int, object] | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if exif_ifd:
        sub = exif.get_ifd(0x8769)
        sub.update(exif_ifd)
    return exif.tobytes()


def _raw_exif(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
    """Hand-made little-endian EXIF: IFD0 at offset 8 with (tag, type, count, 4 bytes)."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + body + struct.pack("<I", next_ifd)


def srgb_icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def lab_icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())


def cmyk_icc() -> bytes:
    """A tiny but valid ICC v2 CMYK printer profile (lut8 A2B0 to Lab), built by hand:
    Pillow's ImageCms cannot make CMYK profiles."""
    grid = 2
    clut = bytearray()
    for c in range(grid):
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
    desc += b"\0" * 8 + b"\0" * 3 + b"\0" * 67
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
    return header + struct.pack(">I", len(tags)) + table + data


# --------------------------------------------------------------------------------------------
# hand-made files of formats or variants Pillow does not write


def _chunk(name: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))


def png16(arr: np.ndarray, interlace: bool = False) -> bytes:
    """16-bit PNG (gray, gray+alpha, RGB, RGBA by channel count), optionally Adam7."""
    height, width, channels = arr.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
    passes = [*adam7, (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                raw += b"\0" + row.astype(">u2").tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def png_with_chunk(base: bytes, name: bytes, body: bytes) -> bytes:
    """Insert a chunk right after IHDR."""
    at = 8 + 25
    return base[:at] + _chunk(name, body) + base[at:]


def _ramp16(h: int, w: int, channels: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [((x * 4099 + y * 257 + i * 9001) % 65536).astype(np.uint16) for i in range(channels)]
    return np.stack(planes, axis=2)


def bmp(
    width: int,
    height: int,
    bits: int,
    pixels: bytes,
    *,
    compression: int = 0,
    palette: bytes = b"",
    header_size: int = 40,
    masks: tuple[int, ...] = (),
) -> bytes:
    """A BMP with any header size, depth and compression; the pixel bytes as given."""
    if header_size == 12:
        dib = struct.pack("<IHHHH", 12, width, height, 1, bits)
    else:
        dib = struct.pack(
            "<IiiHHIIiiII",
            header_size,
            width,
            height,
            1,
            bits,
            compression,
            len(pixels),
            2835,
            2835,
            len(palette) // 4,
            0,
        )
        extra = b"".join(struct.pack("<I", m) for m in masks)
        dib = (dib + extra).ljust(header_size, b"\0")
    offset = 14 + len(dib) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + dib + palette + pixels


def bmp_rle8(w: int = 16, h: int = 8) -> bytes:
    palette = b"".join(bytes((i * 16, 255 - i * 16, i * 8, 0)) for i in range(16))
    data = b""
    for y in range(h):
        data += bytes((w // 2, y % 16, w - w // 2, (y + 5) % 16)) + b"\0\0"
    data += b"\0\1"
    return bmp(w, h, 8, data, compression=1, palette=palette)


def bmp_rle4(w: int = 16, h: int = 8) -> bytes:
    palette = b"".join(bytes((i * 16, 255 - i * 16, i * 8, 0)) for i in range(16))
    data = b""
    for y in range(h):
        data += bytes((w, (y % 16) << 4 | ((y + 3) % 16))) + b"\0\0"
    data += b"\0\1"
    return bmp(w, h, 4, data, compression=2, palette=palette)


def bmp_variants() -> dict[str, tuple[bytes, str]]:
    """Valid BMPs Pillow does not write, and valid ones Pillow cannot decode."""
    w, h = 12, 8
    rgb = _rgb(w, h, 3)
    rows24 = b"".join(
        rgb[y, :, ::-1].tobytes() + b"\0" * (-(w * 3) % 4) for y in range(h - 1, -1, -1)
    )
    rgb565 = (
        (rgb[..., 0].astype(np.uint16) >> 3) << 11
        | (rgb[..., 1].astype(np.uint16) >> 2) << 5
        | (rgb[..., 2].astype(np.uint16) >> 3)
    )
    rows16 = b"".join(rgb565[y].astype("<u2").tobytes() for y in range(h - 1, -1, -1))
    bgra = np.dstack([rgb[..., ::-1], np.full((h, w), 200, np.uint8)])
    rows32 = b"".join(bgra[y].tobytes() for y in range(h - 1, -1, -1))
    png_inside = _save(Image.fromarray(rgb), "PNG") or b""
    jpeg_inside = _save(Image.fromarray(rgb), "JPEG") or b""
    return {
        "bmp_rle8.bmp": (bmp_rle8(), "ok"),
        "bmp_rle4.bmp": (bmp_rle4(), "ok"),
        "bmp_os2_v1.bmp": (bmp(w, h, 24, rows24, header_size=12), "ok"),
        "bmp_v4_header.bmp": (bmp(w, h, 24, rows24, header_size=108), "ok"),
        "bmp_v5_header.bmp": (bmp(w, h, 24, rows24, header_size=124), "ok"),
        "bmp_top_down.bmp": (bmp(w, -h, 24, rows24), "ok"),
        "bmp_565_bitfields.bmp": (
            bmp(w, h, 16, rows16, compression=3, masks=(0xF800, 0x07E0, 0x001F)),
            "ok",
        ),
        "bmp_32_argb_v5.bmp": (
            bmp(
                w,
                h,
                32,
                rows32,
                compression=3,
                header_size=124,
                masks=(0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000),
            ),
            "ok",
        ),
        "bmp_png_inside.bmp": (bmp(w, h, 0, png_inside, compression=5), "fail"),
        "bmp_jpeg_inside.bmp": (bmp(w, h, 0, jpeg_inside, compression=4), "fail"),
        "bmp_64_bit.bmp": (bmp(w, h, 64, b"\0" * (w * h * 8)), "fail"),
        "bmp_huffman_os2.bmp": (bmp(w, h, 1, b"\0" * 64, compression=3, header_size=64), "either"),
    }


def pnm_variants() -> dict[str, bytes]:
    w, h = 10, 6
    rgb = _rgb(w, h, 4)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    bits = (gray > 128).astype(np.uint8)

    def ascii_rows(arr: np.ndarray) -> bytes:
        return "\n".join(" ".join(str(int(v)) for v in row.ravel()) for row in arr).encode()

    return {
        "p1_ascii.pbm": b"P1\n# ascii bits\n%d %d\n" % (w, h) + ascii_rows(1 - bits) + b"\n",
        "p2_ascii.pgm": b"P2\n%d %d\n255\n" % (w, h) + ascii_rows(gray) + b"\n",
        "p3_ascii.ppm": b"P3\n%d %d\n255\n" % (w, h) + ascii_rows(rgb.reshape(h, -1)) + b"\n",
        "p5_16bit.pgm": b"P5\n%d %d\n65535\n" % (w, h) + (gray.astype(">u2") * 257).tobytes(),
        "p6_16bit.ppm": b"P6\n%d %d\n65535\n" % (w, h) + (rgb.astype(">u2") * 257).tobytes(),
        "p5_maxval_1000.pgm": b"P5\n%d %d\n1000\n" % (w, h) + (gray.astype(">u2") * 3).tobytes(),
        "p6_binary.pnm": b"P6\n%d %d\n255\n" % (w, h) + rgb.tobytes(),
    }


def psd(arr: np.ndarray, mode: int, rle: bool = False, layers: bool = False) -> bytes:
    """A flattened Photoshop file: (H, W, C) uint8 channels, colour mode 1 (gray), 3 (RGB),
    4 (CMYK); optionally RLE (PackBits) image data and an empty layer section."""
    h, w, channels = arr.shape
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, h, w, 8, mode)
    layer_info = struct.pack(">IH", 2, 0) if layers else b""
    body = header + struct.pack(">I", 0) + struct.pack(">I", 0)
    body += struct.pack(">I", len(layer_info)) + layer_info
    planes = [arr[..., c] for c in range(channels)]
    if not rle:
        return body + struct.pack(">H", 0) + b"".join(p.tobytes() for p in planes)
    rows = []
    for plane in planes:
        for row in plane:
            packed = b""
            for start in range(0, w, 128):
                run = row[start : start + 128].tobytes()
                packed += bytes((len(run) - 1,)) + run  # literal runs only
            rows.append(packed)
    counts = b"".join(struct.pack(">H", len(r)) for r in rows)
    return body + struct.pack(">H", 1) + counts + b"".join(rows)


def tiff_variants() -> dict[str, tuple[bytes, str]]:
    rgb = Image.fromarray(_rgb(20, 14, 5))
    out: dict[str, tuple[bytes, str]] = {}
    for name, im, params in (
        ("tiff_lzw_predictor.tif", rgb, {"compression": "tiff_lzw", "tiffinfo": {317: 2}}),
        ("tiff_deflate.tif", rgb, {"compression": "tiff_adobe_deflate"}),
        ("tiff_jpeg.tif", rgb, {"compression": "tiff_jpeg"}),
        ("tiff_packbits.tif", rgb, {"compression": "packbits"}),
        ("tiff_group4.tif", rgb.convert("1"), {"compression": "group4"}),
        ("tiff_ycbcr.tif", rgb.convert("YCbCr"), {}),
        ("tiff_cmyk_profile.tif", rgb.convert("CMYK"), {"icc_profile": cmyk_icc()}),
        ("tiff_lab.tif", rgb.convert("LAB"), {}),
        ("tiff_float.tif", _image("F", 20, 14), {}),
        ("tiff_int32.tif", _image("I", 20, 14), {}),
        ("tiff_16_gray.tif", _image("I;16", 20, 14), {}),
        (
            "tiff_multipage.tif",
            rgb,
            {"save_all": True, "append_images": [rgb.transpose(Image.Transpose.ROTATE_180)]},
        ),
        ("tiff_rgba.tif", Image.fromarray(_rgba(20, 14)), {"compression": "tiff_lzw"}),
        ("tiff_rgba_premultiplied.tif", Image.fromarray(_rgba(20, 14)).convert("RGBa"), {}),
    ):
        data = _save(im, "TIFF", **params)
        if data is not None:
            out[name] = (data, "ok")
    pic = Picture([Frame(_ramp16(14, 20, 3))], "PNG")
    out["tiff_16_rgb_ours.tiff"] = (encode_picture(pic, "tiff")[0], "ok")
    big_text = _save(rgb, "TIFF", tiffinfo={270: "x" * 1_000_000})
    if big_text:
        out["tiff_huge_description.tif"] = (big_text, "ok")
    return out


# --------------------------------------------------------------------------------------------
# the seeds: one valid file per supported input variant


def samples() -> dict[str, bytes]:
    """name (with the usual suffix) -> bytes of a valid file, for every supported variant."""
    rgb = Image.fromarray(_rgb(16, 12, 1))
    rgba = Image.fromarray(_rgba(16, 12, 1))
    frames = [rgb, rgb.transpose(Image.Transpose.ROTATE_180), rgb.convert("L").convert("RGB")]
    out: dict[str, bytes | None] = {
        "png_rgb.png": _save(rgb, "PNG"),
        "png_palette_trns.png": _save(_image("P", 16, 12), "PNG", transparency=0),
        "png_16_rgba.png": png16(_ramp16(12, 16, 4)),
        "png_16_interlaced.png": png16(_ramp16(9, 11, 3), interlace=True),
        "apng.apng": _save(
            frames[0], "PNG", save_all=True, append_images=frames[1:], duration=[50, 80, 120]
        ),
        "jpeg.jpg": _save(rgb, "JPEG", quality=90, exif=_exif({0x0112: 6, 0x010F: "cam"})),
        "jpeg_progressive.jpg": _save(rgb, "JPEG", progressive=True),
        "jpeg_cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG", icc_profile=cmyk_icc()),
        "mpo.mpo": _save(rgb, "MPO", save_all=True, append_images=frames[1:2]),
        "webp_lossless.webp": _save(rgba, "WEBP", lossless=True),
        "webp_anim.webp": _save(
            frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=60
        ),
        "bmp.bmp": _save(rgb, "BMP"),
        "bmp_rle8.bmp": bmp_rle8(),
        "tiff_lzw.tif": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff_jpeg.tif": _save(rgb, "TIFF", compression="tiff_jpeg"),
        "gif_anim.gif": _save(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=70, loop=0
        ),
        "tga_rle.tga": _save(rgba, "TGA", compression="tga_rle"),
        "dds_rgba.dds": _save(rgba, "DDS"),
        "dds_dxt5.dds": _save(rgba, "DDS", pixel_format="DXT5"),
        "ppm.ppm": _save(rgb, "PPM"),
        "pgm_ascii.pgm": pnm_variants()["p2_ascii.pgm"],
        "qoi.qoi": _save(rgba, "QOI"),
        "ico.ico": _save(rgba.resize((32, 32)), "ICO", sizes=[(32, 32), (16, 16)]),
        "jp2.jp2": _save(rgb, "JPEG2000"),
        "j2k.j2k": _save(rgb, "JPEG2000", no_jp2=True),
        "psd_rgb.psd": psd(_rgb(16, 12, 1), 3),
        "psd_rle.psd": psd(_rgb(16, 12, 2), 3, rle=True),
    }
    if features.check("avif"):
        out["avif.avif"] = _save(rgba, "AVIF", quality=80)
        out["avifs.avifs"] = _save(
            frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=90
        )
    heic = _heic(rgb)
    if heic:
        out["heic.heic"] = heic
    return {name: data for name, data in out.items() if data}


def _heic(im: Image.Image) -> bytes | None:
    try:
        import pillow_heif
    except ImportError:
        return None
    try:
        buf = io.BytesIO()
        pillow_heif.from_pillow(im).save(buf, format="HEIF", quality=80)
    except Exception:
        return None
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# the corpus

_SUPPORTED = {
    "PNG",
    "JPEG",
    "MPO",
    "WEBP",
    "BMP",
    "TIFF",
    "GIF",
    "AVIF",
    "TGA",
    "DDS",
    "PPM",
    "QOI",
    "ICO",
    "JPEG2000",
    "HEIF",  # registered by pillow-heif, when installed
}
_MODES = (
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "I;16B",
    "F",
)
# Pillow writes these but cannot read them back here, or needs outside programs
_SKIP_FORMATS = {"EPS", "PDF", "WMF", "BUFR", "GRIB", "HDF5", "PALM", "MPO", "BLP"}


def _suffix_of(fmt: str) -> str:
    Image.init()
    found = [ext for ext, name in Image.EXTENSION.items() if name == fmt]
    preferred = {"JPEG": ".jpg", "TIFF": ".tif", "JPEG2000": ".jp2", "PPM": ".ppm"}
    return preferred.get(fmt, found[0] if found else "." + fmt.lower())


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: list[Entry] = []

    def add(self, name: str, data: bytes | None, expect: str, why: str = "") -> None:
        if data is None:
            return
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and not Path(name).name.startswith("."):
            self.entries.append(Entry(name, expect, why))


def build(root: Path) -> list[Entry]:
    """Write the corpus under ``root``; return the entries a folder scan will find."""
    try:  # the same corpus whether or not an earlier test registered pillow-heif's formats
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    w = _Writer(root)
    _every_format_and_mode(w)
    for name, data in samples().items():
        w.add(f"samples/{name}", data, "ok", "a valid file of a supported format")
    for name, (data, expect) in bmp_variants().items():
        w.add(f"bmp/{name}", data, expect, "BMP variant")
    for name, data in pnm_variants().items():
        w.add(f"pnm/{name}", data, "ok", "PNM variant")
    for name, (data, expect) in tiff_variants().items():
        w.add(f"tiff/{name}", data, expect, "TIFF variant")
    _exotic(w)
    _exif_extremes(w)
    _profiles(w)
    _same_stems(w)
    _huge_headers(w)
    _broken(w)
    _damaged_copies(w)
    return w.entries


def _every_format_and_mode(w: _Writer) -> None:
    Image.init()
    for fmt in sorted(set(Image.SAVE) - _SKIP_FORMATS):
        suffix = _suffix_of(fmt)
        for mode in _MODES:
            try:
                im = _image(mode, 20, 12, seed=len(mode))
            except Exception:
                continue
            data = _save(im, fmt)
            if data is None or not _reads_back(data):
                continue
            label = {"La": "LA_premultiplied", "RGBa": "RGBA_premultiplied"}.get(mode, mode)
            name = f"pillow/{fmt.lower()}_{label.replace(';', '_')}{suffix}"
            if fmt in _SUPPORTED:
                w.add(name, data, "ok", f"{fmt} written by Pillow from mode {mode}")
            else:
                w.add(name, data, "fail", "a format outside the allowlist")
        if fmt not in _SUPPORTED:  # the same under a name that the folder scan picks up
            data = _save(_image("RGB", 20, 12), fmt) or _save(_image("L", 20, 12), fmt)
            w.add(f"disguised/{fmt.lower()}_named.png", data, "fail", "unsupported content")


def _exotic(w: _Writer) -> None:
    rgb = Image.fromarray(_rgb(24, 16, 7))
    rgba = Image.fromarray(_rgba(24, 16, 7))
    p = _image("P", 24, 16)
    w.add("exotic/png_16_gray.png", png16(_ramp16(16, 24, 1)), "ok")
    w.add("exotic/png_16_gray_alpha.png", png16(_ramp16(16, 24, 2)), "ok")
    w.add("exotic/png_16_rgb.png", png16(_ramp16(16, 24, 3)), "ok")
    w.add("exotic/png_16_rgba_adam7.png", png16(_ramp16(13, 17, 4), interlace=True), "ok")
    w.add("exotic/png_interlaced.png", _save(rgb, "PNG", interlace=True) or None, "ok")
    w.add("exotic/png_p_trns_bytes.png", _save(p, "PNG", transparency=bytes(range(16))), "ok")
    w.add("exotic/png_rgb_trns.png", _save(rgb, "PNG", transparency=(0, 0, 0)), "ok")
    w.add("exotic/gif_transparent.gif", _save(p, "GIF", transparency=3), "ok")
    w.add("exotic/gif_interlaced.gif", _save(p, "GIF", interlace=True), "ok")
    frames = [rgba.rotate(i * 90, expand=False) for i in range(4)]
    w.add(
        "exotic/gif_anim_disposal.gif",
        _save(frames[0], "GIF", save_all=True, append_images=frames[1:], disposal=2, loop=3),
        "ok",
    )
    w.add(
        "exotic/webp_anim_alpha.webp",
        _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=40),
        "ok",
    )
    w.add("exotic/webp_lossy_alpha.webp", _save(rgba, "WEBP", quality=50), "ok")
    w.add(
        "exotic/apng_alpha.png",
        _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=30),
        "ok",
    )
    w.add("exotic/jpeg_gray.jpg", _save(rgb.convert("L"), "JPEG"), "ok")
    w.add("exotic/jpeg_420.jpg", _save(rgb, "JPEG", subsampling=2, quality=50), "ok")
    w.add("exotic/jpeg_cmyk_no_profile.jpg", _save(rgb.convert("CMYK"), "JPEG"), "ok")
    w.add("exotic/jpeg_restart.jpe", _save(rgb, "JPEG", restart_marker_blocks=1), "ok")
    w.add("exotic/jpeg.jfif", _save(rgb, "JPEG"), "ok")
    w.add("exotic/jpeg.jpeg", _save(rgb, "JPEG", optimize=True), "ok")
    w.add("exotic/mpo_three.mpo", _save(rgb, "MPO", save_all=True, append_images=frames[1:3]), "ok")
    w.add("exotic/mpo_named.jpg", _save(rgb, "MPO", save_all=True, append_images=[rgb]), "ok")
    w.add(
        "exotic/ico_sizes.ico",
        _save(rgba.resize((48, 48)), "ICO", sizes=[(16, 16), (32, 32), (48, 48)]),
        "ok",
    )
    w.add("exotic/ico_bmp_8bit.ico", _save(p.resize((16, 16)), "ICO", bitmap_format="bmp"), "ok")
    w.add("exotic/tga_bottom_up.tga", _save(rgb, "TGA", orientation=-1), "ok")
    w.add(
        "exotic/tga_top_down_rle.tga",
        _save(rgba, "TGA", orientation=1, compression="tga_rle"),
        "ok",
    )
    w.add("exotic/tga_palette.tga", _save(p, "TGA"), "ok")
    w.add("exotic/tga_gray.tga", _save(rgb.convert("L"), "TGA"), "ok")
    for pf in ("DXT1", "DXT3", "DXT5"):
        w.add(f"exotic/dds_{pf.lower()}.dds", _save(rgba, "DDS", pixel_format=pf), "ok")
    w.add("exotic/dds_rgb.dds", _save(rgb, "DDS"), "ok")
    w.add("exotic/dds_gray.dds", _save(rgb.convert("L"), "DDS"), "ok")
    w.add("exotic/qoi_rgb.qoi", _save(rgb, "QOI"), "ok")
    w.add("exotic/pfm_float.pnm", _save(_image("F", 24, 16), "PPM"), "ok")
    w.add("exotic/jp2_irreversible.jp2", _save(rgb, "JPEG2000", irreversible=True), "ok")
    w.add("exotic/j2k_16_gray.j2k", _save(_image("I;16", 24, 16), "JPEG2000", no_jp2=True), "ok")
    w.add("exotic/jp2_rgba.jpx", _save(rgba, "JPEG2000"), "ok")
    w.add("exotic/psd_gray.psd", psd(np.asarray(rgb.convert("L"))[..., None], 1), "ok")
    w.add("exotic/psd_rgba_layers.psd", psd(_rgba(24, 16), 3, layers=True), "ok")
    w.add("exotic/psd_cmyk_rle.psd", psd(np.asarray(rgb.convert("CMYK")), 4, rle=True), "ok")
    if features.check("avif"):
        w.add("exotic/avif_alpha.avif", _save(rgba, "AVIF"), "ok")
        w.add(
            "exotic/avif_sequence.avifs",
            _save(frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=50),
            "ok",
        )
    w.add("exotic/heif_photo.heif", _heic(rgb), "ok")
    w.add("exotic/UPPER_CASE.PNG", _save(rgb, "PNG"), "ok")
    w.add("exotic/tiny_1x1.png", _save(Image.new("RGB", (1, 1), "red"), "PNG"), "ok")
    w.add("exotic/wide_48x1.png", _save(Image.new("RGB", (48, 1), "blue"), "PNG"), "ok")
    w.add("exotic/name with spaces & ünïcödé.png", _save(rgb, "PNG"), "ok")
    w.add("exotic/tiff_named.jpg", _save(rgb, "TIFF"), "ok")
    w.add("exotic/png_named.webp", _save(rgb, "PNG"), "ok")


def _exif_extremes(w: _Writer) -> None:
    rgb = Image.fromarray(_rgb(20, 12, 9))
    for value in range(10):
        tags = {0x0112: value, 0x010F: "upscaler-edge corpus"}
        w.add(f"exif/orientation_{value}.jpg", _save(rgb, "JPEG", exif=_exif(tags)), "ok")
        w.add(f"exif/orientation_{value}.png", _save(rgb, "PNG", exif=_exif(tags)), "ok")
    for label, entry in (
        ("text", (0x0112, 2, 4, b"six\0")),
        ("short_max", (0x0112, 3, 1, struct.pack("<H", 65535))),
        ("long_max", (0x0112, 4, 1, struct.pack("<I", 2**32 - 1))),
        ("two_values", (0x0112, 3, 2, struct.pack("<HH", 6, 6))),
        ("rational", (0x0112, 5, 1, struct.pack("<I", 0xFFFF))),
    ):
        exif = _raw_exif([entry])
        w.add(f"exif/orientation_{label}.jpg", _save(rgb, "JPEG", exif=exif), "ok")
        w.add(f"exif/orientation_{label}.webp", _save(rgb, "WEBP", exif=exif), "ok")
    for label, res in (("zero", (0, 1)), ("max", (4294967295, 1)), ("div0", (1, 0))):
        for unit in (2, 3):
            exif = _raw_exif(
                [
                    (0x011A, 5, 1, b"\0\0\0\0"),  # rational offsets patched below
                    (0x011B, 5, 1, b"\0\0\0\0"),
                    (0x0128, 3, 1, struct.pack("<H", unit)),
                ]
            )
            # put the two rationals after the IFD and point the entries at them
            tail = struct.pack("<II", *res)
            start = len(exif) - 6  # offsets count from the TIFF header
            body = bytearray(exif + tail + tail)
            struct.pack_into("<I", body, 6 + 2 + 8 + 8, start)
            struct.pack_into("<I", body, 6 + 2 + 12 + 8 + 8, start + 8)
            w.add(
                f"exif/resolution_{label}_unit{unit}.jpg",
                _save(rgb, "JPEG", exif=bytes(body)),
                "ok",
            )
    w.add("exif/dpi_max_jfif.jpg", _save(rgb, "JPEG", dpi=(65535, 65535)), "ok")
    w.add("exif/dpi_max_tiff.tif", _save(rgb, "TIFF", dpi=(4294967295, 4294967295)), "ok")
    w.add(
        "exif/dpi_zero_png.png",
        png_with_chunk(_save(rgb, "PNG") or b"", b"pHYs", struct.pack(">IIB", 0, 0, 1)),
        "ok",
    )
    w.add(
        "exif/dpi_max_png.png",
        png_with_chunk(
            _save(rgb, "PNG") or b"", b"pHYs", struct.pack(">IIB", 2**32 - 1, 2**32 - 1, 1)
        ),
        "ok",
    )
    many = {0xC000 + i: i for i in range(3000)}
    w.add("exif/ifd_3000_tags.png", _save(rgb, "PNG", exif=_exif(many)), "ok")
    w.add("exif/ifd_3000_tags.webp", _save(rgb, "WEBP", exif=_exif(many)), "ok")
    w.add("exif/description_60k.jpg", _save(rgb, "JPEG", exif=_exif({0x010E: "d" * 60000})), "ok")
    w.add(
        "exif/makernote_garbage.jpg",
        _save(rgb, "JPEG", exif=_exif({0x010F: "cam"}, {0x927C: bytes(range(256)) * 50})),
        "ok",
    )
    w.add(
        "exif/exif_ifd_offset_past_end.jpg",
        _save(rgb, "JPEG", exif=_raw_exif([(0x8769, 4, 1, struct.pack("<I", 0xFFFFFF00))])),
        "ok",
    )
    w.add(
        "exif/ifd_loop.jpg",
        _save(rgb, "JPEG", exif=_raw_exif([(0x0112, 3, 1, struct.pack("<H", 6))], next_ifd=8)),
        "ok",
    )
    w.add(
        "exif/count_huge.jpg",
        _save(rgb, "JPEG", exif=_raw_exif([(0x010F, 2, 0x7FFFFFFF, b"\x10\0\0\0")])),
        "ok",
    )
    w.add(
        "exif/not_tiff_inside.jpg",
        _save(rgb, "JPEG", exif=b"Exif\0\0garbage, not a TIFF header"),
        "ok",
    )
    w.add("exif/garbage.png", png_with_chunk(_save(rgb, "PNG") or b"", b"eXIf", b"\xff" * 64), "ok")
    w.add(
        "exif/gps_and_sub_ifds.webp",
        _save(rgb, "WEBP", exif=_exif({0x0112: 8}, {0x9003: "2024:01:01 00:00:00"})),
        "ok",
    )


def _profiles(w: _Writer) -> None:
    rgb = Image.fromarray(_rgb(20, 12, 11))
    cmyk = rgb.convert("CMYK")
    garbage = bytes(np.random.default_rng(5).integers(0, 256, 400, dtype=np.uint8))
    srgb = srgb_icc()
    for fmt, suffix in (("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("TIFF", "tif")):
        w.add(f"icc/srgb.{suffix}", _save(rgb, fmt, icc_profile=srgb), "ok")
        w.add(f"icc/garbage.{suffix}", _save(rgb, fmt, icc_profile=garbage), "ok")
        w.add(f"icc/truncated_srgb.{suffix}", _save(rgb, fmt, icc_profile=srgb[:200]), "ok")
        w.add(f"icc/lab_on_rgb.{suffix}", _save(rgb, fmt, icc_profile=lab_icc()), "ok")
    w.add("icc/cmyk_profile.jpg", _save(cmyk, "JPEG", icc_profile=cmyk_icc()), "ok")
    w.add("icc/cmyk_garbage_profile.jpg", _save(cmyk, "JPEG", icc_profile=garbage), "ok")
    w.add("icc/cmyk_srgb_profile.jpg", _save(cmyk, "JPEG", icc_profile=srgb), "ok")
    w.add("icc/gray_with_srgb.png", _save(rgb.convert("L"), "PNG", icc_profile=srgb), "ok")


def _same_stems(w: _Writer) -> None:
    rgb = Image.fromarray(_rgb(20, 16, 13))
    for fmt, suffix in (("BMP", "bmp"), ("GIF", "gif"), ("JPEG", "jpg"), ("PNG", "png")):
        w.add(f"stems/hopper.{suffix}", _save(rgb, fmt), "ok", "same stem as its neighbours")
    w.add("stems/Photo.png", _save(rgb, "PNG"), "ok", "same stem, other case")
    w.add("stems/photo.JPG", _save(rgb, "JPEG"), "ok", "same stem, other case")
    w.add("stems/hopper_x2.png.tiff", _save(rgb, "TIFF"), "ok", "looks like our output name")


def _huge_headers(w: _Writer) -> None:
    rgb = Image.fromarray(_rgb(16, 12, 17))
    base = _save(rgb, "PNG") or b""
    text = np.random.default_rng(2).integers(32, 127, 900_000, dtype=np.uint8).tobytes()
    w.add("huge/png_text_900k.png", png_with_chunk(base, b"tEXt", b"Comment\0" + text), "ok")
    w.add(
        "huge/png_ztxt_bomb.png",
        png_with_chunk(base, b"zTXt", b"Comment\0\0" + zlib.compress(b"z" * 50_000_000, 9)),
        "either",
    )
    w.add(
        "huge/png_itxt_4mb.png",
        png_with_chunk(base, b"iTXt", b"XML\0\0\0\0\0" + b"<" * 4_000_000),
        "either",
    )
    w.add("huge/png_unknown_chunk_2mb.png", png_with_chunk(base, b"blOb", b"\0" * 2_000_000), "ok")
    jpeg = _save(rgb, "JPEG") or b""
    comments = b"".join(b"\xff\xfe" + struct.pack(">H", 65000) + b"c" * 64998 for _ in range(20))
    w.add("huge/jpeg_20_comments.jpg", jpeg[:2] + comments + jpeg[2:], "ok")
    w.add("huge/gif_comment.gif", _save(_image("P", 16, 12), "GIF", comment=b"g" * 200_000), "ok")


def _broken(w: _Writer) -> None:
    w.add("broken/empty.png", b"", "fail", "empty")
    w.add("broken/one_byte.jpg", b"\xff", "fail", "one byte")
    w.add("broken/text.png", b"just some words, not pixels\n" * 20, "fail", "text")
    w.add("broken/page.webp", b"<!doctype html><html><body>404</body></html>\n", "fail", "HTML")
    w.add("broken/archive.jpg", b"PK\x03\x04" + bytes(200), "fail", "a zip")
    w.add("broken/png_60000x60000.png", png_header(60000, 60000), "fail", "too large")
    w.add("broken/png_header_only.png", png_header(16, 16), "fail", "no pixel data")
    w.add(
        "broken/png_bad_ihdr_crc.png", b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x0dIHDR" + bytes(17), "fail"
    )
    w.add("broken/jpeg_soi_only.jpg", b"\xff\xd8", "fail", "SOI only")
    w.add("broken/gif_header_only.gif", b"GIF89a\x10\x00\x10\x00\x00\x00\x00", "fail")
    w.add("broken/bmp_huge_width.bmp", bmp(2**31 - 1, 2, 24, b""), "fail", "lying header")
    w.add("broken/bmp_zero_size.bmp", bmp(0, 0, 24, b""), "fail")
    w.add("broken/tiff_ifd_past_end.tif", b"II*\0" + struct.pack("<I", 10**9), "fail")
    w.add("broken/tiff_header_only.tif", b"MM\0*\0\0\0\x08\0\0", "fail")
    w.add("broken/webp_riff_only.webp", b"RIFF\x10\0\0\0WEBPVP8 ", "fail")
    w.add("broken/qoi_header_only.qoi", b"qoif" + struct.pack(">II", 16, 16) + b"\x04\x00", "fail")
    w.add("broken/dds_header_only.dds", b"DDS " + struct.pack("<I", 124) + bytes(120), "fail")
    w.add(
        "broken/psd_header_only.psd",
        b"8BPS\0\1" + bytes(6) + struct.pack(">HIIHH", 3, 16, 16, 8, 3),
        "fail",
    )
    w.add("broken/ico_no_entries.ico", b"\0\0\1\0\0\0", "fail")
    w.add("broken/jp2_signature_only.jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n", "fail")
    w.add("broken/ppm_header_only.ppm", b"P6\n16 16\n255\n", "fail")
    w.add("broken/tga_zero_size.tga", bytes(3) + b"\x02" + bytes(14), "fail")
    w.add("broken/png_16_bad_crc.png", _corrupt_crc(png16(_ramp16(8, 8, 3))), "fail")
    w.add("broken/heic_without_data.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "fail")
    w.add("broken/avif_without_data.avif", b"\0\0\0\x18ftypavif\0\0\0\0mif1avif", "fail")
    w.add("broken/.hidden.png", b"hidden: not scanned", "fail")


def _corrupt_crc(data: bytes) -> bytes:
    idat = data.rindex(b"IDAT")
    out = bytearray(data)
    out[idat + 6] ^= 0xFF
    return bytes(out)


_MUTATIONS: tuple[tuple[str, Callable[[bytes, np.random.Generator], bytes], str], ...] = (
    ("cut_header", lambda d, r: d[: min(len(d) - 1, 24)], "fail"),
    ("cut_half", lambda d, r: d[: len(d) // 2], "either"),
    ("flip1", lambda d, r: _flip(d, r, 1), "either"),
    ("flip16", lambda d, r: _flip(d, r, 16), "either"),
    ("head_ff", lambda d, r: _overwrite(d, r, b"\xff\xff\xff\x7f"), "either"),
)


def _flip(data: bytes, rng: np.random.Generator, count: int) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(0, len(out), count):
        out[int(pos)] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _overwrite(data: bytes, rng: np.random.Generator, value: bytes) -> bytes:
    pos = int(rng.integers(4, max(5, min(len(data) - 4, 64))))
    return data[:pos] + value + data[pos + len(value) :]


def _damaged_copies(w: _Writer) -> None:
    rng = np.random.default_rng(2024)
    for name, data in sorted(samples().items()):
        stem, suffix = name.rsplit(".", 1)
        for label, mutate, expect in _MUTATIONS:
            w.add(f"damaged/{stem}_{label}.{suffix}", mutate(data, rng), expect, label)
