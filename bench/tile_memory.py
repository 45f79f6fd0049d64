"""Peak RSS of one inference per padded-tile size, per model: sizes the manifest's
``work_bytes_per_pixel`` (the CPU auto tile keeps the working set under a budget) and, with
``--device N`` on lavapipe (whose device memory is host memory, so RSS shows it), the same on
a Vulkan device (fp32 storage there: an upper bound for GPUs with fp16 storage; measured
2026-11: x4plus 23 KB, the compact net 1.9 KB per window pixel).

    python bench/tile_memory.py [--device N] [MODEL ...]

Each measurement is a fresh process: peak RSS over three extracts (the second one peaks
higher than the first: steady state is what a tiled job sees) minus the RSS after loading the
model, divided by the window's pixel count.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
from upscaler_edge.engine import Engine, pick_device
from upscaler_edge.models import default_registry
name, side, dev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
eng = Engine(default_registry().resolve(name), pick_device(dev))
x = np.random.default_rng(0).random((3, side, side), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    eng.infer(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024}))
"""


def main() -> None:
    args = sys.argv[1:]
    device = "cpu"
    if args[:1] == ["--device"]:
        device, args = args[1], args[2:]
    names = args or ["realesr-animevideov3-x4", "realesrgan-x4plus"]
    gpu = device != "cpu"
    print(f"device {device}")
    print("| model | window | base MB | peak MB | bytes per window pixel | slope |")
    print("|---|---|---|---|---|---|")
    for name in names:
        if gpu:  # lavapipe is slow: smaller windows, the slope between them
            sides = [64, 128] if "x4plus" in name else [128, 256]
        else:
            sides = [96, 160, 256] if "x4plus" in name else [128, 256, 384]
        last: tuple[int, float] | None = None
        for side in sides:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, name, str(side), device],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out)
            per_px = (r["peak_mb"] - r["base_mb"]) * 2**20 / side**2
            slope = ""
            if last is not None:
                slope = f"{(r['peak_mb'] - last[1]) * 2**20 / (side**2 - last[0] ** 2):.0f}"
            last = (side, r["peak_mb"])
            print(
                f"| {name} | {side}x{side} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} "
                f"| {per_px:.0f} | {slope} |"
            )


if __name__ == "__main__":
    main()
