"""How big a GPU tile may be on this device: checked once against the CPU, then cached.

A GPU's heap holds far bigger tiles than the reference's 200 px, and big tiles are much
faster: at 200 px x4plus reads 1.7x the image's pixels for its 48 px of context and pays a
Python round trip per tile. But on an NVIDIA H200 ncnn computed big windows differently
(1080 px tiles were 48 dB from 200 px ones, max diff 28/255; ``docs/eval/device.md``), while
lavapipe and the CPU do not. Whether a size is safe is a fact of the device, its driver, ncnn
and the model, so it is measured on the device before it is used:

- a probe picture (the bundled photo, mirrored to size) runs on the GPU as one window of each
  candidate side: the biggest that fits half the heap budget (at most ``MAX_SIDE``), then
  ``MID_SIDE``; in fp16 (ncnn's default) and, when fp16 fails, in fp32;
- two regions of each window, the centre of the reference's window (shared by all) and the
  window's far corner (where an indexing limit would show first), are computed again on the
  CPU in fp32 (ncnn's CPU path) with the model's context around them;
- a side is faithful when it agrees with the CPU about as well as the reference's tile size
  does on the same GPU (``faithful``).

The verdict lists the faithful (side, precision) choices with their measured speed; the
automatic GPU tile then takes the choice with the least estimated time for each picture
(``pick``), and any GPU job whose windows exceed the largest faithful fp16 side runs in fp32
(``needs_fp32``). Verdicts are cached in the user cache folder by device, driver, ncnn
version, model weights and candidate sides. ``UPSCALER_EDGE_GPU_CHECK=0`` turns the check off
(the reference's tile rule, fp16), as does a software device such as lavapipe.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import user_cache
from .errors import DeviceError
from .tiling import MIN_TILE, Tile, gpu_auto_tile, plan_tiles

if TYPE_CHECKING:
    from .engine import DeviceInfo, TileEngine
    from .models import ModelSpec

__all__ = [
    "MAX_SIDE",
    "MID_SIDE",
    "Choice",
    "Trial",
    "Verdict",
    "candidate_sides",
    "check",
    "checked_on",
    "describe",
    "enabled",
    "faithful",
    "gpu_tiles",
    "max_window_side",
    "needs_fp32",
    "pick",
    "probe_picture",
    "qualifies",
    "reference_side",
    "verdict_for",
]

log = logging.getLogger(__name__)

#: The biggest GPU window side tried (px, context included): ~1 MP, past which compute gains
#: little and nothing is left to overlap with the pasting and the PNG encoding.
MAX_SIDE = 1024
#: The side tried next when the biggest one is not faithful.
MID_SIDE = 512
#: The side of the regions compared with the CPU (input px).
REGION = 24
#: Software Vulkan (lavapipe) keeps the reference's rule: it computes every size alike, and a
#: big probe would take it minutes. Tests turn this on to run the check on a real device.
CHECK_SOFTWARE = False
_VERSION = 1
_lock = threading.Lock()


@dataclass(frozen=True)
class Trial:
    """One window run on the GPU and compared with the CPU."""

    side: int
    precise: bool
    psnr: float  # dB against the CPU, worst of the regions (inf when equal)
    max_diff: int  # /255, worst of the regions
    s_per_mpx: float  # seconds per megapixel of window (second run)
    ok: bool


@dataclass(frozen=True)
class Choice:
    """A faithful way to run big tiles: windows up to ``side`` px a side, fp32 if ``precise``."""

    side: int
    precise: bool
    s_per_mpx: float


@dataclass(frozen=True)
class Verdict:
    choices: tuple[Choice, ...]  # the reference's side (fp16) first
    trials: tuple[Trial, ...]
    seconds: float  # what the check took

    @property
    def fp16_side(self) -> int:
        """The largest window side faithful in fp16 (the reference's at least)."""
        return max(c.side for c in self.choices if not c.precise)

    def to_json(self) -> dict[str, Any]:
        return {
            "choices": [asdict(c) for c in self.choices],
            "trials": [asdict(t) for t in self.trials],
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            tuple(Choice(**c) for c in d["choices"]),
            tuple(Trial(**t) for t in d["trials"]),
            float(d["seconds"]),
        )


def enabled() -> bool:
    return os.environ.get("UPSCALER_EDGE_GPU_CHECK", "1") not in ("0", "no", "off", "false")


def qualifies(spec: ModelSpec, device: DeviceInfo) -> bool:
    """Whether big GPU tiles may be considered: a hardware GPU, and a model whose window maps
    straight to its output (no valid-convolution border, stride alignment or shared
    squeeze-and-excitation values: those keep the reference's rule)."""
    return (
        enabled()
        and device.is_gpu
        and (device.kind != "software" or CHECK_SOFTWARE)
        and not spec.se_blobs
        and spec.prepadding == 0
        and spec.align == 1
        and spec.channels == 3
    )


def reference_side(spec: ModelSpec, heap_mb: int) -> int:
    """The window side of the reference's tile on this heap (its tile plus our context)."""
    return gpu_auto_tile(heap_mb) + 2 * spec.context


def candidate_sides(spec: ModelSpec, heap_mb: int) -> list[int]:
    """The window sides worth checking, biggest first: the biggest whose working set fits half
    the heap budget (at most MAX_SIDE), then MID_SIDE when well below it; only sides well
    above the reference's."""
    fits = math.isqrt(heap_mb * 2**20 // 2 // max(1, spec.gpu_work_bytes_per_pixel))
    big = min(MAX_SIDE, fits)
    ref = reference_side(spec, heap_mb)
    sides = [big] + ([MID_SIDE] if big * 3 // 4 >= MID_SIDE else [])
    return [s for s in sides if s >= ref * 5 // 4]


def probe_picture(side: int) -> np.ndarray:
    """A real photo of ``side`` x ``side`` px: the bundled sample mirrored to size."""
    from importlib.resources import files

    from PIL import Image

    with Image.open(str(files("upscaler_edge") / "data" / "sample.jpg")) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, max(0, side - h)), (0, max(0, side - w)), (0, 0)), "symmetric")[
        :side, :side
    ]


def _to8(y: np.ndarray) -> np.ndarray:
    return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = a.astype(np.int16) - b.astype(np.int16)
    mse = float(np.mean(d.astype(np.float64) ** 2))
    return (math.inf if mse == 0 else 10 * math.log10(255**2 / mse)), int(np.abs(d).max())


def faithful(trial_psnr: float, trial_max: int, base_psnr: float, base_max: int) -> bool:
    """A big window agrees with the CPU about as well as the reference's tile does: at most
    3 dB worse, and no pixel further off than twice the reference's worst (at least 2 more
    levels: fp16 rounding moves a few pixels by one or two)."""
    return trial_psnr >= min(base_psnr, 80.0) - 3.0 and trial_max <= max(2 * base_max, base_max + 2)


def _regions(side: int, context: int, ref_side: int) -> list[tuple[int, int]]:
    """Top-left corners of the regions compared in a window: the centre of the reference's
    window (inside every window tried, so its CPU result serves them all) and the window's own
    far corner, where an indexing limit would show first."""
    near = ref_side // 2 - REGION // 2
    far = side - context - REGION
    return list(dict.fromkeys([(near, near), (far, far)]))


def check(
    gpu: Callable[[bool], TileEngine],
    cpu: TileEngine,
    spec: ModelSpec,
    sides: list[int],
    ref_side: int,
) -> Verdict:
    """Run the probe on the GPU (``gpu(precise)`` gives its engine) at ``ref_side`` and each
    of ``sides`` (biggest first), compare two regions of each with ``cpu``, and say which are
    faithful (see the module's docstring)."""
    started = time.perf_counter()
    s, c = spec.scale, spec.context
    probe = probe_picture(max([ref_side, *sides]))
    x = probe.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    truth: dict[tuple[int, int], np.ndarray] = {}

    def cpu_region(y0: int, x0: int) -> np.ndarray:
        if (y0, x0) not in truth:
            win = x[:, y0 - c : y0 + REGION + c, x0 - c : x0 + REGION + c]
            out = cpu.infer(np.ascontiguousarray(win))
            truth[(y0, x0)] = _to8(out[:, c * s : (c + REGION) * s, c * s : (c + REGION) * s])
        return truth[(y0, x0)]

    def trial(side: int, precise: bool) -> Trial:
        win = np.ascontiguousarray(x[:, :side, :side])
        try:
            eng = gpu(precise)
            eng.infer(win)  # the first run also allocates ncnn's buffers for this shape
            t0 = time.perf_counter()
            out = eng.infer(win)
            took = time.perf_counter() - t0
        except DeviceError as exc:  # out of device memory, a lost device: not this side
            log.info("GPU window %d px failed: %s", side, exc)
            return Trial(side, precise, 0.0, 255, math.inf, False)
        worst_psnr, worst_max = math.inf, 0
        for y0, x0 in _regions(side, c, ref_side):
            got = _to8(out[:, y0 * s : (y0 + REGION) * s, x0 * s : (x0 + REGION) * s])
            p, m = _compare(got, cpu_region(y0, x0))
            worst_psnr, worst_max = min(worst_psnr, p), max(worst_max, m)
        return Trial(side, precise, worst_psnr, worst_max, took / (side * side / 1e6), False)

    base = trial(ref_side, False)
    base = replace(base, ok=True)
    trials, choices = [base], [Choice(ref_side, False, base.s_per_mpx)]
    if not math.isfinite(base.s_per_mpx):  # even the reference's tile failed: nothing to gain
        return Verdict(tuple(choices), tuple(trials), time.perf_counter() - started)
    for precise in (False, True):
        # fp32 only where fp16 failed: at the same side it can only be slower
        for side in [n for n in sides if n > max(ch.side for ch in choices)]:
            t = trial(side, precise)
            t = replace(t, ok=faithful(t.psnr, t.max_diff, base.psnr, base.max_diff))
            trials.append(t)
            log.info(
                "GPU window %d px %s: %.1f dB, max diff %d against the CPU%s",
                side,
                "fp32" if precise else "fp16",
                t.psnr,
                t.max_diff,
                "" if t.ok else " (not faithful)",
            )
            if t.ok:
                choices.append(Choice(side, precise, t.s_per_mpx))
                break
    return Verdict(tuple(choices), tuple(trials), time.perf_counter() - started)


def verdict_for(
    spec: ModelSpec,
    device: DeviceInfo,
    gpu: Callable[[bool], TileEngine],
    cpu: Callable[[], TileEngine],
) -> Verdict | None:
    """The verdict for ``spec`` on ``device``: from the cache, else checked now (``check``
    with ``gpu(precise)`` and ``cpu()`` engines) and cached. None where big GPU tiles are not
    considered (``qualifies``, no candidate side) or the check failed (one log line: the
    reference's tile size then)."""
    if not qualifies(spec, device):
        return None
    sides = candidate_sides(spec, device.heap_budget_mb)
    if not sides:
        return None
    ref = reference_side(spec, device.heap_budget_mb)
    key = cache_key(device, spec, sides, ref)
    verdict = cached(key)
    if verdict is not None:
        return verdict
    log.warning(
        "checking which tile sizes %s computes like the CPU for %s (once)", device.name, spec.name
    )
    try:
        verdict = check(gpu, cpu(), spec, sides, ref)
    except Exception as exc:  # the check must never fail a job
        log.warning("GPU tile check failed (%s): the reference's tile size", exc)
        log.info("GPU tile check", exc_info=True)
        return None
    store(key, verdict)
    log.info(
        "%s, %s: tiles %s (checked in %.1f s)",
        device.name,
        spec.name,
        describe(verdict),
        verdict.seconds,
    )
    return verdict


def max_window_side(tiles: Iterable[Tile]) -> int:
    return max(max(t.wx1 - t.wx0, t.wy1 - t.wy0) for t in tiles)


def gpu_tiles(width: int, height: int, spec: ModelSpec, side: int) -> list[Tile]:
    """Tiles whose windows are at most ``side`` px a side (context and edge included)."""
    core = max(MIN_TILE, side - 2 * max(spec.context, spec.edge_pad))
    return plan_tiles(width, height, core, spec.context, spec.edge_pad)


def pick(verdict: Verdict, width: int, height: int, spec: ModelSpec) -> tuple[list[Tile], bool]:
    """The tiles and precision with the least estimated time for this picture: each faithful
    choice's windows times its measured seconds per pixel."""
    best: tuple[float, list[Tile], bool] | None = None
    for ch in verdict.choices:
        tiles = gpu_tiles(width, height, spec, ch.side)
        cost = sum(t.window_pixels for t in tiles) * ch.s_per_mpx
        if best is None or cost < best[0]:
            best = (cost, tiles, ch.precise)
    assert best is not None
    return best[1], best[2]


def needs_fp32(verdict: Verdict, tiles: list[Tile]) -> bool:
    """Whether windows this big must run in fp32 on this device (bigger than every side
    faithful in fp16: a user's tile, a video's pinned tile, a fp32 choice)."""
    return max_window_side(tiles) > verdict.fp16_side


# -- the cache ---------------------------------------------------------------------------
def _cache_file() -> Path:
    return user_cache.folder() / "gpu-windows.json"


def cache_key(device: DeviceInfo, spec: ModelSpec, sides: list[int], ref_side: int) -> str:
    import ncnn

    weights = spec.bin_sha256 or f"{spec.bin_path}:{_stat(spec.bin_path)}"
    return "|".join(
        [
            f"v{_VERSION}",
            device.name,
            device.driver,
            str(getattr(ncnn, "__version__", "?")),
            spec.name,
            weights,
            ",".join(map(str, [ref_side, *sides])),
        ]
    )


def _stat(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "?"
    return f"{st.st_size}:{st.st_mtime_ns}"


def cached(key: str) -> Verdict | None:
    with _lock:
        try:
            return Verdict.from_json(user_cache.read_json_map(_cache_file())[key])
        except (ValueError, KeyError, TypeError):
            return None


def checked_on(device: DeviceInfo) -> list[tuple[str, Verdict]]:
    """The cached verdicts for ``device`` (same name and driver), by model name."""
    found = []
    for key, value in user_cache.read_json_map(_cache_file()).items():
        parts = key.split("|")
        if len(parts) >= 5 and parts[1] == device.name and parts[2] == device.driver:
            try:
                found.append((parts[4], Verdict.from_json(value)))
            except (KeyError, TypeError, ValueError):
                continue
    return sorted(found, key=lambda mv: mv[0])


def describe(verdict: Verdict) -> str:
    """One line: the biggest faithful tile, e.g. "up to 1024 px in fp32 (fp16 to 296)"."""
    best = max(verdict.choices, key=lambda c: c.side)
    if not best.precise:
        return f"up to {best.side} px in fp16"
    return f"up to {best.side} px in fp32 (fp16 to {verdict.fp16_side})"


def store(key: str, verdict: Verdict) -> None:
    with _lock:
        path = _cache_file()
        data = user_cache.read_json_map(path)
        data[key] = verdict.to_json()
        try:
            user_cache.write_json_map(path, data, pretty=True)
        except OSError as exc:
            log.warning("cannot cache the GPU tile check in %s: %s", path, exc)
