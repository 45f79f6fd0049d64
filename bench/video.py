"""Video throughput against inference alone, and memory on a long clip.

    python bench/video.py                      # CPU (needs pip install -e '.[bench]')
    python bench/video.py --device 0 --size 640x360 --frames 120   # a Vulkan GPU

(a) and (b) alternate --repeat times and the best of each counts, so a busy machine
hurts both alike.

The clip: a pan with a slow zoom across scikit-image's astronaut (a real 512x512 photo,
public domain), H.264 at 30 fps with an AAC track, made here with PyAV. Measured, with the
same model, device and tile size:

(a) inference alone: the clip's frames decoded into memory first, then
    ``Upscaler.upscale_picture`` on each, the model already loaded: the ceiling;
(b) ``upscale_video`` on the clip with that loaded model: decode, inference and encode
    running concurrently, segments made durable, the audio copied and the output joined and
    written atomically, from the first frame read to the output in place;
(c) a fresh ``python -m upscaler_edge`` on the clip (start-up and model load included).

Prints frames per second of each, b/a (the target is >= 0.9), and the peak RSS of a fresh
process running a short and a long clip (the same frames repeated), which should match: memory
does not grow with the length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from upscaler_edge.imageio import Frame, Picture
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler
from upscaler_edge.video import upscale_video
from upscaler_edge.video.source import open_reader

RSS_CHILD = r"""
import json, resource, sys
from upscaler_edge.options import Options
from upscaler_edge.video import VideoOptions, upscale_video
src, dst, model, scale, device = sys.argv[1:6]
r = upscale_video(src, dst, Options(model=model, scale=int(scale), device=device),
                  VideoOptions(segment_seconds=2.0))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"frames": r.frames, "seconds": r.seconds, "peak_rss": rss}))
"""


def photo() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


def make_clip(path: Path, width: int, height: int, frames: int, repeat: int = 1) -> Path:
    """A pan with a slow zoom across the photo; ``repeat`` plays it that many times."""
    from PIL import Image

    src = Image.fromarray(photo())
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        n = 0
        for _ in range(repeat):
            for i in range(frames):
                t = i / max(1, frames - 1)
                zoom = 1.0 + 0.3 * t
                w, h = width * 1.6 / zoom, height * 1.6 / zoom
                x0 = (512 - w) * t
                y0 = (512 - h) * (0.5 + 0.3 * np.sin(2 * np.pi * t))
                box = (x0, y0, x0 + w, y0 + h)
                im = src.resize((width, height), Image.Resampling.BICUBIC, box=box)
                f = av.VideoFrame.from_ndarray(np.asarray(im), format="rgb24")
                f.pts = n
                n += 1
                out.mux(v.encode(f))
        out.mux(v.encode(None))
        samples = int(n / 30 * 48000)
        for start in range(0, samples, 1024):
            k = np.arange(start, start + 1024)
            wave = (0.1 * np.sin(2 * np.pi * 220 * k / 48000)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, start
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return path


def inference_only(up: Upscaler, opts: Options, clip: Path) -> tuple[float, int]:
    """Seconds for upscale_picture over every frame (decoded beforehand), and the count."""
    with open_reader(clip) as reader:
        frames = [f.rgb for f in reader.frames()]
    plan = up.prepare(opts)
    t = time.perf_counter()
    for rgb in frames:
        up.upscale_picture(Picture([Frame(rgb=rgb)], "video"), opts, plan=plan)
    return time.perf_counter() - t, len(frames)


def peak_rss(clip: Path, dst: Path, args: argparse.Namespace) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RSS_CHILD,
            str(clip),
            str(dst),
            args.model,
            str(args.scale),
            args.device,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (default) or a Vulkan index")
    ap.add_argument("--model", default="realesr-animevideov3")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--size", default="128x96", help="clip size WxH (default 128x96)")
    ap.add_argument("--frames", type=int, default=48, help="clip length (default 48)")
    ap.add_argument("--repeat", type=int, default=3, help="a and b alternate; the best counts")
    ap.add_argument("--memory-size", default="64x48", help="memory clips' size (default 64x48)")
    ap.add_argument("--long", type=int, default=1800, help="long clip frames (default 1800)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    results: dict[str, object] = {
        "size": [width, height],
        "frames": args.frames,
        "model": args.model,
        "scale": args.scale,
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        clip = make_clip(tmp / "clip.mp4", width, height, args.frames)
        opts = Options(model=args.model, scale=args.scale, device=args.device)
        with Upscaler(opts) as up:
            plan = up.prepare(opts)
            first = np.zeros((height, width, 3), np.uint8)
            up.upscale_picture(Picture([Frame(rgb=first)], "video"), opts, plan=plan)  # load
            # the pipeline pins one tile size for the job: time inference with the same
            from upscaler_edge.video.transcode import _pin_tile

            with open_reader(clip) as reader:
                tile = _pin_tile(up, plan, opts, reader.info)
            pinned = opts.replace(tile=tile)
            best_a = best_b = float("inf")
            for _ in range(args.repeat):  # alternate, so a busy machine hurts both alike
                inf_s, n = inference_only(up, pinned, clip)
                best_a = min(best_a, inf_s)
                t = time.perf_counter()
                upscale_video(clip, tmp / "out.mp4", opts.replace(overwrite=True), upscaler=up)
                best_b = min(best_b, time.perf_counter() - t)
            results.update(
                device=plan.device.name,
                tile=tile,
                inference_fps=n / best_a,
                video_fps=n / best_b,
                ratio=best_a / best_b,
            )
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable, "-m", "upscaler_edge", str(clip), "-o", str(tmp / "cli.mp4"),
                "-m", args.model, "-s", str(args.scale), "-d", args.device, "-q",
            ],
            check=True,
        )  # fmt: skip
        cli_s = time.perf_counter() - t
        results["cli_fps"] = args.frames / cli_s
        results["cli_seconds"] = cli_s
        if not args.skip_memory:
            mw, mh = (int(v) for v in args.memory_size.lower().split("x"))
            short_clip = make_clip(tmp / "short.mp4", mw, mh, 60)
            long_clip = make_clip(tmp / "long.mp4", mw, mh, 60, max(1, args.long // 60))
            results["memory"] = {
                "size": [mw, mh],
                "short": peak_rss(short_clip, tmp / "short_out.mp4", args),
                "long": peak_rss(long_clip, tmp / "long_out.mp4", args),
            }
    print(
        f"clip {width}x{height}, {args.frames} frames, {args.model} x{args.scale} on "
        f"{results['device']} (tile {results['tile']}), best of {args.repeat}"
    )
    print(f"(a) inference alone      {results['inference_fps']:8.2f} frames/s")
    print(
        f"(b) upscale_video        {results['video_fps']:8.2f} frames/s   "
        f"b/a = {results['ratio']:.3f} (target >= 0.9)"
    )
    print(
        f"(c) fresh CLI process    {results['cli_fps']:8.2f} frames/s   "
        f"({results['cli_seconds']:.1f} s, start-up and model load included)"
    )
    if "memory" in results:
        mem = results["memory"]
        assert isinstance(mem, dict)
        for name in ("short", "long"):
            m = mem[name]
            print(
                f"peak RSS, {name:5s} clip ({mem['size'][0]}x{mem['size'][1]}): "
                f"{m['peak_rss'] / 2**20:7.1f} MB ({m['frames']} frames, "
                f"{m['frames'] / m['seconds']:.1f} frames/s)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
