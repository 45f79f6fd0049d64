"""The only module that imports ncnn: devices, one Net's lifetime, one tile in and out.

Device choice ("auto"): a discrete GPU, else an integrated one, else another Vulkan GPU; a
software Vulkan device (llvmpipe/lavapipe, SwiftShader) only when asked for by index, since
it is ~30x slower than ncnn's own CPU path; else the CPU. With no Vulkan loader or driver the
CPU is used and one log line says so; nothing here crashes for want of a GPU.

Auto tile size on a GPU follows the reference CLI (Real-ESRGAN-ncnn-vulkan), from the
device's heap budget: > 1900 MB -> 200, > 550 MB -> 100, > 190 MB -> 64, else 32. On the
CPU it is the largest tile whose working memory (the model's ``work_bytes_per_pixel`` times
the padded tile's pixels) fits the model's ``cpu_budget_mb`` plus a quarter of the output's size,
capped at a quarter of the memory available; a whole image that fits is one tile.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .errors import DeviceError, ModelError, UsageError
from .models import ModelSpec

__all__ = [
    "DeviceInfo",
    "Engine",
    "TileFault",
    "auto_tile",
    "cpu_threads",
    "cpu_tile_budget",
    "cpu_window_pixels",
    "describe_device",
    "gpu_auto_tile",
    "list_devices",
    "pick_device",
]

log = logging.getLogger(__name__)

# ncnn's GpuInfo.type(): 0 discrete, 1 integrated, 2 virtual, 3 cpu (software rasteriser)
_KINDS = {0: "discrete", 1: "integrated", 2: "virtual", 3: "software"}
_RANK = {"discrete": 0, "integrated": 1, "virtual": 2}


@dataclass(frozen=True)
class DeviceInfo:
    """A compute device; ``index`` is the Vulkan index, -1 for the CPU."""

    index: int
    name: str
    kind: str  # discrete | integrated | virtual | software | cpu
    heap_budget_mb: int = 0

    @property
    def is_gpu(self) -> bool:
        return self.index >= 0


class TileFault(DeviceError):
    """One inference failed or gave an implausible result; the caller may retry smaller."""


_gpu_lock = threading.Lock()
_gpus: list[DeviceInfo] | None = None


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """ncnn prints device banners on fd 2; keep them out of the user's terminal, in the log."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("ncnn: %s", text)


_malloc_tuned = False


def _tune_malloc() -> None:
    """Give freed tile memory back to the OS (glibc only).

    Tiles of different shapes leave glibc's heap fragmented, and its default trim threshold
    (which grows with every large free) keeps the freed memory mapped: measured here, a 12-tile
    job peaked 16% higher. A fixed 1 MB trim threshold keeps the peak at one tile's working set
    at no measurable cost in speed.
    """
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        pass


def cpu_threads() -> int:
    """Threads for ncnn on the CPU: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _probe_gpus() -> list[DeviceInfo]:
    import ncnn

    with _quiet_stderr():
        count = ncnn.get_gpu_count()
    found = []
    for i in range(count):
        info = ncnn.get_gpu_info(i)
        kind = _KINDS.get(info.type(), "virtual")
        try:
            budget = int(ncnn.get_gpu_device(i).get_heap_budget())
        except Exception:  # pragma: no cover - driver specific
            budget = 0
        found.append(DeviceInfo(i, info.device_name(), kind, budget))
    return found


def list_devices() -> list[DeviceInfo]:
    """Vulkan devices, then the CPU (always present, index -1). Never raises."""
    global _gpus
    with _gpu_lock:
        if _gpus is None:
            try:
                _gpus = _probe_gpus()
            except Exception as exc:  # a broken loader must not take the app down
                log.warning("Vulkan is unavailable (%s); using the CPU", exc)
                _gpus = []
            if not _gpus:
                log.info("no Vulkan GPU found (no loader or driver); using the CPU")
    return [*_gpus, DeviceInfo(-1, _cpu_name(), "cpu")]


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
    """The device ``device`` ("auto", "cpu" or a Vulkan index) names."""
    if device == "cpu":  # no Vulkan probe: it costs start-up time and ~60 MB (lavapipe's LLVM)
        return DeviceInfo(-1, _cpu_name(), "cpu")
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
        raise UsageError(f"unknown device {device!r}: use auto, cpu or a GPU index") from None
    for d in devices:
        if d.index == index and d.is_gpu:
            return d
    gpus = ", ".join(f"{d.index} ({d.name})" for d in devices if d.is_gpu) or "none"
    raise UsageError(f"no Vulkan device {index}; devices: {gpus}; or use cpu")


def describe_device(device: str = "auto") -> str:
    d = pick_device(device)
    return d.name if not d.is_gpu else f"GPU {d.index}: {d.name} ({d.kind})"


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on this platform
        return None


def cpu_tile_budget(spec: ModelSpec, out_bytes: int = 0) -> int:
    """Bytes of working memory one CPU tile may use for this model and output size."""
    # The memory target is 400 MB + 2.5x the output: the output buffer and its encoded file
    # take about 1.5x of that, so tiles grow only slowly with the output.
    budget = spec.cpu_budget_mb * 2**20 + out_bytes // 4
    avail = _available_memory()
    if avail is not None:
        budget = min(budget, max(avail // 4, 64 * 2**20))
    return budget


def gpu_auto_tile(dev: DeviceInfo) -> int:
    """The reference's rule, from the device's heap budget."""
    mb = dev.heap_budget_mb
    return 200 if mb > 1900 else 100 if mb > 550 else 64 if mb > 190 else 32


def cpu_window_pixels(spec: ModelSpec, out_bytes: int = 0) -> int:
    """How many input pixels (context included) one CPU tile may hold for this model."""
    return cpu_tile_budget(spec, out_bytes) // max(1, spec.work_bytes_per_pixel)


def auto_tile(
    spec: ModelSpec, dev: DeviceInfo, budget: int | None = None, *, width: int = 0, height: int = 0
) -> int:
    """Tile side in input pixels when the user asked for auto (see the module docstring).

    On the CPU, ``budget`` defaults to ``cpu_tile_budget`` for a ``width`` x ``height``
    input; an image whose whole-image inference fits the budget is returned as one tile.
    """
    if dev.is_gpu:
        return gpu_auto_tile(dev)
    if budget is None:
        budget = cpu_tile_budget(spec, width * height * spec.scale**2 * 3)
    fits = budget // max(1, spec.work_bytes_per_pixel)
    if width and height and width * height <= fits:
        return max(width, height)
    side = int(math.sqrt(fits)) - 2 * spec.context
    return max(32, side)


class Engine:
    """One loaded ``ncnn.Net`` on one device.

    ``infer`` takes a float32 array (3, h, w) in [0, 1] and returns (3, h*s, w*s) float32,
    unclipped. The Net is released by ``close()`` (or the ``with`` block), not by ``__del__``.
    """

    def __init__(self, spec: ModelSpec, device: DeviceInfo, *, threads: int | None = None) -> None:
        import ncnn

        _tune_malloc()
        self.spec = spec
        self.device = device
        self._lock = threading.Lock()
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = threads or cpu_threads()
        if device.is_gpu:
            opt.use_vulkan_compute = True
            net.set_vulkan_device(device.index)
            # fp16 storage/arithmetic stay at ncnn's defaults: on when the device supports it
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

    def infer(self, x: np.ndarray) -> np.ndarray:
        import ncnn

        if self._net is None:
            raise DeviceError("engine is closed")
        _, h, w = x.shape
        s = self.spec.scale
        # ncnn.Mat wraps the array's memory without owning it: keep both alive until extract
        xc = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock, self._net.create_extractor() as ex:
            mat = ncnn.Mat(xc)
            rc = ex.input(self.spec.input_blob, mat)
            if rc != 0:
                raise TileFault(f"ncnn input failed (code {rc}) on {self.device.name}")
            rc, out = ex.extract(self.spec.output_blob)
            if rc != 0:
                raise TileFault(f"ncnn extract failed (code {rc}) on {self.device.name}")
            y = np.array(out, copy=True)
            del mat
        if y.shape != (3, h * s, w * s):
            raise TileFault(f"model gave shape {y.shape} for a {w}x{h} tile; expected x{s}")
        return y

    def close(self) -> None:
        net, self._net = getattr(self, "_net", None), None
        if net is not None:
            net.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
