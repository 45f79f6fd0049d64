"""Peak RSS of one CPU inference per padded-tile size, per model: sizes the manifest's
``work_bytes_per_pixel`` (the CPU auto tile keeps the working set under a budget).

    python bench/tile_memory.py [MODEL ...]

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
name, side = sys.argv[1], int(sys.argv[2])
eng = Engine(default_registry().resolve(name), pick_device("cpu"))
x = np.random.default_rng(0).random((3, side, side), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    eng.infer(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024}))
"""


def main() -> None:
    names = sys.argv[1:] or ["realesr-animevideov3-x4", "realesrgan-x4plus"]
    print("| model | window | base MB | peak MB | bytes per window pixel |")
    print("|---|---|---|---|---|")
    for name in names:
        sides = [96, 160, 256] if "x4plus" in name else [128, 256, 384]
        for side in sides:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, name, str(side)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out)
            per_px = (r["peak_mb"] - r["base_mb"]) * 2**20 / side**2
            print(
                f"| {name} | {side}x{side} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} "
                f"| {per_px:.0f} |"
            )


if __name__ == "__main__":
    main()
