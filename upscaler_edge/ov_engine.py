"""The only module that imports OpenVINO: its devices, one compiled model, one tile in and out.

:class:`OpenVinoEngine` has the ncnn engine's interface (``infer``, ``close``, ``spec``,
``device``, ``precise``), so tiling, TTA, alpha, progress, cancel, the worker and every front
end work unchanged. It runs the ONNX graph ``ncnn2onnx`` makes from the same ncnn files
(converted once, cached). :func:`open_engine` is what the pipeline calls: OpenVINO where it
was asked for and can run the model, else ncnn with one log line.

Precision on the CPU: "fp32", "bf16", or "auto", which is bf16 only on CPUs with native bf16
(AMX or AVX512-BF16; OpenVINO reports it as the BF16 capability) and only for models whose
bf16 output was measured to stay >= 50 dB from fp32 with no pixel moving more than 4/255 on
real photos (:data:`BF16_VERDICTS`, measured by ``bench/openvino.py``); else fp32. Intel GPUs
and NPUs run their own default (fp16) unless "fp32" or ``precise`` asks for fp32.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .engine import DeviceInfo, Engine, TileEngine, TileFault, _cpu_name, cpu_threads
from .errors import DeviceError, ModelError, UsageError
from .models import ModelSpec
from .ncnn2onnx import UnsupportedModelError, onnx_for

__all__ = [
    "BF16_VERDICTS",
    "PRECISIONS",
    "Bf16Verdict",
    "OpenVinoEngine",
    "choose_precision",
    "open_engine",
    "openvino_devices",
]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
#: OpenVINO's working memory per input pixel against ncnn's (the manifest's figure): measured
#: 12.7 KB/px for x4plus in fp32 (7 KB in bf16) against 55 KB, 1.1 KB for the compact net
#: against 4.5 KB; a third of ncnn's figure keeps ~1.4x headroom and 3x larger CPU tiles,
#: so less of each tile is context (x4plus reads 48 px around every tile).
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
    "realesrgan-x4plus-anime": Bf16Verdict(53.8, 5, "2026-11-27"),  # fp32
    "realesr-animevideov3-x2": Bf16Verdict(54.0, 3, "2026-11-27"),
    "realesr-animevideov3-x3": Bf16Verdict(53.8, 3, "2026-11-27"),
    "realesr-animevideov3-x4": Bf16Verdict(53.9, 4, "2026-11-27"),
}


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


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


class OpenVinoEngine:
    """One compiled OpenVINO model on one device, with the ncnn :class:`Engine`'s contract:
    ``infer`` takes float32 (3, h, w) in [0, 1] and returns (3, h*s, w*s) float32, unclipped.

    The input's height and width are dynamic (one compiled model serves every tile shape);
    an NPU, which needs static shapes, gets one compiled model per tile shape. ``infer``
    releases the GIL while OpenVINO computes. Raises UnsupportedModelError when the model
    cannot be converted, ModelError when OpenVINO cannot compile it.
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
        path = onnx_for(spec)
        core = _core()
        self._config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": self.precision,
        }
        if device.target.split(".")[0] == "CPU":
            self._config["INFERENCE_NUM_THREADS"] = threads or cpu_threads()
        self._static = device.kind == "npu"
        self._requests: dict[tuple[int, int], Any] = {}
        try:
            self._model = core.read_model(str(path))
            if not self._static:
                compiled = core.compile_model(self._model, device.target, self._config)
                self._requests[(-1, -1)] = compiled.create_infer_request()
        except RuntimeError as exc:
            raise ModelError(f"model {spec.name}: OpenVINO cannot compile it ({exc})") from exc
        self._open = True
        log.info("loaded %s on %s (%s)", spec.name, device.name, self.precision)

    def _request(self, h: int, w: int) -> Any:
        if not self._static:
            return self._requests[(-1, -1)]
        req = self._requests.get((h, w))
        if req is None:
            model = self._model.clone()
            model.reshape([1, 3, h, w])
            compiled = _core().compile_model(model, self.device.target, self._config)
            req = self._requests[(h, w)] = compiled.create_infer_request()
        return req

    def infer(self, x: np.ndarray, feeds: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        if not self._open:
            raise DeviceError("engine is closed")
        if feeds:  # open_engine gives models that need feeds (shared SE averages) to ncnn
            raise DeviceError(f"{self.spec.name}: OpenVINO cannot take fed blobs")
        _, h, w = x.shape
        s = self.spec.scale
        xc = np.ascontiguousarray(x, dtype=np.float32)[None]
        with self._lock:
            try:
                req = self._request(h, w)
                req.infer({0: xc}, share_inputs=True)
                y = np.array(req.get_output_tensor(0).data[0], dtype=np.float32, copy=True)
            except RuntimeError as exc:
                raise TileFault(f"OpenVINO inference failed on {self.device.name}: {exc}") from exc
        if y.shape != (3, h * s, w * s):
            raise TileFault(f"model gave shape {y.shape} for a {w}x{h} tile; expected x{s}")
        return y

    def close(self) -> None:
        self._open = False
        self._requests.clear()
        self._model = None

    def __enter__(self) -> OpenVinoEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(spec: ModelSpec) -> bool:
    """A model whose window goes in and whose x``scale`` output comes out as it is: what the
    OpenVINO engine runs. Real-CUGAN and waifu2x (prepadding, value range, one-plane nets,
    residuals, shared squeeze-and-excitation averages) stay on ncnn's engine, which does that
    arithmetic."""
    return (
        not spec.se_blobs
        and spec.prepadding == 0
        and spec.value_range == 1.0
        and spec.residual is None
        and spec.channels == 3
    )


def open_engine(
    spec: ModelSpec, device: DeviceInfo, *, precise: bool = False, precision: str = "auto"
) -> TileEngine:
    """The engine for ``device``: ncnn's for ncnn devices; OpenVINO's for OpenVINO devices and
    for "best" (the CPU), falling back to ncnn on the CPU with one log line when OpenVINO
    cannot run the model (a layer the converter lacks, a compile error, no OpenVINO)."""
    if device.backend == "ncnn":
        return Engine(spec, device, precise=precise)
    if not _plain(spec):  # our ncnn engine does its arithmetic (prepadding, SE feeds, ...)
        if device.backend == "best" or device.target.split(".")[0] == "CPU":
            log.info("%s needs ncnn's engine (its own arithmetic): ncnn on the CPU", spec.name)
            return Engine(spec, replace(device, backend="ncnn", target=""), precise=precise)
        raise UsageError(f"{spec.name} runs on ncnn only: use -d cpu or a Vulkan GPU index")
    target = device
    try:
        if device.backend == "best":
            target = next((d for d in openvino_devices() if d.target == "CPU"), device)
        return OpenVinoEngine(spec, target, precise=precise, precision=precision)
    except (UnsupportedModelError, ModelError, ImportError) as exc:
        if target.target.split(".")[0] != "CPU":
            raise
        level = logging.INFO if device.backend == "best" else logging.WARNING
        log.log(level, "OpenVINO cannot run %s (%s); using ncnn on the CPU", spec.name, exc)
        return Engine(spec, replace(device, backend="ncnn", target=""), precise=precise)
