"""read -> tiles -> engine -> merge -> write, with progress and cancel: the library entry point.

The CLI, the desktop window and the bot all call this module (the last two through the
supervised worker process). Output is written tile by tile straight into a uint8 (or uint16)
buffer of the final size: no float copy of the whole output ever exists, so memory is bounded
by one tile's working set plus the output image.

Several devices (``-d 0,1``, ``-d all``; ``Plan.devices``) each get their own engine and a
thread that pulls the next unit of work when it is free, so a faster device takes more (and
a slow one leaves the last units to faster ones, by their measured speed): the files of a
batch (``upscale_many``), or the tiles of one image (one tile layout for all, the smallest
device's, so the pixels match a one-device run with that layout). A device that fails
(DeviceError) leaves its unit to the others.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from PIL import Image

from . import gpu_windows, imageio, se_sync
from .engine import DeviceInfo, TileEngine, TileFault, pick_device, pick_devices
from .errors import Cancelled, DeviceError, ImageTooLargeError, UpscalerError
from .imageio import Frame, Picture
from .models import ModelSpec, Registry, default_registry, verify_model
from .naming import output_name
from .options import Options
from .ov_engine import open_engine
from .planes import gray_of, is_constant, resize_plane, resize_rgb
from .preflight import available_memory, check_memory, check_output
from .preprocess import cut, model_window, output_crop
from .preprocess import tta_forward as _tta_forward
from .preprocess import tta_inverse as _tta_inverse
from .tiling import MIN_TILE, Tile, auto_tiles, plan_tiles, split_tile

__all__ = [
    "BatchItem",
    "CancelToken",
    "Plan",
    "Progress",
    "UpscaleResult",
    "Upscaler",
    "WorkHook",
    "default_output_path",
    "upscale_file",
]

log = logging.getLogger(__name__)

#: Whether a PNG output is compressed during the tile loop when the CPU runs the tiles too.
#: Off: inference there keeps every core busy, and on 2 cores (docs/DESIGN.md) the encoding
#: it overlaps, even at idle priority, cost the loop more than it saved after it (OpenVINO,
#: 512x512 -> 2048x2048 in one process, best of 10: 0.455 s on, 0.438 s off); on a GPU the
#: CPU waits during inference, so it is on there.
STREAM_PNG_ON_CPU = False

Progress = Callable[[int, int], None]
#: Called in a device's thread before it runs a unit of spread work: (device, the Path of a
#: batch's file or the Tile of an image). A test hook (slow one device down, fail one).
WorkHook = Callable[[DeviceInfo, object], None]
#: shared squeeze-and-excitation values, one dict per TTA transform (se_sync); None: none
_Feeds = list[dict[str, np.ndarray]] | None


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class UpscaleResult:
    """What one finished job produced. Sizes are (width, height)."""

    src: Path | None
    dst: Path | None
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    model: str
    scale: int
    device: str
    seconds: float


@dataclass(frozen=True)
class Plan:
    """What a job resolved once: the model, the device(s) and the output scale.

    ``device`` is the first device; ``devices`` all of them when the work is spread over
    several (empty: just ``device``).
    """

    spec: ModelSpec
    device: DeviceInfo
    scale: int
    precision: str = "auto"
    devices: tuple[DeviceInfo, ...] = ()

    @property
    def all_devices(self) -> tuple[DeviceInfo, ...]:
        return self.devices or (self.device,)

    def on(self, device: DeviceInfo) -> Plan:
        """This plan on ``device`` alone."""
        return replace(self, device=device, devices=())


def default_output_path(src: Path, scale: int, fmt: str | None = None) -> Path:
    """``NAME_x4.png`` beside the input."""
    return src.with_name(output_name(src, scale, fmt or "png"))


def _check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


class _Job:
    """Counts tiles over a whole picture for progress, and checks cancel between them."""

    def __init__(self, total: int, progress: Progress | None, cancel: CancelToken | None) -> None:
        self.total, self.done = total, 0
        self.progress, self.cancel = progress, cancel
        self._lock = threading.Lock()  # devices sharing one image step from their threads

    def step(self) -> None:
        with self._lock:
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)


_I = TypeVar("_I")


class _WorkQueue(Generic[_I]):
    """Units of work handed to whichever device asks first (pull: a faster device takes
    more), balanced by measured speed at the tail: a device whose last units took longer
    than the other devices together need for all the units left waits instead of taking one
    (so a slow device does not hold the end of a job). A unit given back (its device failed)
    goes to the next device that asks, and that device no longer counts. ``take`` waits
    while units are out on other devices that may still come back, and gives None when every
    unit is done or the queue is closed."""

    def __init__(self, items: Iterable[_I], clock: Callable[[], float] = time.monotonic) -> None:
        self._items = deque(items)
        self._open = len(self._items)
        self._closed = False
        self._cond = threading.Condition()
        self._clock = clock
        self._started: dict[object, float] = {}  # device -> when it took its current unit
        self._per_unit: dict[object, float] = {}  # device -> seconds per unit (running mean)
        self._gone: set[object] = set()

    def take(self, who: object) -> _I | None:
        with self._cond:
            while not self._closed:
                if self._items and not self._others_sooner(who):
                    self._started[who] = self._clock()
                    return self._items.popleft()
                if not self._items and self._open == 0:
                    break
                self._cond.wait()
            return None

    def _others_sooner(self, who: object) -> bool:
        """Whether the other devices, at their measured speed, finish every unit left before
        ``who`` would finish one."""
        mine = self._per_unit.get(who)
        if mine is None:
            return False
        rate = sum(
            1 / t for d, t in self._per_unit.items() if d != who and d not in self._gone and t > 0
        )
        return rate > 0 and len(self._items) / rate < mine

    def done(self, who: object) -> None:
        with self._cond:
            self._open -= 1
            took = self._clock() - self._started.pop(who, self._clock())
            old = self._per_unit.get(who)
            self._per_unit[who] = took if old is None else (old + took) / 2
            self._cond.notify_all()

    def give_back(self, item: _I, who: object) -> None:
        """``who`` failed on ``item``: another device takes it; ``who`` takes no more."""
        with self._cond:
            self._items.appendleft(item)
            self._started.pop(who, None)
            self._gone.add(who)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Devices:
    """How many of the devices sharing a job still work: the last one is never retired (its
    failures are the job's, as with one device)."""

    def __init__(self, count: int) -> None:
        self._alive = count
        self._lock = threading.Lock()

    def retire(self, dev: DeviceInfo, exc: BaseException) -> bool:
        """Retire ``dev`` after ``exc`` unless it is the last one; True when retired."""
        with self._lock:
            if self._alive <= 1:
                return False
            self._alive -= 1
        log.warning("%s failed (%s); the other devices take over its work", dev.name, exc)
        return True


class _EitherCancel:
    """Cancelled when the user cancels or the batch stops."""

    def __init__(self, *tokens: CancelToken | None) -> None:
        self._tokens = [t for t in tokens if t is not None]

    def is_set(self) -> bool:
        return any(t.is_set() for t in self._tokens)


class _RowsDone:
    """Which output rows are final while tiles finish, in any order (several devices too): a
    row is final once every tile whose core covers it is pasted, so rows above the top of the
    highest tile still to come are; ``notify(n)`` hears each time that count ``n`` grows."""

    def __init__(
        self, tiles: Sequence[Tile], scale: int, height: int, notify: Callable[[int], None] | None
    ) -> None:
        self._left: dict[int, int] = {}  # core top (input rows) -> tiles with it not pasted
        for t in tiles:
            self._left[t.y0] = self._left.get(t.y0, 0) + 1
        self._scale, self._height, self._notify = scale, height, notify
        self._told = 0
        self._lock = threading.Lock()

    def done(self, t: Tile) -> None:
        """Tile ``t`` is pasted."""
        if self._notify is None:
            return
        with self._lock:
            self._left[t.y0] -= 1
            if not self._left[t.y0]:
                del self._left[t.y0]
            rows = min(self._left) * self._scale if self._left else self._height
            if rows <= self._told:
                return
            self._told = rows
            self._notify(rows)


class Upscaler:
    """Upscales pictures and files; keeps one loaded engine per (model, device).

    Not thread-safe: use one per thread (the worker process uses one).
    """

    def __init__(
        self,
        options: Options | None = None,
        registry: Registry | None = None,
        *,
        before_work: WorkHook | None = None,
    ) -> None:
        self.options = options or Options()
        self._registry = registry
        self._engines: dict[tuple[str, DeviceInfo, bool, str], TileEngine] = {}
        self._engines_lock = threading.Lock()  # several devices' threads load engines
        self._verdicts: dict[tuple[str, DeviceInfo], gpu_windows.Verdict | None] = {}
        self._verdicts_lock = threading.Lock()
        self._before_work = before_work

    # -- engines --------------------------------------------------------------------------
    def engine_for(
        self, spec: ModelSpec, dev: DeviceInfo, *, precise: bool = False, precision: str = "auto"
    ) -> TileEngine:
        """The loaded engine for (model, device): ncnn's, or OpenVINO's for OpenVINO devices
        and the CPU where it can (``ov_engine.open_engine``); ``precise`` = fp32 on a GPU."""
        key = (spec.name, dev, precise and dev.is_gpu, precision)
        with self._engines_lock:
            eng = self._engines.get(key)
            if eng is None:
                verify_model(spec)
                eng = open_engine(spec, dev, precise=precise, precision=precision)
                self._engines[key] = eng
        return eng

    def gpu_verdict(self, spec: ModelSpec, dev: DeviceInfo) -> gpu_windows.Verdict | None:
        """Which window sides ``dev`` computes faithfully for ``spec`` (``gpu_windows``):
        checked on first use and cached on disk; None where big GPU tiles are not considered
        (the CPU, a software device, a model that keeps the reference's rule, a small heap)."""
        if not gpu_windows.qualifies(spec, dev):
            return None
        sides = gpu_windows.candidate_sides(spec, dev.heap_budget_mb)
        if not sides:
            return None
        ref = gpu_windows.reference_side(spec, dev.heap_budget_mb)
        with self._verdicts_lock:
            if (spec.name, dev) in self._verdicts:
                return self._verdicts[(spec.name, dev)]
            key = gpu_windows.cache_key(dev, spec, sides, ref)
            verdict = gpu_windows.cached(key)
            if verdict is None:
                log.warning(
                    "checking which tile sizes %s computes like the CPU for %s (once)",
                    dev.name,
                    spec.name,
                )
                try:
                    verdict = gpu_windows.check(
                        lambda precise: self.engine_for(spec, dev, precise=precise),
                        self.engine_for(spec, pick_device("cpu-ncnn")),
                        spec,
                        sides,
                        ref,
                    )
                except Exception as exc:  # the check must never fail a job
                    log.warning("GPU tile check failed (%s): the reference's tile size", exc)
                    log.info("GPU tile check", exc_info=True)
                else:
                    gpu_windows.store(key, verdict)
                    best = max(verdict.choices, key=lambda c: c.side)
                    log.info(
                        "%s, %s: tiles up to %d px in %s (checked in %.1f s)",
                        dev.name,
                        spec.name,
                        best.side,
                        "fp32" if best.precise else "fp16",
                        verdict.seconds,
                    )
            self._verdicts[(spec.name, dev)] = verdict
        return verdict

    def _precise_for(self, spec: ModelSpec, dev: DeviceInfo, tiles: list[Tile]) -> bool:
        """fp32 for windows bigger than ``dev`` computes faithfully in fp16."""
        if not dev.is_gpu or not tiles:
            return False
        if gpu_windows.max_window_side(tiles) <= gpu_windows.reference_side(
            spec, dev.heap_budget_mb
        ):
            return False
        verdict = self.gpu_verdict(spec, dev)
        return verdict is not None and gpu_windows.needs_fp32(verdict, tiles)

    def _ran_on(self, plan: Plan) -> str:
        """The devices a job ran on, as the engines name them: "cpu" is OpenVINO's CPU or
        ncnn's (``open_engine`` picks per model), and the name says which."""
        names = []
        with self._engines_lock:
            for d in plan.all_devices:
                eng = self._engines.get((plan.spec.name, d, False, plan.precision))
                names.append(eng.device.name if eng is not None and not d.is_gpu else d.name)
        return " + ".join(names)

    def close(self) -> None:
        with self._engines_lock:
            for eng in self._engines.values():
                eng.close()
            self._engines.clear()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one tile, with the fallbacks ------------------------------------------------------
    def _infer(self, eng: TileEngine, x: np.ndarray, tta: bool, feeds: _Feeds = None) -> np.ndarray:
        def run(x: np.ndarray, k: int) -> np.ndarray:
            return eng.infer(x, feeds[k]) if feeds else eng.infer(x)

        if not tta:
            y = run(x, 0)
        else:
            acc = _tta_inverse(run(x, 0), 0).copy()
            for k in range(1, 8):
                acc += _tta_inverse(run(_tta_forward(x, k), k), k)
            y = acc / 8.0
        spread = float(y.max() - y.min())
        if not math.isfinite(spread):
            raise TileFault(f"{eng.device.name} returned NaN or infinite values")
        if float(x.max() - x.min()) > 0.02 and spread < 1e-4:
            # an all-black or flat result from a real image is a device fault, not a picture
            raise TileFault(f"{eng.device.name} returned a constant tile")
        return y

    def _run_tile(
        self,
        src: np.ndarray,
        out: np.ndarray,
        t: Tile,
        spec: ModelSpec,
        eng: TileEngine,
        tta: bool,
        maxval: float,
        feeds: _Feeds = None,
    ) -> None:
        """Infer one tile and paste its core into ``out`` (synchronously, with fallbacks)."""
        try:
            y = self._infer(eng, _window(src, t, maxval, spec), tta, feeds)
        except TileFault as fault:
            self._recover(src, out, t, spec, eng, tta, maxval, fault, feeds)
            return
        _paste(out, y, t, spec, maxval)

    def _recover(
        self,
        src: np.ndarray,
        out: np.ndarray,
        t: Tile,
        spec: ModelSpec,
        eng: TileEngine,
        tta: bool,
        maxval: float,
        fault: TileFault,
        feeds: _Feeds = None,
    ) -> None:
        """A tile failed: on a GPU retry it in fp32 (some GPUs give black or NaN tiles in
        fp16), then in quarters down to MIN_TILE px, then on the CPU; else DeviceError."""
        h, w = src.shape[:2]
        if eng.device.is_gpu and not eng.precise:
            log.warning("%s; retrying that tile in fp32", fault)
            precise = self.engine_for(spec, eng.device, precise=True)
            try:
                y = self._infer(precise, _window(src, t, maxval, spec), tta, feeds)
            except TileFault as again:
                fault = again
            else:
                _paste(out, y, t, spec, maxval)
                return
        if max(t.x1 - t.x0, t.y1 - t.y0) > MIN_TILE:
            log.warning("%s; retrying that tile at half size", fault)
            for sub in split_tile(t, w, h, spec.context, spec.edge_pad):
                self._run_tile(src, out, sub, spec, eng, tta, maxval, feeds)
            return
        if eng.device.is_gpu:
            log.warning("%s at %d px; running that tile on the CPU", fault, MIN_TILE)
            cpu = self.engine_for(spec, pick_device("cpu"))
            self._run_tile(src, out, t, spec, cpu, tta, maxval, feeds)
            return
        raise DeviceError(f"inference failed: {fault}") from fault

    def _upscale_plane(
        self,
        src: np.ndarray,
        spec: ModelSpec,
        engines: Sequence[TileEngine],
        tiles: list[Tile],
        tta: bool,
        job: _Job,
        out: np.ndarray | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(H, W, 3) uint8/uint16 -> (H*s, W*s, 3) of the same dtype, tile by tile, into
        ``out`` when given; with several engines the tiles are spread over them
        (``_spread_tiles``). ``on_rows(n)``, when given, is told (from any thread) each time
        more output rows from the top are final: rows ``0:n`` (see ``_RowsDone``).

        On one device three stages overlap: while the device runs tile n (ncnn releases the GIL in
        ``extract``), one thread cuts, mirrors and converts tile n+1 and another pastes tile
        n-1, so the device does not wait on numpy. At most one tile waits in each stage.
        """
        h, w = src.shape[:2]
        s = spec.scale
        if out is None:
            out = np.empty((h * s, w * s, 3), dtype=src.dtype)
        maxval = float(np.iinfo(src.dtype).max)
        if not tiles:
            return out
        rows = _RowsDone(tiles, s, h * s, on_rows)
        eng = engines[0]
        feeds = self._shared_means(src, spec, eng, tiles, tta, job, maxval)
        if len(engines) > 1 and len(tiles) > 1:
            self._spread_tiles(src, out, spec, engines, tiles, tta, job, maxval, feeds, rows)
            return out

        def paste(y: np.ndarray, t: Tile) -> None:
            _paste(out, y, t, spec, maxval)
            rows.done(t)

        with (
            ThreadPoolExecutor(1, thread_name_prefix="tile-prep") as prep,
            ThreadPoolExecutor(1, thread_name_prefix="tile-paste") as paster,
        ):
            nxt = prep.submit(_window, src, tiles[0], maxval, spec)
            pasting: Future[None] | None = None
            for i, t in enumerate(tiles):
                _check_cancel(job.cancel)
                x = nxt.result()
                if i + 1 < len(tiles):
                    nxt = prep.submit(_window, src, tiles[i + 1], maxval, spec)
                try:
                    y = self._infer(eng, x, tta, feeds)
                except TileFault as fault:
                    if pasting is not None:
                        pasting.result()
                        pasting = None
                    self._recover(src, out, t, spec, eng, tta, maxval, fault, feeds)
                    rows.done(t)
                else:
                    if pasting is not None:
                        pasting.result()
                    pasting = paster.submit(paste, y, t)
                job.step()
            if pasting is not None:
                pasting.result()
        return out

    def _spread_tiles(
        self,
        src: np.ndarray,
        out: np.ndarray,
        spec: ModelSpec,
        engines: Sequence[TileEngine],
        tiles: list[Tile],
        tta: bool,
        job: _Job,
        maxval: float,
        feeds: _Feeds,
        rows: _RowsDone,
    ) -> None:
        """Each engine's thread takes the next tile when it is free, runs it (with the
        one-device fallbacks) and pastes its core; the cores are disjoint, so the threads
        never write the same pixels. A device that fails gives its tile back and stops."""
        work = _WorkQueue(tiles)
        devices = _Devices(len(engines))
        failed: list[BaseException] = []

        def device_loop(eng: TileEngine) -> None:
            while (t := work.take(eng.device)) is not None:
                try:
                    _check_cancel(job.cancel)
                    if self._before_work is not None:
                        self._before_work(eng.device, t)
                    self._run_tile(src, out, t, spec, eng, tta, maxval, feeds)
                    rows.done(t)
                except DeviceError as exc:
                    if devices.retire(eng.device, exc):
                        work.give_back(t, eng.device)
                        return
                    failed.append(exc)
                    work.close()
                    return
                except BaseException as exc:
                    failed.append(exc)
                    work.close()
                    return
                work.done(eng.device)
                job.step()

        with ThreadPoolExecutor(len(engines), thread_name_prefix="device") as pool:
            running = [pool.submit(device_loop, eng) for eng in engines]
            try:
                for fut in running:
                    fut.result()
            except BaseException:  # Ctrl-C: the devices stop after their current tile
                work.close()
                raise
        if failed:
            raise failed[0]

    def _shared_means(
        self,
        src: np.ndarray,
        spec: ModelSpec,
        eng: TileEngine,
        tiles: list[Tile],
        tta: bool,
        job: _Job,
        maxval: float,
    ) -> _Feeds:
        """The whole image's squeeze-and-excitation values for a tiled run (se_sync), so the
        tiles match one whole-image inference; None when not needed. A device fault here
        computes them on the CPU."""
        if not se_sync.needed(spec, tiles):
            return None

        def step() -> None:
            _check_cancel(job.cancel)
            job.step()

        transforms = range(8) if tta else (0,)
        try:
            return se_sync.shared_means(eng.features, src, tiles, spec, maxval, transforms, step)
        except TileFault as fault:
            if not eng.device.is_gpu:
                raise DeviceError(f"inference failed: {fault}") from fault
            log.warning("%s; computing the shared averages on the CPU", fault)
            cpu = self.engine_for(spec, pick_device("cpu"))
            return se_sync.shared_means(cpu.features, src, tiles, spec, maxval, transforms)

    # -- pictures ------------------------------------------------------------------------
    def prepare(self, options: Options | None = None) -> Plan:
        """Resolve the model and the device once for a job (or a batch)."""
        opts = options or self.options
        registry = self._registry or default_registry(tuple(opts.models_dirs))
        spec = registry.resolve(opts.model, opts.scale, opts.denoise)
        devices = pick_devices(opts.device)
        return Plan(
            spec,
            devices[0],
            opts.scale or spec.scale,
            opts.precision,
            devices if len(devices) > 1 else (),
        )

    def tiles(
        self,
        width: int,
        height: int,
        plan: Plan,
        options: Options,
        engine: TileEngine | None = None,
    ) -> list[Tile]:
        """The tiles of a ``width`` x ``height`` input: the user's tile size, exactly, or
        the automatic one for the device (see ``tiling``); on the CPU sized by ``engine``'s
        working memory per pixel when given (OpenVINO needs less than ncnn). Several devices
        share the layout of the one with the smallest tiles."""
        spec = plan.spec
        if options.tile:
            return plan_tiles(width, height, options.tile, spec.context, spec.edge_pad)
        if len(plan.all_devices) > 1:
            layouts = [
                self.tiles(
                    width,
                    height,
                    plan.on(d),
                    options,
                    None if d.is_gpu else self.engine_for(spec, d, precision=plan.precision),
                )
                for d in plan.all_devices
            ]
            return min(layouts, key=lambda ts: max(t.window_pixels for t in ts))
        if engine is not None and not plan.device.is_gpu:
            spec = replace(spec, work_bytes_per_pixel=engine.work_bytes_per_pixel)
        heap = plan.device.heap_budget_mb if plan.device.is_gpu else None
        if heap is not None and gpu_windows.qualifies(spec, plan.device):
            if max(width, height) + 2 * spec.edge_pad <= gpu_windows.reference_side(spec, heap):
                # one window no bigger than the reference's tile with context: nothing to check
                return plan_tiles(width, height, 0, spec.context, spec.edge_pad)
            verdict = self.gpu_verdict(spec, plan.device)
            if verdict is not None:
                return gpu_windows.pick(verdict, width, height, spec)[0]
        return auto_tiles(width, height, spec, heap, available_memory())

    def plan(
        self, width: int, height: int, options: Options
    ) -> tuple[ModelSpec, DeviceInfo, list[Tile]]:
        """Model, device and tiles for one input size (what a job would run)."""
        plan = self.prepare(options)
        return plan.spec, plan.device, self.tiles(width, height, plan, options)

    def upscale_picture(
        self,
        pic: Picture,
        options: Options | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        *,
        plan: Plan | None = None,
    ) -> Picture:
        """The picture upscaled; metadata carried (DPI scaled). Raises Cancelled between tiles."""
        return self._upscale_picture(pic, options, progress, cancel, plan)

    def _upscale_picture(
        self,
        pic: Picture,
        options: Options | None,
        progress: Progress | None,
        cancel: CancelToken | None,
        plan: Plan | None,
        rows_to: Callable[[Picture], Callable[[int], None] | None] | None = None,
    ) -> Picture:
        """``upscale_picture``; with ``rows_to``, a one-frame picture without alpha at the
        model's own scale gets its output buffer first: ``rows_to`` is called with the output
        picture (pixels not computed yet) and may return a callback, told as rows of it
        become final (``_upscale_plane``'s ``on_rows``): the streamed PNG write of
        ``upscale_file``. Any other picture is upscaled as usual, and ``rows_to`` not called."""
        opts = options or self.options
        plan = plan or self.prepare(opts)
        spec, target = plan.spec, plan.scale
        first = (
            None
            if plan.device.is_gpu
            else self.engine_for(spec, plan.device, precision=plan.precision)
        )
        tiles = self.tiles(pic.width, pic.height, plan, opts, first)
        engines = [
            self.engine_for(
                spec, d, precise=self._precise_for(spec, d, tiles), precision=plan.precision
            )
            for d in plan.all_devices
        ]
        alpha_runs = [
            f.alpha is not None and opts.alpha == "model" and not is_constant(f.alpha)
            for f in pic.frames
        ]
        passes = se_sync.passes(spec, tiles)
        job = _Job(passes * len(tiles) * (len(pic.frames) + sum(alpha_runs)), progress, cancel)
        if progress is not None:
            progress(0, job.total)
        dpi = (pic.dpi[0] * target, pic.dpi[1] * target) if pic.dpi else None
        if (
            rows_to is not None
            and len(pic.frames) == 1
            and pic.frames[0].alpha is None
            and target == spec.scale
        ):
            src = pic.frames[0]
            h, w = pic.height * target, pic.width * target
            out = np.empty((h, w, 3), dtype=src.rgb.dtype)
            done = replace(pic, frames=[Frame(out, None, src.duration_ms)], dpi=dpi)
            on_rows = rows_to(done)
            self._upscale_plane(src.rgb, spec, engines, tiles, opts.tta, job, out, on_rows)
            return done
        frames = []
        for frame, alpha_run in zip(pic.frames, alpha_runs, strict=True):
            rgb = self._upscale_plane(frame.rgb, spec, engines, tiles, opts.tta, job)
            alpha = None
            if frame.alpha is not None:
                if alpha_run:
                    a3 = np.repeat(frame.alpha[:, :, None], 3, axis=2)
                    up = self._upscale_plane(a3, spec, engines, tiles, opts.tta, job)
                    alpha = gray_of(up)
                elif opts.alpha == "model":  # constant alpha: no inference needed
                    alpha = np.full(rgb.shape[:2], frame.alpha.flat[0], dtype=frame.alpha.dtype)
                else:
                    alpha = resize_plane(
                        frame.alpha, rgb.shape[1], rgb.shape[0], Image.Resampling.BICUBIC
                    )
            if target != spec.scale:
                w, h = pic.width * target, pic.height * target
                rgb = resize_rgb(rgb, w, h)
                if alpha is not None:
                    alpha = resize_plane(alpha, w, h, Image.Resampling.LANCZOS)
            frames.append(Frame(rgb=rgb, alpha=alpha, duration_ms=frame.duration_ms))
        return replace(pic, frames=frames, dpi=dpi)

    def _load(self, src: Path, dst: Path, opts: Options, plan: Plan) -> Picture:
        """Check the output, the header and the memory it needs, then decode."""
        check_output(src, dst, opts.overwrite)
        _, width, height = imageio.probe(src, max_pixels=opts.max_pixels)
        check_memory(width, height, plan.scale, plan.spec.scale)
        return imageio.read_picture(src, max_pixels=opts.max_pixels, all_frames=opts.all_frames)

    def upscale_file(
        self,
        src: Path | str,
        dst: Path | str | None = None,
        options: Options | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> UpscaleResult:
        """Upscale ``src`` into ``dst`` (default ``NAME_x4.png`` beside it), atomically."""
        opts = options or self.options
        src = Path(src)
        started = time.perf_counter()
        plan = self.prepare(opts)
        dst = Path(dst) if dst is not None else default_output_path(src, plan.scale, opts.format)
        pic = self._load(src, dst, opts, plan)
        output = self._render(pic, dst, opts, progress, cancel, plan)
        try:
            _check_cancel(cancel)
            written = output.write()
        finally:
            output.close()
        return _result(src, written, pic, plan, started, self._ran_on(plan))

    def _render(
        self,
        pic: Picture,
        dst: Path,
        opts: Options,
        progress: Progress | None,
        cancel: CancelToken | None,
        plan: Plan,
    ) -> _Output:
        """Upscale ``pic`` for ``dst``: when the output is a PNG and the tiles run on GPUs
        the file's row bands are compressed while the tiles below them still run
        (``_upscale_picture``'s ``rows_to``, ``imageio.stream_picture``), so only the bands
        left and the write are left for the returned ``_Output``; any other output is
        encoded there as a whole (see ``STREAM_PNG_ON_CPU``)."""
        streamed: list[imageio.StreamedWrite] = []
        overlap = STREAM_PNG_ON_CPU or all(d.is_gpu for d in plan.all_devices)

        def rows_to(done: Picture) -> Callable[[int], None] | None:
            writer = imageio.stream_picture(
                done, dst, fmt=opts.format, quality=opts.quality, overwrite=opts.overwrite
            )
            if writer is None:
                return None
            streamed.append(writer)
            return writer.rows_done

        try:
            out = self._upscale_picture(
                pic, opts, progress, cancel, plan, rows_to if overlap else None
            )
        except BaseException:
            for writer in streamed:
                writer.close()
            raise
        return _Output(out, dst, opts, streamed[0] if streamed else None)

    # -- batches -------------------------------------------------------------------------
    def upscale_many(
        self,
        items: Iterable[tuple[Path, Path]],
        options: Options | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[BatchItem]:
        """Upscale many files; decoding the next file and encoding the last one overlap with
        inference (the reference's load/proc/save stages). Yields one BatchItem per input, in
        order, with the result or the error; an error never stops the batch (cancel does).
        An unexpected exception in one file (a bug, a library's surprise) is that file's
        "internal error", logged with its traceback. With several devices and files, each
        device takes the next file when it is free (``_spread_files``; no tile progress)."""
        opts = options or self.options
        pairs = list(items)
        plan = self.prepare(opts)
        if len(plan.all_devices) > 1 and len(pairs) > 1:
            yield from self._spread_files(pairs, opts, plan, cancel)
            return

        def load(pair: tuple[Path, Path]) -> Picture:
            return _guarded(self._load, *pair, opts, plan)

        def save(out: _Output) -> Path:
            try:
                return _guarded(out.write)
            finally:
                out.close()

        def finish(flight: tuple[tuple[Path, Path], Future[Path], Picture, float]) -> BatchItem:
            (src, dst), saving, pic, started = flight
            try:
                written = saving.result()
            except UpscalerError as exc:
                return BatchItem(src, dst, None, exc)
            return BatchItem(
                src, written, _result(src, written, pic, plan, started, self._ran_on(plan)), None
            )

        with (
            ThreadPoolExecutor(1, thread_name_prefix="load") as loader,
            ThreadPoolExecutor(1, thread_name_prefix="save") as saver,
        ):
            in_flight = None  # the one save still running while the next file computes
            nxt: Future[Picture] | None = loader.submit(load, pairs[0]) if pairs else None
            for i, pair in enumerate(pairs):
                started = time.perf_counter()
                fut = nxt
                assert fut is not None
                nxt = loader.submit(load, pairs[i + 1]) if i + 1 < len(pairs) else None
                try:
                    pic = fut.result()
                    out = _guarded(self._render, pic, pair[1], opts, progress, cancel, plan)
                except Cancelled:
                    if nxt is not None:
                        nxt.cancel()
                    if in_flight is not None:
                        yield finish(in_flight)
                    raise
                except UpscalerError as exc:
                    if in_flight is not None:
                        yield finish(in_flight)
                        in_flight = None
                    yield BatchItem(pair[0], pair[1], None, exc)
                    continue
                saving = saver.submit(save, out)
                if in_flight is not None:
                    yield finish(in_flight)
                in_flight = (pair, saving, pic, started)
            if in_flight is not None:
                yield finish(in_flight)

    def _spread_files(
        self,
        pairs: list[tuple[Path, Path]],
        opts: Options,
        plan: Plan,
        cancel: CancelToken | None,
    ) -> Iterator[BatchItem]:
        """``upscale_many`` over several devices: one thread per device loads, upscales (on
        that device alone, so each result names its device) and writes the next file. A
        DeviceError gives the file back to the other devices and retires its device (the
        last device's errors are the file's, as with one device)."""
        work = _WorkQueue(list(enumerate(pairs)))
        devices = _Devices(len(plan.all_devices))
        finished: queue.Queue[tuple[int, BatchItem] | BaseException] = queue.Queue()
        stop = threading.Event()
        token = _EitherCancel(cancel, stop)

        def one_file(single: Plan, src: Path, dst: Path) -> BatchItem:
            started = time.perf_counter()
            if self._before_work is not None:
                self._before_work(single.device, src)
            pic = _guarded(self._load, src, dst, opts, single)
            out = _guarded(self._render, pic, dst, opts, None, token, single)
            try:
                _check_cancel(token)
                written = _guarded(out.write)
            finally:
                out.close()
            return BatchItem(
                src,
                written,
                _result(src, written, pic, single, started, self._ran_on(single)),
                None,
            )

        def device_loop(dev: DeviceInfo) -> None:
            single = plan.on(dev)
            while (unit := work.take(dev)) is not None:
                i, (src, dst) = unit
                try:
                    item = one_file(single, src, dst)
                except Cancelled as exc:
                    finished.put(exc)
                    work.close()
                    return
                except DeviceError as exc:
                    if devices.retire(dev, exc):
                        work.give_back(unit, dev)
                        return
                    item = BatchItem(src, dst, None, exc)
                except UpscalerError as exc:
                    item = BatchItem(src, dst, None, exc)
                except BaseException as exc:  # _guarded let it through: stop the batch
                    finished.put(exc)
                    work.close()
                    return
                work.done(dev)
                finished.put((i, item))

        threads = [
            threading.Thread(target=device_loop, args=(d,), name=f"device-{d.option}")
            for d in plan.all_devices
        ]
        for th in threads:
            th.start()
        ready: dict[int, BatchItem] = {}
        try:
            for i in range(len(pairs)):
                while i not in ready:
                    got = finished.get()
                    if isinstance(got, BaseException):
                        yield from (ready[k] for k in sorted(ready) if k >= i)
                        raise got
                    ready[got[0]] = got[1]
                yield ready.pop(i)
        finally:
            stop.set()
            work.close()
            for th in threads:
                th.join()


class _Output:
    """An upscaled picture on its way to ``dst``: ``write`` encodes it (for a streamed PNG,
    the bands not yet compressed) and writes it atomically, returning the path written;
    ``close`` (always; idempotent) drops a streamed encoding that was not written."""

    def __init__(
        self, pic: Picture, dst: Path, opts: Options, streamed: imageio.StreamedWrite | None
    ) -> None:
        self.pic, self._dst, self._opts, self._streamed = pic, dst, opts, streamed

    def write(self) -> Path:
        if self._streamed is not None:
            return self._streamed.finish()
        opts = self._opts
        return imageio.write_picture(
            self.pic, self._dst, fmt=opts.format, quality=opts.quality, overwrite=opts.overwrite
        )

    def close(self) -> None:
        if self._streamed is not None:
            self._streamed.close()


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its result, or the error that stopped it."""

    src: Path
    dst: Path
    result: UpscaleResult | None
    error: UpscalerError | None


def _result(
    src: Path, dst: Path, pic: Picture, plan: Plan, started: float, device: str
) -> UpscaleResult:
    return UpscaleResult(
        src=src,
        dst=dst,
        in_size=(pic.width, pic.height),
        out_size=(pic.width * plan.scale, pic.height * plan.scale),
        model=plan.spec.name,
        scale=plan.scale,
        device=device,
        seconds=time.perf_counter() - started,
    )


_T = TypeVar("_T")


def _guarded(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run one file's step; an exception that is not ours becomes that file's
    "internal error" (an UpscalerError), with the traceback in the log (-v)."""
    try:
        return fn(*args, **kwargs)
    except (UpscalerError, KeyboardInterrupt):
        raise
    except MemoryError:
        raise ImageTooLargeError("not enough memory for this image") from None
    except Exception as exc:
        log.info("internal error", exc_info=True)
        raise UpscalerError(f"internal error: {type(exc).__name__}: {exc}") from exc


def _window(src: np.ndarray, t: Tile, maxval: float, spec: ModelSpec) -> np.ndarray:
    """Tile ``t``'s window of ``src`` (H, W, 3) as the model reads it (aligned, padded beyond
    the image's edges as the model's reference does; see ``preprocess``): float32 (3, h, w)
    in [0, 1]."""
    return cut(src, model_window(t, spec), spec, maxval)


def _paste(out: np.ndarray, y: np.ndarray, t: Tile, spec: ModelSpec, maxval: float) -> None:
    """Paste the core of a tile's model output ``y`` into ``out``."""
    s = spec.scale
    cx0, cy0, cx1, cy1 = output_crop(t, spec)
    core = y[:, cy0:cy1, cx0:cx1]
    core *= maxval
    core += 0.5
    np.clip(core, 0, maxval, out=core)
    out[t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s] = core.transpose(1, 2, 0)


def upscale_file(
    src: Path | str,
    dst: Path | str | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> UpscaleResult:
    """One-shot convenience: load the model, upscale one file, release the model."""
    with Upscaler(options) as up:
        return up.upscale_file(src, dst, options, progress, cancel)
