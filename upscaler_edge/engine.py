"""The only module that imports ncnn: devices, one Net's lifetime, one tile in and out.

Device choice ("auto"): a discrete GPU, else an integrated one, else another Vulkan GPU; a
software Vulkan device (llvmpipe/lavapipe, SwiftShader) only when asked for by index, since
it is ~30x slower than ncnn's own CPU path; else the CPU. With no Vulkan loader or driver the
CPU is used and one log line says so; nothing here crashes for want of a GPU.

The CPU ("cpu") runs through OpenVINO when it is installed and the model converts (see
``ov_engine``), else through ncnn; "cpu-ncnn" and "cpu-openvino" name one backend, and
"openvino-gpu" / "openvino-npu" name the Intel devices OpenVINO finds.

Several devices ("0,1", "0,cpu", "all": ``pick_devices``) each get their own engine; the
pipeline spreads files or tiles over them.

Tile sizes are chosen in ``tiling``; this module only runs the tiles it is given.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import DeviceError, ModelError, UsageError
from .models import ModelSpec

__all__ = [
    "DeviceInfo",
    "Engine",
    "TileEngine",
    "TileFault",
    "cpu_threads",
    "list_devices",
    "model_output",
    "openvino_installed",
    "pick_device",
    "pick_devices",
]

log = logging.getLogger(__name__)

# ncnn's GpuInfo.type(): 0 discrete, 1 integrated, 2 virtual, 3 cpu (software rasteriser)
_KINDS = {0: "discrete", 1: "integrated", 2: "virtual", 3: "software"}
_RANK = {"discrete": 0, "integrated": 1, "virtual": 2}


@dataclass(frozen=True)
class DeviceInfo:
    """A compute device; ``index`` is the Vulkan index, -1 for the CPU and OpenVINO devices.

    ``backend`` is "ncnn", "openvino" (``target`` is then OpenVINO's device name: CPU,
    GPU.0, NPU) or "best" (the CPU: OpenVINO when the model converts, else ncnn; ncnn too
    where the model would run in fp32 and OpenVINO fp32 was measured slower for it).
    """

    index: int
    name: str
    kind: str  # discrete | integrated | virtual | software | cpu | npu
    heap_budget_mb: int = 0
    driver: str = ""
    fp16: bool = False
    backend: str = "ncnn"
    target: str = ""

    @property
    def is_gpu(self) -> bool:
        """A Vulkan GPU run by ncnn (fp16 retries, heap-sized tiles, CPU fallback)."""
        return self.index >= 0

    @property
    def option(self) -> str:
        """What ``-d`` / ``Options.device`` takes to name this device."""
        if self.is_gpu:
            return str(self.index)
        if self.backend == "openvino":
            return "cpu-openvino" if self.target == "CPU" else f"openvino-{self.target.lower()}"
        return "cpu" if self.backend == "best" else "cpu-ncnn"


class TileEngine(Protocol):
    """What the pipeline needs from an engine (ncnn's :class:`Engine`, OpenVINO's)."""

    spec: ModelSpec
    device: DeviceInfo
    precise: bool
    #: working memory of one inference per input pixel on the CPU (sizes the auto tile)
    work_bytes_per_pixel: int

    def infer(self, x: np.ndarray, feeds: Mapping[str, np.ndarray] | None = None) -> np.ndarray: ...

    def features(
        self, x: np.ndarray, blob: str, feeds: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray: ...

    def close(self) -> None: ...


class TileFault(DeviceError):
    """One inference failed or gave an implausible result; the caller may retry smaller."""


_gpu_lock = threading.Lock()


@contextmanager
def _quiet_stderr() -> Iterator[list[str]]:
    """ncnn prints device banners on fd 2; keep them out of the user's terminal, in the log.
    The list yielded receives the captured text when the block ends."""
    captured: list[str] = []
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield captured
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace").strip()
            captured.append(text)
            if text:
                log.debug("ncnn: %s", text)


@functools.cache
def _tune_malloc() -> None:
    """Give freed tile memory back to the OS (glibc only).

    Tiles of different shapes leave glibc's heap fragmented, and its default trim threshold
    (which grows with every large free) keeps the freed memory mapped: measured here, a 12-tile
    job peaked 16% higher. A fixed 1 MB trim threshold keeps the peak at one tile's working set
    at no measurable cost in speed.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        pass


def ncnn_opt_overrides() -> list[tuple[str, bool]]:
    """ncnn options for GPU nets from ``UPSCALER_EDGE_NCNN_OPT`` ("use_winograd_convolution=0,
    use_sgemm_convolution=0"): a diagnostic knob for ``bench/gpu_check.py``, which tries which
    of ncnn's code paths makes a GPU compute big windows differently. Unknown names are
    ignored with a log line."""
    import ncnn

    raw = os.environ.get("UPSCALER_EDGE_NCNN_OPT", "").strip()
    known = {n for n in dir(ncnn.Option) if n.startswith("use_")}
    found = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        name, _, value = item.partition("=")
        if name not in known or value not in ("0", "1"):
            log.warning("UPSCALER_EDGE_NCNN_OPT: ignoring %r (use_NAME=0 or 1)", item)
            continue
        found.append((name, value == "1"))
    return found


def cpu_threads() -> int:
    """Threads for ncnn on the CPU: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _probe_gpus() -> list[DeviceInfo]:
    import ncnn

    with _quiet_stderr() as banner:
        count = ncnn.get_gpu_count()
    fp16 = _fp16_storage(banner[0] if banner else "")
    found = []
    for i in range(count):
        info = ncnn.get_gpu_info(i)
        kind = _KINDS.get(info.type(), "virtual")
        try:
            budget = int(ncnn.get_gpu_device(i).get_heap_budget())
        except Exception:  # pragma: no cover - driver specific
            budget = 0
        found.append(
            DeviceInfo(
                i,
                info.device_name(),
                kind,
                budget,
                driver=describe_driver(int(info.vendor_id()), int(info.driver_version())),
                fp16=fp16.get(i, False),
            )
        )
    return found


_FP16_BANNER = re.compile(r"^\[(\d+) .*fp16-p/s/u/a=\d/(\d)/", re.MULTILINE)
_VENDORS = {0x10DE: "NVIDIA", 0x1002: "AMD", 0x8086: "Intel", 0x10005: "Mesa", 0x106B: "Apple"}


def _fp16_storage(banner: str) -> dict[int, bool]:
    """fp16 storage support per device, from ncnn's start-up banner (not in its Python API)."""
    return {int(m[1]): m[2] == "1" for m in _FP16_BANNER.finditer(banner)}


def describe_driver(vendor_id: int, version: int) -> str:
    """Vendor and driver version as the vendor writes it (NVIDIA packs its own scheme)."""
    vendor = _VENDORS.get(vendor_id, f"vendor 0x{vendor_id:04x}")
    if vendor_id == 0x10DE:
        text = f"{version >> 22}.{(version >> 14) & 0xFF}.{(version >> 6) & 0xFF}"
    elif vendor_id == 0x8086 and sys.platform == "win32":
        text = f"{version >> 14}.{version & 0x3FFF}"
    else:
        text = f"{version >> 22}.{(version >> 12) & 0x3FF}.{version & 0xFFF}"
    return f"{vendor} driver {text}"


def list_devices(*, backends: bool = False) -> list[DeviceInfo]:
    """Vulkan devices, then the CPU (always present, index -1). Never raises.

    With ``backends``, the CPU is followed by each backend's own entry ("cpu-ncnn",
    "cpu-openvino") and OpenVINO's GPUs and NPUs.
    """
    with _gpu_lock:
        gpus = _gpus_once()
    found = [*gpus, pick_device("cpu")]
    if backends:
        found.append(pick_device("cpu-ncnn"))
        if openvino_installed():
            from .ov_engine import openvino_devices

            try:
                found += openvino_devices()
            except Exception as exc:  # a broken OpenVINO must not take the listing down
                log.warning("OpenVINO's devices are unavailable (%s)", exc)
    return found


@functools.cache
def openvino_installed() -> bool:
    """Whether OpenVINO can be imported; says once (info) when the CPU runs ncnn for want of it."""
    import importlib.util

    try:
        found = importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        log.info(
            "OpenVINO is not installed: the CPU runs ncnn "
            '(pip install "upscaler-edge[openvino]" for the faster CPU path)'
        )
    return found


@functools.cache
def _gpus_once() -> tuple[DeviceInfo, ...]:
    """The Vulkan devices, probed once per process (callers hold ``_gpu_lock``)."""
    try:
        gpus = tuple(_probe_gpus())
    except Exception as exc:  # a broken loader must not take the app down
        log.warning("Vulkan is unavailable (%s); using the CPU", exc)
        gpus = ()
    if not gpus:
        log.info("no Vulkan GPU found (no loader or driver); using the CPU")
    return gpus


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"CPU: {line.split(':', 1)[1].strip()} ({cpu_threads()} threads)"
    except OSError:
        pass
    return f"CPU ({cpu_threads()} threads)"


def pick_device(device: str = "auto") -> DeviceInfo:
    """The device ``device`` names: "auto", "cpu" (the fastest CPU backend installed),
    "cpu-ncnn", "cpu-openvino", "openvino-gpu", "openvino-npu" or a Vulkan index."""
    # the CPU needs no Vulkan probe: it costs start-up time and ~60 MB (lavapipe's LLVM)
    if device == "cpu":
        return DeviceInfo(
            -1, _cpu_name(), "cpu", backend="best" if openvino_installed() else "ncnn"
        )
    if device == "cpu-ncnn":
        return DeviceInfo(-1, _cpu_name(), "cpu")
    if device == "cpu-openvino" or device.startswith("openvino-"):
        return _pick_openvino(device)
    devices = list_devices()
    cpu = devices[-1]
    if device == "auto":
        gpus = [d for d in devices if d.kind in _RANK]
        if not gpus:
            return cpu
        return min(gpus, key=lambda d: (_RANK[d.kind], d.index))
    try:
        index = int(device)
    except ValueError:
        raise UsageError(
            f"unknown device {device!r}: use auto, cpu, cpu-ncnn, cpu-openvino, "
            "openvino-gpu, openvino-npu or a GPU index"
        ) from None
    for d in devices:
        if d.index == index and d.is_gpu:
            return d
    known = ", ".join(f"{d.index} ({d.name})" for d in devices if d.is_gpu) or "none"
    raise UsageError(f"no Vulkan device {index}; devices: {known}; or use cpu")


def pick_devices(device: str = "auto") -> tuple[DeviceInfo, ...]:
    """The devices ``device`` names, in the order given: one name as ``pick_device`` takes
    it, a comma-separated list of them ("0,1", "0,cpu") or "all": every GPU found (discrete,
    integrated, virtual; not a software rasteriser, which is slower than the CPU), or the CPU
    with one log line when there is none. UsageError names a missing device."""
    from .options import device_names

    names = device_names(device)
    if names == ("all",):
        gpus = tuple(d for d in list_devices() if d.kind in _RANK)
        if not gpus:
            _say_all_is_cpu()
            return (pick_device("cpu"),)
        return gpus
    picked = tuple(pick_device(name) for name in names)
    if len(set(picked)) < len(picked):  # e.g. "cpu,cpu-ncnn" without OpenVINO
        raise UsageError(f"device list {device!r} names one device twice")
    return picked


@functools.cache
def _say_all_is_cpu() -> None:
    log.warning("-d all: no GPU found; using the CPU")


def _pick_openvino(device: str) -> DeviceInfo:
    if not openvino_installed():
        raise UsageError(f'device {device} needs OpenVINO: pip install "upscaler-edge[openvino]"')
    from .ov_engine import openvino_devices

    found = openvino_devices()
    for d in found:
        if d.option == device or (device.count(".") == 0 and d.option.split(".")[0] == device):
            return d
    known = ", ".join(d.option for d in found) or "none"
    raise UsageError(f"OpenVINO has no device {device!r}; it has: {known}")


def model_output(
    spec: ModelSpec, x: np.ndarray, run: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """A model's output for window ``x`` (float32 (3, h, w) in [0, 1]) where ``run`` computes
    the bare net's output blob for its input: scales to the model's value range, runs a
    one-plane net once per colour, checks the shape ((3, (h - 2p) * s, (w - 2p) * s), p the
    model's ``prepadding``) and adds the residual. Shared by every engine, so the models'
    arithmetic is the same on each backend. TileFault when the net gives another shape."""
    _, h, w = x.shape
    p, s = spec.prepadding, spec.scale
    vr = spec.value_range
    xin = x * np.float32(vr) if vr != 1.0 else x
    planes = [xin[c : c + 1] for c in range(3)] if spec.channels == 1 else [xin]
    y = run(xin) if len(planes) == 1 else np.concatenate([run(plane) for plane in planes])
    want = (3, (h - 2 * p) * s, (w - 2 * p) * s)
    if y.shape != want:
        raise TileFault(
            f"model gave shape {y.shape} for a {w}x{h} window; expected {want} "
            f"(x{s}, prepadding {p})"
        )
    if vr != 1.0:
        y *= np.float32(1.0 / vr)
    if spec.residual == "nearest":
        core = x[:, p : h - p, p : w - p]
        y += core.repeat(s, axis=1).repeat(s, axis=2)
    return y


class Engine:
    """One loaded ``ncnn.Net`` on one device.

    ``infer`` takes a float32 array (3, h, w) in [0, 1] and returns (3, (h-2p)*s, (w-2p)*s)
    float32, unclipped (p: the model's ``prepadding``, 0 for most models). ``precise`` turns
    fp16 off on a GPU (the retry for fp16 trouble). ``infer`` releases the GIL while ncnn
    computes, so other threads can prepare the next tile. The Net is released by ``close()``
    (or the ``with`` block), not by ``__del__``.
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: DeviceInfo,
        *,
        threads: int | None = None,
        precise: bool = False,
    ) -> None:
        import ncnn

        _tune_malloc()
        self.spec = spec
        self.device = device
        self.precise = precise
        self.work_bytes_per_pixel = spec.work_bytes_per_pixel
        self._lock = threading.Lock()
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = threads or cpu_threads()
        if device.is_gpu:
            opt.use_vulkan_compute = True
            net.set_vulkan_device(device.index)
            # fp16 storage/arithmetic stay at ncnn's defaults (on when the device supports
            # them) unless ``precise``: some GPUs give black or NaN tiles in fp16
            if precise:
                opt.use_fp16_packed = False
                opt.use_fp16_storage = False
                opt.use_fp16_arithmetic = False
            for name, value in ncnn_opt_overrides():
                setattr(opt, name, value)
        else:
            opt.use_vulkan_compute = False
        try:
            with _quiet_stderr():
                rc_p = net.load_param(str(spec.param_path))
                rc_m = net.load_model(str(spec.bin_path)) if rc_p == 0 else -1
        except Exception as exc:
            net.clear()
            raise ModelError(f"model {spec.name}: ncnn cannot load it ({exc})") from exc
        if rc_p != 0 or rc_m != 0:
            net.clear()
            which = spec.param_path if rc_p != 0 else spec.bin_path
            raise ModelError(
                f"model {spec.name}: ncnn cannot load {which.name} (code {rc_p or rc_m})"
            )
        self._net = net
        log.info("loaded %s on %s", spec.name, device.name)

    def infer(self, x: np.ndarray, feeds: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The model's output for one window ``x``: float32 (3, h, w) in [0, 1] -> (3,
        (h - 2p) * s, (w - 2p) * s) float32 in [0, 1] (unclipped), where p is the model's
        ``prepadding`` and s its scale. ``feeds`` are blobs given instead of computed (the
        shared squeeze-and-excitation values of a tiled run). The model's value range, one-
        plane nets and residual output are handled here (see ModelSpec)."""
        return model_output(self.spec, x, lambda xin: self._run(xin, self.spec.output_blob, feeds))

    def features(
        self, x: np.ndarray, blob: str, feeds: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """An inner blob of the net for window ``x`` (as ``infer`` takes it), e.g. the
        feature map a global pool averages: (C, h', w') float32."""
        vr = self.spec.value_range
        xin = x * np.float32(vr) if vr != 1.0 else x
        return self._run(xin, blob, feeds)

    def _run(self, x: np.ndarray, blob: str, feeds: Mapping[str, np.ndarray] | None) -> np.ndarray:

        if self._net is None:
            raise DeviceError("engine is closed")
        # ncnn.Mat wraps the array's memory without owning it: keep both alive until extract
        xc = np.ascontiguousarray(x, dtype=np.float32)
        fed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (feeds or {}).items()}
        with self._lock, self._net.create_extractor() as ex:
            mats = [_mat(xc, self.device.is_gpu)]
            rc = ex.input(self.spec.input_blob, mats[0])
            if rc != 0:
                raise TileFault(f"ncnn input failed (code {rc}) on {self.device.name}")
            for name, value in fed.items():
                mats.append(_mat(value, self.device.is_gpu))
                rc = ex.input(name, mats[-1])
                if rc != 0:
                    raise TileFault(f"ncnn input {name} failed (code {rc}) on {self.device.name}")
            rc, out = ex.extract(blob)
            if rc != 0:
                raise TileFault(f"ncnn extract failed (code {rc}) on {self.device.name}")
            y = np.array(out, copy=True)
            del mats
        return y

    def close(self) -> None:
        net, self._net = getattr(self, "_net", None), None
        if net is not None:
            net.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mat(a: np.ndarray, gpu: bool) -> Any:
    """An ncnn.Mat of the float32 array ``a`` (C, H, W) for ``Extractor.input``.

    ncnn's Python binding wraps a numpy array with a channel stride of H*W, where ncnn's
    own Mats round it up to 16 bytes. The CPU layers honour the stride, but the upload to a
    Vulkan device copies the channels as if they were aligned: whenever H*W is not a multiple
    of 4 every channel after the first arrives shifted, and the output is garbage (found on
    lavapipe: 213/255 off for a 62x51 window; ncnn issue 5909 shows the same for external
    data). So on a GPU such an array is copied into a Mat that ncnn allocates (aligned).
    """
    import ncnn

    if not gpu or a.ndim != 3 or (a.shape[1] * a.shape[2]) % 4 == 0:
        return ncnn.Mat(a)
    c, h, w = a.shape
    m = ncnn.Mat(w, h, c)
    np.array(m, copy=False)[...] = a
    return m
