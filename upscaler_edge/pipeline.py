"""read -> tiles -> engine -> merge -> write, with progress and cancel: the library entry point.

The CLI, the desktop window and the bot all call this module (the last two through the
supervised worker process). Output is written tile by tile straight into a uint8 (or uint16)
buffer of the final size: no float copy of the whole output ever exists, so memory is bounded
by one tile's working set plus the output image.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from . import imageio, se_sync
from .engine import DeviceInfo, TileEngine, TileFault, pick_device
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
    "default_output_path",
    "upscale_file",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
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
    """What a job resolved once: the model, the device and the output scale."""

    spec: ModelSpec
    device: DeviceInfo
    scale: int
    precision: str = "auto"


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

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


class Upscaler:
    """Upscales pictures and files; keeps one loaded engine per (model, device).

    Not thread-safe: use one per thread (the worker process uses one).
    """

    def __init__(self, options: Options | None = None, registry: Registry | None = None) -> None:
        self.options = options or Options()
        self._registry = registry
        self._engines: dict[tuple[str, DeviceInfo, bool, str], TileEngine] = {}

    # -- engines --------------------------------------------------------------------------
    def engine_for(
        self, spec: ModelSpec, dev: DeviceInfo, *, precise: bool = False, precision: str = "auto"
    ) -> TileEngine:
        """The loaded engine for (model, device): ncnn's, or OpenVINO's for OpenVINO devices
        and the CPU where it can (``ov_engine.open_engine``); ``precise`` = fp32 on a GPU."""
        key = (spec.name, dev, precise and dev.is_gpu, precision)
        eng = self._engines.get(key)
        if eng is None:
            verify_model(spec)
            eng = open_engine(spec, dev, precise=precise, precision=precision)
            self._engines[key] = eng
        return eng

    def close(self) -> None:
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
        eng: TileEngine,
        tiles: list[Tile],
        tta: bool,
        job: _Job,
    ) -> np.ndarray:
        """(H, W, 3) uint8/uint16 -> (H*s, W*s, 3) of the same dtype, tile by tile.

        Three stages overlap: while the device runs tile n (ncnn releases the GIL in
        ``extract``), one thread cuts, mirrors and converts tile n+1 and another pastes tile
        n-1, so the device does not wait on numpy. At most one tile waits in each stage.
        """
        h, w = src.shape[:2]
        s = spec.scale
        out = np.empty((h * s, w * s, 3), dtype=src.dtype)
        maxval = float(np.iinfo(src.dtype).max)
        if not tiles:
            return out
        feeds = self._shared_means(src, spec, eng, tiles, tta, job, maxval)
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
                else:
                    if pasting is not None:
                        pasting.result()
                    pasting = paster.submit(_paste, out, y, t, spec, maxval)
                job.step()
            if pasting is not None:
                pasting.result()
        return out

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
        return Plan(spec, pick_device(opts.device), opts.scale or spec.scale, opts.precision)

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
        working memory per pixel when given (OpenVINO needs less than ncnn)."""
        spec = plan.spec
        if options.tile:
            return plan_tiles(width, height, options.tile, spec.context, spec.edge_pad)
        if engine is not None and not plan.device.is_gpu:
            spec = replace(spec, work_bytes_per_pixel=engine.work_bytes_per_pixel)
        heap = plan.device.heap_budget_mb if plan.device.is_gpu else None
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
        opts = options or self.options
        plan = plan or self.prepare(opts)
        spec, target = plan.spec, plan.scale
        eng = self.engine_for(spec, plan.device, precision=plan.precision)
        tiles = self.tiles(pic.width, pic.height, plan, opts, eng)
        alpha_runs = [
            f.alpha is not None and opts.alpha == "model" and not is_constant(f.alpha)
            for f in pic.frames
        ]
        passes = se_sync.passes(spec, tiles)
        job = _Job(passes * len(tiles) * (len(pic.frames) + sum(alpha_runs)), progress, cancel)
        if progress is not None:
            progress(0, job.total)
        frames = []
        for frame, alpha_run in zip(pic.frames, alpha_runs, strict=True):
            rgb = self._upscale_plane(frame.rgb, spec, eng, tiles, opts.tta, job)
            alpha = None
            if frame.alpha is not None:
                if alpha_run:
                    a3 = np.repeat(frame.alpha[:, :, None], 3, axis=2)
                    up = self._upscale_plane(a3, spec, eng, tiles, opts.tta, job)
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
        dpi = (pic.dpi[0] * target, pic.dpi[1] * target) if pic.dpi else None
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
        out = self.upscale_picture(pic, opts, progress, cancel, plan=plan)
        _check_cancel(cancel)
        written = imageio.write_picture(
            out, dst, fmt=opts.format, quality=opts.quality, overwrite=opts.overwrite
        )
        return _result(src, written, pic, plan, started)

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
        "internal error", logged with its traceback."""
        opts = options or self.options
        pairs = list(items)
        plan = self.prepare(opts)

        def load(pair: tuple[Path, Path]) -> Picture:
            return _guarded(self._load, *pair, opts, plan)

        def save(out: Picture, dst: Path) -> Path:
            return _guarded(
                imageio.write_picture,
                out,
                dst,
                fmt=opts.format,
                quality=opts.quality,
                overwrite=opts.overwrite,
            )

        def finish(flight: tuple[tuple[Path, Path], Future[Path], Picture, float]) -> BatchItem:
            (src, dst), saving, pic, started = flight
            try:
                written = saving.result()
            except UpscalerError as exc:
                return BatchItem(src, dst, None, exc)
            return BatchItem(src, written, _result(src, written, pic, plan, started), None)

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
                    out = _guarded(self.upscale_picture, pic, opts, progress, cancel, plan=plan)
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
                saving = saver.submit(save, out, pair[1])
                if in_flight is not None:
                    yield finish(in_flight)
                in_flight = (pair, saving, pic, started)
            if in_flight is not None:
                yield finish(in_flight)


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its result, or the error that stopped it."""

    src: Path
    dst: Path
    result: UpscaleResult | None
    error: UpscalerError | None


def _result(src: Path, dst: Path, pic: Picture, plan: Plan, started: float) -> UpscaleResult:
    return UpscaleResult(
        src=src,
        dst=dst,
        in_size=(pic.width, pic.height),
        out_size=(pic.width * plan.scale, pic.height * plan.scale),
        model=plan.spec.name,
        scale=plan.scale,
        device=plan.device.name,
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
