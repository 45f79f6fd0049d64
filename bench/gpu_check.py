"""Does a GPU give the same pixels with big tiles as with the reference's 200 px tiles?

    python bench/gpu_check.py [--device 0] [--models a,b] [--size WxH]

For each model: our pipeline with tile 200 (the reference's size), with the automatic tile,
with fixed tiles of 400 and 800, and the automatic tiles run one by one without the
overlapping stages; then our PNG writer's bytes decoded again. Prints PSNR of each against
the 200 px run (seam-free tiles agree to > 60 dB when the device computes right), and what
the GPU tile check (``upscaler_edge/gpu_windows.py``) measured, from which "auto" is chosen.
A device found unfaithful in fp16 runs the bigger fixed tiles in fp32.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from upscaler_edge.imageio import Frame, Picture, encode_picture
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler, _Job

# bench/openvino.py would shadow the openvino package (imported when an engine opens)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def photo(w: int, h: int) -> np.ndarray:
    from importlib.resources import files

    with Image.open(str(files("upscaler_edge") / "data" / "sample.jpg")) as im:
        return np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.LANCZOS))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="0")
    ap.add_argument("--models", default="realesr-animevideov3-x4,realesrgan-x4plus")
    ap.add_argument("--size", default="1920x1080")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    pic = Picture([Frame(photo(w, h))], "PNG")
    with Upscaler() as up:
        for model in args.models.split(","):
            opts = Options(model=model, device=args.device)
            plan = up.prepare(opts)
            results = {}
            for label, tile in (("200", 200), ("auto", 0), ("400", 400), ("800", 800)):
                t = time.perf_counter()
                out = up.upscale_picture(pic, opts.replace(tile=tile), plan=plan).frames[0].rgb
                n = len(up.tiles(w, h, plan, opts.replace(tile=tile)))
                results[label] = out
                took = time.perf_counter() - t
                print(f"{model} tile {label}: {n} tiles, {took:.2f} s", flush=True)
            tiles = up.tiles(w, h, plan, opts)
            eng = up.engine_for(plan.spec, plan.device)
            seq = np.empty_like(results["200"])
            job = _Job(len(tiles), None, None)
            for tl in tiles:  # one by one, no overlapping threads
                up._run_tile(pic.frames[0].rgb, seq, tl, plan.spec, eng, False, 255.0)
                job.step()
            results["auto, sequential"] = seq
            data, _ = encode_picture(Picture([Frame(results["auto"])], "PNG"), "png")
            with Image.open(io.BytesIO(data)) as back:
                results["auto, PNG round trip"] = np.asarray(back.convert("RGB"))
            verdict = up.gpu_verdict(plan.spec, plan.device)  # what "auto" was chosen from
            for t in verdict.trials if verdict else ():
                print(
                    f"  tile check: window {t.side} {'fp32' if t.precise else 'fp16'}: "
                    f"{t.psnr:.1f} dB, max diff {t.max_diff} against the CPU, "
                    f"{t.s_per_mpx:.3f} s/MP{'' if t.ok else ' (not faithful)'}",
                    flush=True,
                )
            base = results["200"]
            for label, arr in results.items():
                if label != "200":
                    diff = int(np.abs(arr.astype(int) - base).max())
                    db = psnr(arr, base)
                    print(f"  {label} vs 200: {db:.1f} dB, max diff {diff}", flush=True)


if __name__ == "__main__":
    main()
