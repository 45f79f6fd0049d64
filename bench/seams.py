"""Seams: tiled output against one whole-image inference, on a real photo, per context size.

    python bench/seams.py                      # realesr-animevideov3-x4, tiles 32 and 64
    python bench/seams.py --model realesrgan-x4plus --size 160 --tiles 64 --contexts 10,32,48

Uses the real pipeline with the manifest's context replaced by each value tried (10 is what
the reference pads every model with). Prints the largest per-pixel difference (/255) and the
PSNR of tiled vs whole; the manifest's ``context`` is the smallest value meeting the targets
(animevideov3: <= 2/255 at any tile >= 32; x4plus: >= 55 dB and <= 12/255 at tile >= 64).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import time

import numpy as np
from PIL import Image

from upscaler_edge import models
from upscaler_edge.imageio import Frame, Picture
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler


def photo(size: int) -> np.ndarray:
    try:
        import skimage.data

        img = skimage.data.astronaut()
        return np.ascontiguousarray(img[40 : 40 + size, 140 : 140 + size])
    except ImportError:  # the bundled sample, when the bench extra is missing
        path = importlib.resources.files("upscaler_edge") / "data" / "sample.jpg"
        with Image.open(str(path)) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:size, :size])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="realesr-animevideov3-x4")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--tiles", default="32,64")
    ap.add_argument("--contexts", default="0,10,16,24")
    args = ap.parse_args()
    src = photo(args.size)
    pic = Picture([Frame(src, None, None)], "PNG", False, None, None, None, None)
    spec = models.default_registry().resolve(args.model)
    opts = Options(model=args.model, device="cpu")
    with Upscaler(opts) as up:
        whole = up.upscale_picture(pic, opts.replace(tile=10_000)).frames[0].rgb.astype(np.int16)
        print(f"{args.model}, {args.size}x{args.size} crop of a real photo, CPU")
        print("| tile | context | max diff /255 | PSNR dB | seconds |")
        print("|---|---|---|---|---|")
        for tile in (int(t) for t in args.tiles.split(",")):
            for ctx in (int(c) for c in args.contexts.split(",")):
                patched = dataclasses.replace(spec, context=ctx)
                plan = dataclasses.replace(up.prepare(opts), spec=patched)
                t = time.perf_counter()
                tiled = up.upscale_picture(pic, opts.replace(tile=tile), plan=plan).frames[0].rgb
                took = time.perf_counter() - t
                diff = np.abs(tiled.astype(np.int16) - whole)
                mse = float(np.mean(diff.astype(np.float64) ** 2))
                db = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
                print(f"| {tile} | {ctx} | {diff.max()} | {db:.1f} | {took:.1f} |")


if __name__ == "__main__":
    main()
