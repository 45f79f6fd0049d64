"""Does a GPU give the same pixels with big tiles as with the reference's 200 px tiles?

    python bench/gpu_check.py [--device 0] [--models a,b] [--size WxH]

For each model: our pipeline with tile 200 (the reference's size), with the automatic tile,
with fixed tiles of 400 and 800, and the automatic tiles run one by one without the
overlapping stages; then our PNG writer's bytes decoded again. Prints PSNR of each against
the 200 px run (seam-free tiles agree to > 60 dB when the device computes right), and what
the GPU tile check (``upscaler_edge/gpu_windows.py``) measured, from which "auto" is chosen.
A device found unfaithful in fp16 runs the bigger fixed tiles in fp32 (each is labelled).
Then the 800 px tile in fp16 without the check under several ncnn option sets (``--variants``,
through ``UPSCALER_EDGE_NCNN_OPT``): which of ncnn's code paths (winograd, sgemm, fp16
arithmetic, fp16 storage) makes big windows drift, and what turning it off costs.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from upscaler_edge.imageio import Frame, Picture, encode_picture
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler, _Job
from upscaler_edge.tile_work import _precise_for

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
    ap.add_argument(
        "--variants",
        default=";".join(VARIANTS),
        help="';'-separated ncnn option sets tried on the big fixed tile in fp16 without the "
        "check (UPSCALER_EDGE_NCNN_OPT), '' for none",
    )
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
            eng = up.engine_for(
                plan.spec, plan.device, precise=_precise_for(up, plan.spec, plan.device, tiles)
            )
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
            for label, tile in (("auto", 0), ("400", 400), ("800", 800)):
                t_opts = opts.replace(tile=tile)
                tl = up.tiles(w, h, plan, t_opts)
                fp32 = _precise_for(up, plan.spec, plan.device, tl)
                print(f"  {label}: ran in {'fp32' if fp32 else 'fp16'}", flush=True)
            base = results["200"]
            for label, arr in results.items():
                if label != "200":
                    diff = int(np.abs(arr.astype(int) - base).max())
                    db = psnr(arr, base)
                    print(f"  {label} vs 200: {db:.1f} dB, max diff {diff}", flush=True)
            variants(args, pic, model, base)


#: ncnn option sets tried on a big fp16 tile: which code path drifts (docs/eval/device.md)
VARIANTS = [
    "",
    "use_winograd_convolution=0",
    "use_sgemm_convolution=0",
    "use_fp16_arithmetic=0",
    "use_fp16_packed=0,use_fp16_storage=0,use_fp16_arithmetic=0",
]


def variants(args: argparse.Namespace, pic: Picture, model: str, base: np.ndarray) -> None:
    """The 800 px tile in fp16 as asked (the check off) under each ncnn option set, against
    the product's 200 px run: which of ncnn's paths makes big windows drift on this GPU."""
    if not args.variants:
        return
    saved = {k: os.environ.get(k) for k in ("UPSCALER_EDGE_NCNN_OPT", "UPSCALER_EDGE_GPU_CHECK")}
    os.environ["UPSCALER_EDGE_GPU_CHECK"] = "0"
    try:
        for variant in args.variants.split(";"):
            os.environ["UPSCALER_EDGE_NCNN_OPT"] = variant
            opts = Options(model=model, device=args.device, tile=800)
            with Upscaler() as up:
                small = Picture([Frame(np.ascontiguousarray(pic.frames[0].rgb[:64, :64]))], "PNG")
                up.upscale_picture(small, opts)  # load the engine, build its pipelines
                t = time.perf_counter()
                out = up.upscale_picture(pic, opts).frames[0].rgb
                took = time.perf_counter() - t
            diff = int(np.abs(out.astype(int) - base).max())
            print(
                f"  800 fp16 [{variant or 'ncnn defaults'}]: {psnr(out, base):.1f} dB, "
                f"max diff {diff} against 200, {took:.2f} s",
                flush=True,
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    main()
