"""The command line's arguments: the ``argparse`` parser and the parsed request as ``Options``.

``upscaler_edge.cli`` parses with :func:`build_parser` and hands the result to ``run``,
which turns the image flags into library ``Options`` with :func:`options_from_args`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import __version__
from .options import DEFAULT_MODEL, Options

__all__ = ["PROG", "build_parser", "options_from_args"]

PROG = "upscaler-edge"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Real-ESRGAN super-resolution on your Vulkan GPU or CPU (ncnn).",
        epilog="Also: --gui opens the desktop window, --bot runs the Telegram bot.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=Path,
        help="output file (one input; its suffix picks the format) or folder; "
        "default: NAME_x4.png beside each input",
    )
    p.add_argument(
        "-m",
        "--model",
        default=DEFAULT_MODEL,
        help=f"model name (default {DEFAULT_MODEL}; see --list-models)",
    )
    p.add_argument(
        "-s",
        "--scale",
        type=int,
        help="output scale (default: the model's; smaller ones resize with Lanczos)",
    )
    p.add_argument(
        "-n",
        "--denoise",
        type=int,
        metavar="N",
        help="denoise level, numbered as the model's reference tool does: Real-CUGAN -1 "
        "conservative, 0 none, 1-3; waifu2x -1 none, 0-3 (default: the plain model; "
        "--list-models shows each model's levels)",
    )
    p.add_argument(
        "-t",
        "--tile",
        type=int,
        default=0,
        help="tile size in input pixels, >= 32; 0 = auto (default)",
    )
    p.add_argument(
        "-d",
        "--device",
        default="auto",
        help="auto (default), cpu (OpenVINO if installed, else ncnn), cpu-ncnn, cpu-openvino, "
        "openvino-gpu, openvino-npu, a Vulkan GPU index (see --list-devices), a list of them "
        "(0,1 or 0,cpu: files, or one image's tiles, are spread over them) or all (every GPU)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="OpenVINO's precision: auto (default: bf16 on CPUs with AMX/AVX512-BF16 for "
        "models where it was measured to keep quality), fp32 or bf16",
    )
    p.add_argument(
        "-f",
        "--format",
        help="output format: png (default), jpg, webp, tiff, bmp, tga, gif, ... "
        "(default: from -o's suffix, else png)",
    )
    p.add_argument("--quality", type=int, default=95, help="jpg/webp quality 1-100 (default 95)")
    p.add_argument(
        "--tta", action="store_true", help="test-time augmentation: 8x slower, slightly cleaner"
    )
    p.add_argument(
        "--alpha",
        choices=("model", "bicubic"),
        default="model",
        help="upscale transparency with the model (default) or bicubic",
    )
    p.add_argument(
        "--all-frames",
        action="store_true",
        help="animated GIF/WebP/PNG: every frame, not just the first",
    )
    p.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="descend into subfolders (mirrored under OUT)",
    )
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--max-megapixels", type=float, default=50.0, help="refuse larger inputs (default 50)"
    )
    v = p.add_argument_group("video (mp4, mkv, webm, mov, ...; see README, Video)")
    v.add_argument(
        "--video-codec",
        metavar="CODEC",
        help="h264, hevc, av1, vp9 or an FFmpeg encoder (default: h264; vp9 for webm; "
        "hevc/av1 for 10-bit input)",
    )
    v.add_argument("--crf", type=int, help="encoder quality, lower is better (default per codec)")
    v.add_argument("--preset", help="encoder speed preset (default: medium; svt-av1 8; vp9 4)")
    v.add_argument(
        "--segment",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="encode in independent pieces of this length; a resume redoes at most one "
        "(default 10)",
    )
    v.add_argument(
        "--no-resume", action="store_true", help="start over instead of resuming a killed run"
    )
    c = p.add_argument_group("several PCs (see README, Several PCs)")
    c.add_argument(
        "--cluster",
        nargs="?",
        const="saved",
        metavar="URL",
        help="send the work to the cluster (the one this PC started or joined, or URL)",
    )
    c.add_argument("--token", help="with --cluster URL: the cluster's token")
    c.add_argument("--tls-pin", help="with --cluster URL: the coordinator's certificate hash")
    p.add_argument("--list-models", action="store_true", help="list the models and exit")
    p.add_argument(
        "--import-model",
        metavar="FILE",
        type=Path,
        help="import a super-resolution model (.onnx, .pth, .pt, .safetensors, .ckpt) into "
        "the user models folder, checked against the original; then -m NAME works",
    )
    p.add_argument("--name", help="with --import-model: the model's name (default: the file's)")
    p.add_argument("--list-devices", action="store_true", help="list the compute devices and exit")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    return p


def options_from_args(args: argparse.Namespace, fmt: str | None) -> Options:
    """The parsed flags as ``Options``, with ``fmt`` the output format already decided."""
    return Options(
        model=args.model,
        scale=args.scale,
        tile=args.tile,
        device=args.device,
        format=fmt,
        quality=args.quality,
        tta=args.tta,
        alpha=args.alpha,
        all_frames=args.all_frames,
        overwrite=args.overwrite,
        max_pixels=max(1, int(args.max_megapixels * 1_000_000)),
        denoise=args.denoise,
        precision=args.precision,
    )
