"""Which encoder writes the output, in which pixel format, with which options.

Defaults: H.264 (libx264) for MP4, MOV and Matroska, VP9 (libvpx-vp9) for WebM; a source
deeper than 8 bits gets HEVC (libx265) or, in WebM, AV1 (SVT-AV1), in 10 bits, since H.264
High 10 and 10-bit VP9 play on few devices (and this FFmpeg's libvpx has no 10-bit).
``--video-codec`` picks another: h264, hevc, av1, vp9, or any FFmpeg encoder name.

The encoder gets the source's colour tags and chroma layout (4:2:0 unless the source is
4:2:2/4:4:4 and the encoder takes it; an odd output size needs 4:4:4). HDR mastering-display
and content-light metadata go to x265 and SVT-AV1 through their own parameters.
"""

from __future__ import annotations

import functools
import io
import logging
import platform
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from ..errors import UsageError
from .options import VideoOptions
from .source import VideoInfo

__all__ = ["GPL_ENCODERS", "EncoderChoice", "choose_encoder", "new_encoder"]

log = logging.getLogger(__name__)

#: Encoders under the GPL in the FFmpeg that PyAV's wheel bundles (see README, "Video").
GPL_ENCODERS = frozenset({"libx264", "libx265"})

_ENCODERS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264",),
    "avc": ("libx264",),
    "hevc": ("libx265",),
    "h265": ("libx265",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"),
    "vp9": ("libvpx-vp9",),
    "vp8": ("libvpx",),
}
# (8-bit default, deeper default) per container
_DEFAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mp4": (("h264",), ("hevc", "h264", "av1")),
    "mov": (("h264",), ("hevc", "h264")),
    "matroska": (("h264",), ("hevc", "h264", "av1")),
    "webm": (("vp9",), ("av1", "vp9")),
}
_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 28, "libaom-av1": 28, "libvpx-vp9": 28}
_PRESET_OPTION = {"libvpx-vp9": "cpu-used", "libvpx": "cpu-used", "libaom-av1": "cpu-used"}
_PRESET = {"libx264": "medium", "libx265": "medium", "libsvtav1": "8", "libvpx-vp9": "4"}


@dataclass(frozen=True)
class EncoderChoice:
    """One encoder set-up; every segment and the output's stream are opened from it, so all
    share one header (extradata) and the segments join without re-encoding."""

    name: str
    pix_fmt: str
    depth: int  # 8 or 16: the RGB arrays handed to the encoder
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    colors: tuple[int, int, int, int]  # primaries, trc, matrix, range
    options: tuple[tuple[str, str], ...] = field(default=())
    global_header: bool = True

    def settings(self) -> dict[str, Any]:
        """What a resume must find unchanged (JSON-able)."""
        return {
            "encoder": self.name,
            "pix_fmt": self.pix_fmt,
            "size": [self.width, self.height],
            "time_base": str(self.time_base),
            "colors": list(self.colors),
            "options": dict(self.options),
            "global_header": self.global_header,
        }


def _encoder_exists(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:
        return False
    return True


def _resolve(request: str) -> str | None:
    """An encoder name for ``h264``/``hevc``/... or an FFmpeg encoder name; None if absent."""
    for name in _ENCODERS.get(request.lower(), (request,)):
        if _encoder_exists(name):
            return name
    return None


def _formats_of(encoder: str) -> set[str]:
    return {f.name for f in av.Codec(encoder, "w").video_formats or ()}


def _supported_by(container: str, encoder: str) -> bool:
    with av.open(io.BytesIO(), "w", format=container) as probe:
        supported = probe.supported_codecs
    return av.Codec(encoder, "w").name in supported or (
        av.Codec(encoder, "w").canonical_name in supported
    )


def _pix_fmt(encoder: str, depth: int, chroma: str, width: int, height: int) -> str | None:
    """The encoder's pixel format for this depth and chroma layout, or None."""
    have = _formats_of(encoder)
    suffix = "10le" if depth > 8 else ""
    odd = width % 2 or height % 2
    wanted = [chroma] if not odd or chroma == "444" else ["444"]
    if not odd and chroma != "420":
        wanted.append("420")
    for ch in wanted:
        name = f"yuv{ch}p{suffix}"
        if name in have:
            return name
    return None


def choose_encoder(
    info: VideoInfo, width: int, height: int, container: str, opts: VideoOptions
) -> EncoderChoice:
    """The encoder for ``info`` upscaled to ``width`` x ``height`` in ``container``; raises
    UsageError (before any work) when the asked codec is missing, cannot go in that container
    or cannot keep the source's bit depth."""
    depth = 16 if info.depth > 8 else 8
    if opts.codec:
        encoder = _resolve(opts.codec)
        if encoder is None or av.Codec(encoder, "w").type != "video":
            raise UsageError(
                f"no video encoder {opts.codec!r} in this FFmpeg: use h264, hevc, av1 or vp9"
            )
        candidates = [encoder]
    else:
        names = _DEFAULTS[container][1 if depth > 8 else 0]
        candidates = [e for e in (_resolve(n) for n in names) if e is not None]
        if not candidates:
            raise UsageError(f"this FFmpeg has no encoder for {container} video")
    problems = []
    for encoder in candidates:
        if not _supported_by(container, encoder):
            problems.append(f"{encoder} cannot go in {container}")
            continue
        pix_fmt = _pix_fmt(encoder, depth, info.chroma, width, height)
        if pix_fmt is None:
            what = "10-bit" if depth > 8 else "8-bit"
            odd = " at an odd size" if width % 2 or height % 2 else ""
            problems.append(f"{encoder} here cannot encode {what} {info.chroma}{odd}")
            continue
        return EncoderChoice(
            name=encoder,
            pix_fmt=pix_fmt,
            depth=depth,
            width=width,
            height=height,
            time_base=info.time_base,
            rate=info.rate,
            colors=_colors(info),
            options=tuple(sorted(_options(encoder, opts, info).items())),
            global_header=_needs_global_header(container),
        )
    raise UsageError("; ".join(problems) + " (try another --video-codec or container)")


def _needs_global_header(container: str) -> bool:
    with av.open(io.BytesIO(), "w", format=container) as probe:
        return bool(probe.format.flags & av.format.Flags.global_header.value)


def _colors(info: VideoInfo) -> tuple[int, int, int, int]:
    c = info.colors
    if info.animation or (c.matrix == 0 and c.primaries in (1, 2)):
        # RGB sources (GIF, WebP, RGB codecs): written as BT.709, limited range
        return (1, 1, 1, 1)
    return (c.primaries, c.trc, c.matrix if c.matrix != 0 else 1, c.range or 1)


def _options(encoder: str, opts: VideoOptions, info: VideoInfo) -> dict[str, str]:
    so = av.CodecContext.create(encoder, "w").supported_options
    known = {o.name for o in (*so.private, *so.generic)}
    out: dict[str, str] = {}
    crf = opts.crf if opts.crf is not None else _CRF.get(encoder)
    if crf is not None and "crf" in known:
        out["crf"] = str(crf)
    preset_key = _PRESET_OPTION.get(encoder, "preset")
    preset = opts.preset or _PRESET.get(encoder)
    if preset is not None and preset_key in known:
        out[preset_key] = preset
    if encoder == "libx264" and _has_avx512():
        # x264's AVX-512 code makes the output vary from run to run (seen with x264 165: about
        # one segment in eight differs), which would break "a resume gives the same file"
        out["x264-params"] = "asm=avx2"
    elif encoder == "libx265":
        params = ["log-level=error"]
        params += _x265_hdr(info)
        out["x265-params"] = ":".join(params)
    elif encoder == "libsvtav1":
        hdr = _svt_hdr(info)
        if hdr:
            out["svtav1-params"] = ":".join(hdr)
    elif encoder == "libvpx-vp9":
        out.update({"b": "0", "row-mt": "1", "deadline": "good"})
    return out


@functools.cache
def _has_avx512() -> bool:
    """An x86-64 CPU with AVX-512 (Linux: /proc/cpuinfo; elsewhere assumed not)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split()
                    return "avx512f" in flags and "avx2" in flags
    except OSError:
        pass
    return False


# -- HDR static metadata --------------------------------------------------------------------
def _mastering(info: VideoInfo) -> tuple[list[float], float, float] | None:
    """(G, B, R, white point as x/y pairs; max and min luminance in cd/m2) from FFmpeg's
    AVMasteringDisplayMetadata, or None."""
    raw = info.mastering_display
    if not raw or len(raw) < 88:
        return None
    vals = struct.unpack("<22i", raw[:88])
    rat = [vals[i] / vals[i + 1] if vals[i + 1] else 0.0 for i in range(0, 20, 2)]
    has_primaries, has_luminance = vals[20], vals[21]
    if not (has_primaries and has_luminance):
        return None
    r, g, b, wp, lum = rat[0:2], rat[2:4], rat[4:6], rat[6:8], rat[8:10]
    return [*g, *b, *r, *wp], lum[1], lum[0]


def _light(info: VideoInfo) -> tuple[int, int] | None:
    raw = info.content_light
    if not raw or len(raw) < 8:
        return None
    cll, fall = struct.unpack("<2I", raw[:8])
    return cll, fall


def _x265_hdr(info: VideoInfo) -> list[str]:
    out = []
    m = _mastering(info)
    if m is not None:
        xy, lmax, lmin = m
        p = [round(v / 0.00002) for v in xy]
        out.append(
            f"master-display=G({p[0]},{p[1]})B({p[2]},{p[3]})R({p[4]},{p[5]})"
            f"WP({p[6]},{p[7]})L({round(lmax / 0.0001)},{round(lmin / 0.0001)})"
        )
    light = _light(info)
    if light is not None:
        out.append(f"max-cll={light[0]},{light[1]}")
    if out:
        out.append("hdr10=1")
    return out


def _svt_hdr(info: VideoInfo) -> list[str]:
    out = []
    m = _mastering(info)
    if m is not None:
        xy, lmax, lmin = m
        v = [f"{x:.4f}" for x in xy]
        out.append(
            f"mastering-display=G({v[0]},{v[1]})B({v[2]},{v[3]})R({v[4]},{v[5]})"
            f"WP({v[6]},{v[7]})L({lmax:.4f},{lmin:.4f})"
        )
    light = _light(info)
    if light is not None:
        out.append(f"content-light={light[0]},{light[1]}")
    return out


def new_encoder(choice: EncoderChoice) -> Any:
    """An unopened codec context set up from ``choice`` (opened on first encode)."""
    cc = av.CodecContext.create(choice.name, "w")
    configure(cc, choice)
    return cc


def configure(cc: Any, choice: EncoderChoice) -> None:
    """Set ``cc`` (a fresh encoder context, or an output stream's) from ``choice``."""
    cc.width, cc.height = choice.width, choice.height
    cc.pix_fmt = choice.pix_fmt
    cc.time_base = choice.time_base
    if choice.rate:
        cc.framerate = choice.rate
    primaries, trc, matrix, rng = choice.colors
    cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = primaries, trc, matrix, rng
    cc.thread_count = 0
    cc.options = dict(choice.options)
    if choice.global_header:
        cc.flags |= av.codec.context.Flags.global_header.value
