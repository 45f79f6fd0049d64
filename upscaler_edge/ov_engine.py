"""The only module that imports OpenVINO: its devices, one compiled model, one tile in and out.

:class:`OpenVinoEngine` has the ncnn engine's interface (``infer`` with fed blobs,
``features``, ``close``, ``spec``, ``device``, ``precise``), so tiling, TTA, alpha, progress,
cancel, the worker and every front end work unchanged, for every model family: Real-CUGAN's
and waifu2x's prepadding, alignment and residual are the same code as on ncnn
(``engine.model_output``, ``preprocess``), and their tiles share the whole image's
squeeze-and-excitation averages through ``se_sync`` as on ncnn. It runs the ONNX graph
``ncnn2onnx`` makes from the same ncnn files (converted once, cached), or a cut of it.
:func:`open_engine` is what the pipeline calls: OpenVINO where it was asked for and can run
the model, else ncnn with one log line.

Compiled models are kept by OpenVINO itself (its ``CACHE_DIR``) in
``<user cache>/upscaler-edge/openvino``, beside the ONNX cache: a later process loads them
instead of compiling (``docs/eval/openvino.md`` has the times per model).

Precision on the CPU: "fp32", "bf16", or "auto", which is bf16 only on CPUs with native bf16
(AMX or AVX512-BF16; OpenVINO reports it as the BF16 capability) and only for models whose
bf16 output was measured to stay >= 50 dB from fp32 with no pixel moving more than 4/255 on
real photos (:data:`BF16_VERDICTS`, measured by ``bench/openvino.py``); else fp32. Intel GPUs
and NPUs run their own default (fp16) unless "fp32" or ``precise`` asks for fp32.

"cpu" (the fastest CPU backend) is OpenVINO, except where the precision the model would run
in is fp32 and OpenVINO fp32 was measured slower than ncnn for it (:data:`FP32_SPEEDUPS`,
from the same bench: waifu2x upconv7): ncnn runs it then, with one log line.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .engine import (
    DeviceInfo,
    Engine,
    TileEngine,
    TileFault,
    _cpu_name,
    cpu_threads,
    model_output,
)
from .errors import DeviceError, ModelError
from .models import ModelSpec
from .ncnn2onnx import UnsupportedModelError, onnx_cache_dir, onnx_for

__all__ = [
    "BF16_VERDICTS",
    "FP32_SPEEDUPS",
    "PRECISIONS",
    "Bf16Verdict",
    "Fp32Speedup",
    "OpenVinoEngine",
    "choose_precision",
    "compiled_cache_dir",
    "open_engine",
    "openvino_devices",
    "openvino_is_faster",
]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
#: OpenVINO's working memory per input pixel against ncnn's (the manifest's figure): measured
#: 12.7 KB/px for x4plus in fp32 (7 KB in bf16) against 55 KB, 1.1 KB for the compact net
#: against 4.5 KB, Real-CUGAN x2 3.5 KB (2 KB) against 20 KB, waifu2x CUNet 4.8 KB (2.6 KB)
#: against 16 KB, upconv7 1.6 KB against 10 KB (400x400 windows); a third of ncnn's figure
#: keeps 1.1-1.9x headroom and 3x larger CPU tiles, so less of each tile is context (x4plus
#: reads 48 px around every tile) and an SE model has fewer tiles to share averages across.
MEMORY_DIVISOR = 3
#: The auto rule's thresholds: bf16 against fp32 on real photos.
MIN_BF16_PSNR_DB = 50.0
MAX_BF16_PIXEL_DIFF = 4  # out of 255


@dataclass(frozen=True)
class Bf16Verdict:
    """How far bf16 moved a model's output from fp32 (the worst of the photos measured)."""

    psnr_db: float
    max_diff: int  # in 1/255 steps, on the rounded 8-bit output
    measured: str  # ISO date

    @property
    def ok(self) -> bool:
        return self.psnr_db >= MIN_BF16_PSNR_DB and self.max_diff <= MAX_BF16_PIXEL_DIFF


#: bf16 vs fp32 per model: the worst of 128x128 crops of astronaut, coffee and chelsea
#: (``python bench/openvino.py --only verdicts``; OpenVINO 2026.4.1, Xeon with AMX). A model
#: missing here (a user model, a family added later) runs fp32 under "auto".
BF16_VERDICTS: dict[str, Bf16Verdict] = {
    "realesrgan-x4plus": Bf16Verdict(50.4, 7, "2026-11-27"),  # fp32: 7 steps on chelsea
    "realesrgan-x4plus-anime": Bf16Verdict(53.8, 5, "2026-11-27"),  # fp32: 5 steps on astronaut
    "realesr-animevideov3-x2": Bf16Verdict(54.0, 3, "2026-11-27"),
    "realesr-animevideov3-x3": Bf16Verdict(53.8, 3, "2026-11-27"),
    "realesr-animevideov3-x4": Bf16Verdict(53.9, 4, "2026-11-27"),
    "realcugan-se-x2": Bf16Verdict(53.1, 4, "2026-11-27"),
    "realcugan-se-x2-conservative": Bf16Verdict(54.4, 2, "2026-11-27"),
    "realcugan-se-x2-denoise1": Bf16Verdict(52.9, 5, "2026-11-27"),  # fp32: 5 steps on astronaut
    "realcugan-se-x2-denoise2": Bf16Verdict(49.8, 6, "2026-11-27"),  # fp32: 6 steps on coffee
    "realcugan-se-x2-denoise3": Bf16Verdict(53.3, 5, "2026-11-27"),  # fp32: 5 steps on coffee
    "realcugan-se-x3": Bf16Verdict(50.6, 6, "2026-11-27"),  # fp32: 6 steps on astronaut
    "realcugan-se-x3-conservative": Bf16Verdict(50.5, 4, "2026-11-27"),
    "realcugan-se-x3-denoise3": Bf16Verdict(52.7, 6, "2026-11-27"),  # fp32: 6 steps on astronaut
    "realcugan-se-x4": Bf16Verdict(52.6, 7, "2026-11-27"),  # fp32: 7 steps on coffee
    "realcugan-se-x4-conservative": Bf16Verdict(55.8, 3, "2026-11-27"),
    "realcugan-se-x4-denoise3": Bf16Verdict(51.8, 7, "2026-11-27"),  # fp32: 7 steps on astronaut
    "realcugan-pro-x2": Bf16Verdict(48.9, 9, "2026-11-27"),  # fp32: 9 steps on astronaut
    "realcugan-pro-x2-conservative": Bf16Verdict(50.2, 4, "2026-11-27"),
    "realcugan-pro-x2-denoise3": Bf16Verdict(47.5, 9, "2026-11-27"),  # fp32: 9 steps on coffee
    "realcugan-pro-x3": Bf16Verdict(48.1, 12, "2026-11-27"),  # fp32: 12 steps on coffee
    "realcugan-pro-x3-conservative": Bf16Verdict(47.7, 5, "2026-11-27"),  # fp32: 5 steps on coffee
    "realcugan-pro-x3-denoise3": Bf16Verdict(50.3, 9, "2026-11-27"),  # fp32: 9 steps on astronaut
    "waifu2x-cunet-x2": Bf16Verdict(52.7, 2, "2026-11-27"),
    "waifu2x-cunet-x2-denoise0": Bf16Verdict(52.4, 4, "2026-11-27"),
    "waifu2x-cunet-x2-denoise1": Bf16Verdict(52.9, 4, "2026-11-27"),
    "waifu2x-cunet-x2-denoise2": Bf16Verdict(52.4, 4, "2026-11-27"),
    "waifu2x-cunet-x2-denoise3": Bf16Verdict(52.2, 4, "2026-11-27"),
    "waifu2x-cunet-x1-denoise0": Bf16Verdict(51.3, 3, "2026-11-27"),
    "waifu2x-cunet-x1-denoise1": Bf16Verdict(51.9, 3, "2026-11-27"),
    "waifu2x-cunet-x1-denoise2": Bf16Verdict(53.6, 2, "2026-11-27"),
    "waifu2x-cunet-x1-denoise3": Bf16Verdict(55.0, 2, "2026-11-27"),
    "waifu2x-upconv7-anime-x2": Bf16Verdict(53.2, 3, "2026-11-27"),
    "waifu2x-upconv7-anime-x2-denoise0": Bf16Verdict(52.7, 2, "2026-11-27"),
    "waifu2x-upconv7-anime-x2-denoise1": Bf16Verdict(53.3, 2, "2026-11-27"),
    "waifu2x-upconv7-anime-x2-denoise2": Bf16Verdict(53.5, 3, "2026-11-27"),
    "waifu2x-upconv7-anime-x2-denoise3": Bf16Verdict(52.9, 2, "2026-11-27"),
    "waifu2x-upconv7-photo-x2": Bf16Verdict(51.4, 3, "2026-11-27"),
    "waifu2x-upconv7-photo-x2-denoise0": Bf16Verdict(53.5, 2, "2026-11-27"),
    "waifu2x-upconv7-photo-x2-denoise1": Bf16Verdict(53.4, 3, "2026-11-27"),
    "waifu2x-upconv7-photo-x2-denoise2": Bf16Verdict(50.9, 3, "2026-11-27"),
    "waifu2x-upconv7-photo-x2-denoise3": Bf16Verdict(50.7, 3, "2026-11-27"),
}


@dataclass(frozen=True)
class Fp32Speedup:
    """How much faster OpenVINO fp32 ran a model than ncnn on the CPU: ncnn's seconds per
    megapixel over OpenVINO fp32's, the same tile, the backends taking turns, best of runs;
    measured on the model ``on`` (one model per family)."""

    speedup: float
    measured: str  # ISO date
    on: str  # the model measured: this one, or its family's (same net, another scale/noise)

    @property
    def faster(self) -> bool:
        """The "cpu" rule: OpenVINO fp32 only where it was measured faster than ncnn."""
        return self.speedup > 1.0


#: OpenVINO fp32 against ncnn per model, seconds per megapixel of one tile, one model measured
#: per family (``python bench/openvino.py --only speed``, then ``--tables`` prints this from
#: docs/eval/openvino.json; OpenVINO 2026.4.1, 2 threads of a Xeon with AVX-512 and AMX).
#: Where it is not faster, "cpu" runs the model's fp32 on ncnn (waifu2x upconv7: 0.68x and
#: 0.99x); a model missing here (a user model) runs on OpenVINO, as every other family
#: measured 1.7-2.2x faster there.
FP32_SPEEDUPS: dict[str, Fp32Speedup] = {
    "realesrgan-x4plus": Fp32Speedup(1.72, "2026-11-27", "realesrgan-x4plus"),
    "realesrgan-x4plus-anime": Fp32Speedup(1.69, "2026-11-27", "realesrgan-x4plus-anime"),
    "realesr-animevideov3-x2": Fp32Speedup(1.69, "2026-11-27", "realesr-animevideov3-x4"),
    "realesr-animevideov3-x3": Fp32Speedup(1.69, "2026-11-27", "realesr-animevideov3-x4"),
    "realesr-animevideov3-x4": Fp32Speedup(1.69, "2026-11-27", "realesr-animevideov3-x4"),
    "realcugan-se-x2": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x2-conservative": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x2-denoise1": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x2-denoise2": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x2-denoise3": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x3": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x3-conservative": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x3-denoise3": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x4": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x4-conservative": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-se-x4-denoise3": Fp32Speedup(1.72, "2026-11-27", "realcugan-se-x2"),
    "realcugan-pro-x2": Fp32Speedup(2.03, "2026-11-27", "realcugan-pro-x2"),
    "realcugan-pro-x2-conservative": Fp32Speedup(2.03, "2026-11-27", "realcugan-pro-x2"),
    "realcugan-pro-x2-denoise3": Fp32Speedup(2.03, "2026-11-27", "realcugan-pro-x2"),
    "realcugan-pro-x3": Fp32Speedup(2.03, "2026-11-27", "realcugan-pro-x2"),
    "realcugan-pro-x3-conservative": Fp32Speedup(2.03, "2026-11-27", "realcugan-pro-x2"),
    "realcugan-pro-x3-denoise3": Fp32Speedup(2.03, "2026-11-27", "realcugan-pro-x2"),
    "waifu2x-cunet-x2": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x2-denoise0": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x2-denoise1": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x2-denoise2": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x2-denoise3": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x1-denoise0": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x1-denoise1": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x1-denoise2": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-cunet-x1-denoise3": Fp32Speedup(2.22, "2026-11-27", "waifu2x-cunet-x2"),
    "waifu2x-upconv7-anime-x2": Fp32Speedup(0.68, "2026-11-27", "waifu2x-upconv7-anime-x2"),
    "waifu2x-upconv7-anime-x2-denoise0": (
        Fp32Speedup(0.68, "2026-11-27", "waifu2x-upconv7-anime-x2")
    ),
    "waifu2x-upconv7-anime-x2-denoise1": (
        Fp32Speedup(0.68, "2026-11-27", "waifu2x-upconv7-anime-x2")
    ),
    "waifu2x-upconv7-anime-x2-denoise2": (
        Fp32Speedup(0.68, "2026-11-27", "waifu2x-upconv7-anime-x2")
    ),
    "waifu2x-upconv7-anime-x2-denoise3": (
        Fp32Speedup(0.68, "2026-11-27", "waifu2x-upconv7-anime-x2")
    ),
    "waifu2x-upconv7-photo-x2": Fp32Speedup(0.99, "2026-11-27", "waifu2x-upconv7-photo-x2"),
    "waifu2x-upconv7-photo-x2-denoise0": (
        Fp32Speedup(0.99, "2026-11-27", "waifu2x-upconv7-photo-x2")
    ),
    "waifu2x-upconv7-photo-x2-denoise1": (
        Fp32Speedup(0.99, "2026-11-27", "waifu2x-upconv7-photo-x2")
    ),
    "waifu2x-upconv7-photo-x2-denoise2": (
        Fp32Speedup(0.99, "2026-11-27", "waifu2x-upconv7-photo-x2")
    ),
    "waifu2x-upconv7-photo-x2-denoise3": (
        Fp32Speedup(0.99, "2026-11-27", "waifu2x-upconv7-photo-x2")
    ),
}


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def compiled_cache_dir() -> Path:
    """Where OpenVINO keeps compiled models (``CACHE_DIR``): ``<user cache>/upscaler-edge/
    openvino``, beside the ONNX cache. OpenVINO names each file by a hash of the graph, the
    device and the settings, so another precision or OpenVINO version gets its own file."""
    return onnx_cache_dir().parent / "openvino"


def _cache_config() -> dict[str, str]:
    """OpenVINO's CACHE_DIR setting, or none when the folder cannot be made (read-only home):
    then every process compiles, as without a cache."""
    folder = compiled_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.info("no cache for compiled models (%s): OpenVINO compiles every time", exc)
        return {}
    return {"CACHE_DIR": str(folder)}


def _cpu_has_bf16() -> bool:
    try:
        return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


@functools.cache
def openvino_devices() -> list[DeviceInfo]:
    """OpenVINO's devices as DeviceInfo (backend "openvino"): the CPU, Intel GPUs, NPUs."""
    core = _core()
    found = []
    for target in core.available_devices:
        family = target.split(".")[0]
        if family == "CPU":
            found.append(
                DeviceInfo(-1, f"{_cpu_name()}, OpenVINO", "cpu", backend="openvino", target=target)
            )
            continue
        try:
            name = str(core.get_property(target, "FULL_DEVICE_NAME"))
        except RuntimeError:
            name = target
        if family == "GPU":
            try:
                discrete = "DISCRETE" in str(core.get_property(target, "DEVICE_TYPE")).upper()
            except RuntimeError:
                discrete = False
            kind = "discrete" if discrete else "integrated"
        else:
            kind = family.lower()
        found.append(
            DeviceInfo(-1, f"{name}, OpenVINO {target}", kind, backend="openvino", target=target)
        )
    return found


def choose_precision(spec: ModelSpec, device: DeviceInfo, asked: str, precise: bool) -> str:
    """OpenVINO's inference precision hint (f32, bf16, f16) for this model on this device."""
    if asked not in PRECISIONS:
        raise ValueError(f"unknown precision {asked!r}")
    if precise or asked == "fp32":
        return "f32"
    if device.target.split(".")[0] != "CPU":
        return "f16"  # GPUs and NPUs: their native half precision
    if not _cpu_has_bf16():
        if asked == "bf16":
            log.warning("this CPU has no native bf16 (AMX or AVX512-BF16): running fp32")
        return "f32"
    if asked == "bf16":
        return "bf16"
    verdict = BF16_VERDICTS.get(spec.name)
    return "bf16" if verdict is not None and verdict.ok else "f32"


def openvino_is_faster(spec: ModelSpec, precision: str) -> bool:
    """Whether OpenVINO in ``precision`` (the hint ``choose_precision`` gives) beats ncnn on
    the CPU for ``spec``: bf16 always did (3-10x); fp32 where :data:`FP32_SPEEDUPS` says so
    (a model not measured: yes)."""
    if precision != "f32":
        return True
    measured = FP32_SPEEDUPS.get(spec.name)
    return measured is None or measured.faster


def _from_cache(compiled: Any) -> bool:
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except RuntimeError:  # a plugin that does not say
        return False


class OpenVinoEngine:
    """One model compiled by OpenVINO on one device, with the ncnn :class:`Engine`'s contract:
    ``infer`` takes float32 (3, h, w) in [0, 1] and returns (3, (h - 2p) * s, (w - 2p) * s)
    float32, unclipped (p: the model's prepadding); ``feeds`` are blobs given instead of
    computed (the shared squeeze-and-excitation averages of a tiled run); ``features`` gives
    an inner blob (the feature map a pool averages). The models' arithmetic around the net
    (value range, one-plane nets, residual) is ``engine.model_output``, shared with ncnn.

    Each (output blob, fed blobs) pair is its own graph (``ncnn2onnx.onnx_for`` cuts the
    converted one: fed blobs become inputs, the layers after the output are left out),
    compiled on first use; the plain graph is compiled up front, so a model OpenVINO cannot
    compile fails here. Height and width are dynamic (one compiled graph serves every tile
    shape); an NPU, which needs static shapes, gets one per tile shape. ``infer`` releases
    the GIL while OpenVINO computes. Raises UnsupportedModelError when the model cannot be
    converted, ModelError when OpenVINO cannot compile it.
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: DeviceInfo,
        *,
        threads: int | None = None,
        precise: bool = False,
        precision: str = "auto",
    ) -> None:
        self.spec = spec
        self.device = device
        self.precise = precise
        self.precision = choose_precision(spec, device, precision, precise)
        self.work_bytes_per_pixel = max(1, spec.work_bytes_per_pixel // MEMORY_DIVISOR)
        self._lock = threading.Lock()
        self._config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": self.precision,
            **_cache_config(),
        }
        if device.target.split(".")[0] == "CPU":
            self._config["INFERENCE_NUM_THREADS"] = threads or cpu_threads()
        self._static = device.kind == "npu"
        #: (output blob, fed blobs, (h, w) or (-1, -1)) -> infer request
        self._requests: dict[tuple[str, tuple[str, ...], tuple[int, int]], Any] = {}
        #: (output blob, fed blobs) -> the ONNX graph (read once when shapes are static)
        self._graphs: dict[tuple[str, tuple[str, ...]], Any] = {}
        #: whether the plain graph came from OpenVINO's cache instead of being compiled
        self.loaded_from_cache = False
        self._open = True
        if not self._static:
            compiled = self._request(spec.output_blob, (), -1, -1).get_compiled_model()
            self.loaded_from_cache = _from_cache(compiled)
        else:
            self._graph(spec.output_blob, ())  # converts now: a missing layer fails here
        log.info(
            "loaded %s on %s (%s%s)",
            spec.name,
            device.name,
            self.precision,
            ", from the compiled-model cache" if self.loaded_from_cache else "",
        )

    @property
    def compiled(self) -> list[tuple[str, tuple[str, ...]]]:
        """(output blob, fed blobs) of each graph compiled so far (per tile shape on an NPU)."""
        return [(output, fed) for output, fed, _ in self._requests]

    def _graph(self, output: str, fed: tuple[str, ...]) -> Any:
        key = (output, fed)
        if key not in self._graphs:
            try:
                path = onnx_for(self.spec, fed=fed, output=output)
            except ValueError as exc:
                raise ModelError(f"model {self.spec.name}: {exc}") from exc
            self._graphs[key] = path
        return self._graphs[key]

    def _request(self, output: str, fed: tuple[str, ...], h: int, w: int) -> Any:
        shape = (h, w) if self._static else (-1, -1)
        req = self._requests.get((output, fed, shape))
        if req is not None:
            return req
        path = self._graph(output, fed)
        core = _core()
        try:
            if self._static:
                model = core.read_model(str(path))
                c = 1 if self.spec.channels == 1 else 3
                model.reshape({self.spec.input_blob: [1, c, h, w]})
                compiled = core.compile_model(model, self.device.target, self._config)
            else:
                compiled = core.compile_model(str(path), self.device.target, self._config)
        except RuntimeError as exc:
            raise ModelError(f"model {self.spec.name}: OpenVINO cannot compile it ({exc})") from exc
        req = self._requests[(output, fed, shape)] = compiled.create_infer_request()
        return req

    def _run(self, x: np.ndarray, blob: str, feeds: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """The bare net's ``blob`` for input ``x`` (C, h, w), ``feeds`` given: (C', h', w')."""
        if not self._open:
            raise DeviceError("engine is closed")
        given = dict(feeds or {})
        fed = tuple(sorted(given))
        _, h, w = x.shape
        inputs: dict[str, np.ndarray] = {
            self.spec.input_blob: np.ascontiguousarray(x, dtype=np.float32)[None]
        }
        for name in fed:  # ncnn's 1-D blob of C values is ONNX's (1, C, 1, 1)
            value = np.asarray(given[name], dtype=np.float32)
            inputs[name] = np.ascontiguousarray(value.reshape(1, -1, 1, 1))
        with self._lock:
            req = self._request(blob, fed, h, w)
            # a fed blob the output does not depend on is not an input of its graph
            names = {n for port in req.model_inputs for n in port.get_names()}
            try:
                req.infer({k: v for k, v in inputs.items() if k in names}, share_inputs=True)
                y = np.array(req.get_output_tensor(0).data[0], dtype=np.float32, copy=True)
            except RuntimeError as exc:
                raise TileFault(f"OpenVINO inference failed on {self.device.name}: {exc}") from exc
        return y

    def infer(self, x: np.ndarray, feeds: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        return model_output(self.spec, x, lambda xin: self._run(xin, self.spec.output_blob, feeds))

    def features(
        self, x: np.ndarray, blob: str, feeds: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """An inner blob of the net for window ``x`` (as ``infer`` takes it): (C, h', w')."""
        vr = self.spec.value_range
        return self._run(x * np.float32(vr) if vr != 1.0 else x, blob, feeds)

    def close(self) -> None:
        self._open = False
        self._requests.clear()
        self._graphs.clear()

    def __enter__(self) -> OpenVinoEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(
    spec: ModelSpec, device: DeviceInfo, *, precise: bool = False, precision: str = "auto"
) -> TileEngine:
    """The engine for ``device``: ncnn's for ncnn devices; OpenVINO's for OpenVINO devices and
    for "best" (the CPU), falling back to ncnn on the CPU with one log line when OpenVINO
    cannot run the model (a layer the converter lacks, a compile error, no OpenVINO) and, for
    "best", when the model would run in fp32 there and OpenVINO fp32 was measured slower than
    ncnn for it (:func:`openvino_is_faster`)."""
    if device.backend == "ncnn":
        return Engine(spec, device, precise=precise)
    target = device
    try:
        if device.backend == "best":
            if precise or precision == "fp32":  # settled without starting OpenVINO (~0.3 s)
                hint = "f32"
            else:
                target = next((d for d in openvino_devices() if d.target == "CPU"), device)
                hint = choose_precision(spec, target, precision, precise)
            if not openvino_is_faster(spec, hint):
                log.info(
                    "running %s on ncnn: in fp32 OpenVINO was measured slower than ncnn for it"
                    " (%.2fx; -d cpu-openvino forces OpenVINO)",
                    spec.name,
                    FP32_SPEEDUPS[spec.name].speedup,
                )
                return _ncnn_on_cpu(spec, device, precise)
            # the precision is settled (its warning, if any, given once)
            precision = {"f32": "fp32", "bf16": "bf16"}.get(hint, precision)
            target = next((d for d in openvino_devices() if d.target == "CPU"), device)
        return OpenVinoEngine(spec, target, precise=precise, precision=precision)
    except (UnsupportedModelError, ModelError, ImportError) as exc:
        if device.backend != "best" and target.target.split(".")[0] != "CPU":
            raise
        level = logging.INFO if device.backend == "best" else logging.WARNING
        log.log(level, "OpenVINO cannot run %s (%s); using ncnn on the CPU", spec.name, exc)
        return _ncnn_on_cpu(spec, device, precise)


def _ncnn_on_cpu(spec: ModelSpec, device: DeviceInfo, precise: bool) -> Engine:
    """ncnn's CPU engine in place of OpenVINO's; its device's name says ncnn."""
    name = device.name if device.name.endswith(", ncnn") else f"{device.name}, ncnn"
    return Engine(spec, replace(device, backend="ncnn", target="", name=name), precise=precise)
