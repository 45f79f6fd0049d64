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

This module keeps the public API and the ``Upscaler`` (engines, a plane's tiles with their
fallbacks, pictures and files); the parts it calls live beside it: ``tile_work`` (a
picture's frames, tile windows, progress and finished rows), ``devices_work`` (the queue
several devices share, and one image's tiles spread over them) and ``batch`` (batches of
files, on one device or spread over several).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from . import batch, gpu_windows, imageio
from .batch import _Output, _result
from .devices_work import _WorkQueue as _WorkQueue  # re-exported: tests import it here
from .devices_work import spread_tiles
from .engine import DeviceInfo, TileEngine, TileFault, pick_device, pick_devices
from .errors import DeviceError, UpscalerError
from .imageio import Picture
from .models import ModelSpec, Registry, default_registry, verify_model
from .naming import output_name
from .options import Options
from .ov_engine import open_engine
from .preflight import available_memory as available_memory  # re-exported: bench imports it
from .preflight import check_memory, check_output
from .tile_work import (
    _check_cancel,
    _Feeds,
    _infer,
    _Job,
    _paste,
    _RowsDone,
    _window,
    layout,
    shared_means,
    upscale_frames,
)
from .tiling import MIN_TILE, Tile, split_tile

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
        """Which window sides ``dev`` computes like the CPU for ``spec``
        (``gpu_windows.verdict_for``: checked on first use, cached on disk); None where big
        GPU tiles are not considered (the CPU, a software device, a model that keeps the
        reference's rule, a small heap)."""
        with self._verdicts_lock:
            if (spec.name, dev) not in self._verdicts:
                self._verdicts[(spec.name, dev)] = gpu_windows.verdict_for(
                    spec,
                    dev,
                    lambda precise: self.engine_for(spec, dev, precise=precise),
                    lambda: self.engine_for(spec, pick_device("cpu-ncnn")),
                )
            return self._verdicts[(spec.name, dev)]

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
            y = _infer(eng, _window(src, t, maxval, spec), tta, feeds)
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
                y = _infer(precise, _window(src, t, maxval, spec), tta, feeds)
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
        (``devices_work.spread_tiles``). ``on_rows(n)``, when given, is told (from any
        thread) each time more output rows from the top are final: rows ``0:n`` (see
        ``tile_work._RowsDone``).

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
        feeds = shared_means(self, src, spec, eng, tiles, tta, job, maxval)
        if len(engines) > 1 and len(tiles) > 1:
            spread_tiles(self, src, out, spec, engines, tiles, tta, job, maxval, feeds, rows)
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
                    y = _infer(eng, x, tta, feeds)
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
        return layout(self, width, height, plan, options, engine)

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
        return upscale_frames(self, pic, options, progress, cancel, plan)

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
        (``tile_work.upscale_frames``'s ``rows_to``, ``imageio.stream_picture``), so only the bands
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
            out = upscale_frames(
                self, pic, opts, progress, cancel, plan, rows_to if overlap else None
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
        device takes the next file when it is free (``batch.spread_files``; no tile
        progress)."""
        return batch.upscale_many(self, items, options, progress, cancel)


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its result, or the error that stopped it."""

    src: Path
    dst: Path
    result: UpscaleResult | None
    error: UpscalerError | None


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
