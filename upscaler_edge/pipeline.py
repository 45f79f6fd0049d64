"""read -> tiles -> engine -> merge -> write, with progress and cancel: the library entry point.

The CLI, the desktop window and the bot all call this module (the last two through the
supervised worker process). Output is written tile by tile straight into a uint8 (or uint16)
buffer of the final size: no float copy of the whole output ever exists, so memory is bounded
by one tile's working set plus the output image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from . import imageio
from .engine import DeviceInfo, Engine, TileFault, cpu_window_pixels, gpu_auto_tile, pick_device
from .errors import Cancelled, DeviceError, OutputError, UpscalerError, UsageError
from .imageio import Frame, Picture
from .models import ModelSpec, resolve_model, verify_model
from .options import Options
from .tiling import Tile, best_grid, plan_tiles, split_tile

__all__ = [
    "BatchItem",
    "CancelToken",
    "Progress",
    "UpscaleResult",
    "Upscaler",
    "default_output_path",
    "upscale_file",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
MIN_RETRY_TILE = 32


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


def default_output_path(src: Path, scale: int, fmt: str = "png") -> Path:
    """``NAME_x4.png`` beside the input."""
    ext = "jpg" if fmt in ("jpg", "jpeg") else fmt
    return src.with_name(f"{src.stem}_x{scale}.{ext}")


def _check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


# 8 dihedral transforms of a (C, H, W) array and their inverses, as the reference's TTA
def _tta_forward(x: np.ndarray, k: int) -> np.ndarray:
    if k & 4:
        x = x.transpose(0, 2, 1)
    if k & 2:
        x = x[:, ::-1, :]
    if k & 1:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x)


def _tta_inverse(y: np.ndarray, k: int) -> np.ndarray:
    if k & 1:
        y = y[:, :, ::-1]
    if k & 2:
        y = y[:, ::-1, :]
    if k & 4:
        y = y.transpose(0, 2, 1)
    return y


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

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._engines: dict[tuple[str, int], Engine] = {}

    # -- engines --------------------------------------------------------------------------
    def engine_for(self, spec: ModelSpec, dev: DeviceInfo) -> Engine:
        key = (spec.name, dev.index)
        eng = self._engines.get(key)
        if eng is None:
            verify_model(spec)
            eng = Engine(spec, dev)
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
    def _infer(self, eng: Engine, x: np.ndarray, tta: bool) -> np.ndarray:
        if not tta:
            y = eng.infer(x)
        else:
            acc = None
            for k in range(8):
                yk = _tta_inverse(eng.infer(_tta_forward(x, k)), k)
                acc = yk.copy() if acc is None else acc.__iadd__(yk)
            y = acc / 8.0
        if float(x.max() - x.min()) > 0.02 and float(y.max() - y.min()) < 1e-4:
            # an all-black or flat result from a real image is a device fault, not a picture
            raise TileFault(f"{eng.device.name} returned a constant tile")
        return y

    def _run_tile(
        self,
        src: np.ndarray,
        out: np.ndarray,
        t: Tile,
        spec: ModelSpec,
        eng: Engine,
        tta: bool,
        maxval: float,
    ) -> None:
        """Infer one tile and paste its core into ``out``; on a device fault retry the tile
        in quarters down to 32 px, then on the CPU, then give up with DeviceError."""
        s = spec.scale
        h, w = src.shape[:2]
        wx0, wy0, wx1, wy1 = t.window
        win = src[max(wy0, 0) : min(wy1, h), max(wx0, 0) : min(wx1, w)]
        if wx0 < 0 or wy0 < 0 or wx1 > w or wy1 > h:  # mirror beyond the image's edges
            pads = ((max(-wy0, 0), max(wy1 - h, 0)), (max(-wx0, 0), max(wx1 - w, 0)), (0, 0))
            win = np.pad(win, pads, mode="reflect")
        x = np.ascontiguousarray(win.transpose(2, 0, 1), dtype=np.float32)
        x *= 1.0 / maxval
        try:
            y = self._infer(eng, x, tta)
        except TileFault as fault:
            if max(t.x1 - t.x0, t.y1 - t.y0) > MIN_RETRY_TILE:
                log.warning("%s; retrying that tile at half size", fault)
                for sub in split_tile(t, w, h, spec.context, spec.edge_pad):
                    self._run_tile(src, out, sub, spec, eng, tta, maxval)
                return
            if eng.device.is_gpu:
                log.warning("%s at %d px; running that tile on the CPU", fault, MIN_RETRY_TILE)
                cpu = self.engine_for(spec, pick_device("cpu"))
                self._run_tile(src, out, t, spec, cpu, tta, maxval)
                return
            raise DeviceError(f"inference failed: {fault}") from fault
        cx0, cy0, cx1, cy1 = t.crop
        core = y[:, cy0 * s : cy1 * s, cx0 * s : cx1 * s]
        core *= maxval
        core += 0.5
        np.clip(core, 0, maxval, out=core)
        out[t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s] = core.transpose(1, 2, 0)

    def _upscale_plane(
        self,
        src: np.ndarray,
        spec: ModelSpec,
        eng: Engine,
        tiles: list[Tile],
        tta: bool,
        job: _Job,
    ) -> np.ndarray:
        """(H, W, 3) uint8/uint16 -> (H*s, W*s, 3) of the same dtype, tile by tile."""
        h, w = src.shape[:2]
        s = spec.scale
        out = np.empty((h * s, w * s, 3), dtype=src.dtype)
        maxval = float(np.iinfo(src.dtype).max)
        for t in tiles:
            _check_cancel(job.cancel)
            self._run_tile(src, out, t, spec, eng, tta, maxval)
            job.step()
        return out

    # -- pictures ------------------------------------------------------------------------
    def plan(
        self, width: int, height: int, options: Options
    ) -> tuple[ModelSpec, DeviceInfo, list[Tile]]:
        spec = resolve_model(options.model, options.scale, options.models_dirs)
        if options.scale is not None and options.scale > spec.scale:
            raise UsageError(f"{spec.name} upscales x{spec.scale}; scale {options.scale} is larger")
        dev = pick_device(options.device)
        if options.tile:  # the user's tile size, honoured exactly
            tiles = plan_tiles(width, height, options.tile, spec.context, spec.edge_pad)
        elif dev.is_gpu:
            tiles = plan_tiles(width, height, gpu_auto_tile(dev), spec.context, spec.edge_pad)
        else:  # the grid with the least inference whose tiles fit the memory budget
            out_bytes = width * height * spec.scale**2 * 3
            tw, th = best_grid(
                width, height, cpu_window_pixels(spec, out_bytes), spec.context, spec.edge_pad
            )
            tiles = plan_tiles(width, height, tw, spec.context, spec.edge_pad, tile_h=th)
        return spec, dev, tiles

    def upscale_picture(
        self,
        pic: Picture,
        options: Options | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> Picture:
        """The picture upscaled; metadata carried (DPI scaled). Raises Cancelled between tiles."""
        opts = options or self.options
        spec, dev, tiles = self.plan(pic.width, pic.height, opts)
        eng = self.engine_for(spec, dev)
        target = opts.scale or spec.scale
        alpha_runs = [
            f.alpha is not None and opts.alpha == "model" and not _is_constant(f.alpha)
            for f in pic.frames
        ]
        job = _Job(len(tiles) * (len(pic.frames) + sum(alpha_runs)), progress, cancel)
        if progress is not None:
            progress(0, job.total)
        frames = []
        for frame, alpha_run in zip(pic.frames, alpha_runs):
            rgb = self._upscale_plane(frame.rgb, spec, eng, tiles, opts.tta, job)
            alpha = None
            if frame.alpha is not None:
                if alpha_run:
                    a3 = np.repeat(frame.alpha[:, :, None], 3, axis=2)
                    up = self._upscale_plane(a3, spec, eng, tiles, opts.tta, job)
                    alpha = _gray_of(up)
                elif opts.alpha == "model":  # constant alpha: no inference needed
                    alpha = np.full(rgb.shape[:2], frame.alpha.flat[0], dtype=frame.alpha.dtype)
                else:
                    alpha = _resize_plane(frame.alpha, rgb.shape[1], rgb.shape[0], Image.BICUBIC)
            if target != spec.scale:
                w, h = pic.width * target, pic.height * target
                rgb = _resize_rgb(rgb, w, h)
                if alpha is not None:
                    alpha = _resize_plane(alpha, w, h, Image.LANCZOS)
            frames.append(Frame(rgb=rgb, alpha=alpha, duration_ms=frame.duration_ms))
        dpi = (pic.dpi[0] * target, pic.dpi[1] * target) if pic.dpi else None
        return replace(pic, frames=frames, dpi=dpi)

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
        spec = resolve_model(opts.model, opts.scale, opts.models_dirs)
        target = opts.scale or spec.scale
        dst = (
            Path(dst) if dst is not None else default_output_path(src, target, opts.format or "png")
        )
        _check_output(src, dst, opts.overwrite)
        pic = imageio.read_picture(src, max_pixels=opts.max_pixels, all_frames=opts.all_frames)
        out = self.upscale_picture(pic, opts, progress, cancel)
        _check_cancel(cancel)
        written = imageio.write_picture(
            out, dst, fmt=opts.format, quality=opts.quality, overwrite=opts.overwrite
        )
        return _result(src, written, pic, spec.name, target, opts, started)

    def upscale_bytes(
        self,
        data: bytes,
        options: Options | None = None,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[bytes, str, UpscaleResult]:
        """In-memory form: encoded input -> (encoded output, format used, result)."""
        opts = options or self.options
        started = time.perf_counter()
        pic = imageio.read_picture(data, max_pixels=opts.max_pixels, all_frames=opts.all_frames)
        out = self.upscale_picture(pic, opts, progress, cancel)
        payload, fmt = imageio.encode_picture(out, opts.format or "png", opts.quality)
        spec = resolve_model(opts.model, opts.scale, opts.models_dirs)
        return (
            payload,
            fmt,
            _result(None, None, pic, spec.name, opts.scale or spec.scale, opts, started),
        )

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
        order, with the result or the error; an error never stops the batch (cancel does)."""
        opts = options or self.options
        pairs = list(items)
        spec = resolve_model(opts.model, opts.scale, opts.models_dirs)
        target = opts.scale or spec.scale

        def load(pair: tuple[Path, Path]) -> Picture:
            _check_output(pair[0], pair[1], opts.overwrite)
            return imageio.read_picture(
                pair[0], max_pixels=opts.max_pixels, all_frames=opts.all_frames
            )

        def finish(flight: tuple[tuple[Path, Path], Future, Picture, float]) -> BatchItem:
            (src, dst), save, pic, started = flight
            try:
                written = save.result()
            except UpscalerError as exc:
                return BatchItem(src, dst, None, exc)
            result = _result(src, written, pic, spec.name, target, opts, started)
            return BatchItem(src, written, result, None)

        with (
            ThreadPoolExecutor(1, thread_name_prefix="load") as loader,
            ThreadPoolExecutor(1, thread_name_prefix="save") as saver,
        ):
            in_flight = None  # the one save still running while the next file computes
            nxt: Future | None = loader.submit(load, pairs[0]) if pairs else None
            for i, pair in enumerate(pairs):
                started = time.perf_counter()
                fut = nxt
                nxt = loader.submit(load, pairs[i + 1]) if i + 1 < len(pairs) else None
                try:
                    pic = fut.result()  # type: ignore[union-attr]
                    out = self.upscale_picture(pic, opts, progress, cancel)
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
                save = saver.submit(
                    imageio.write_picture,
                    out,
                    pair[1],
                    fmt=opts.format,
                    quality=opts.quality,
                    overwrite=opts.overwrite,
                )
                if in_flight is not None:
                    yield finish(in_flight)
                in_flight = (pair, save, pic, started)
            if in_flight is not None:
                yield finish(in_flight)


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its result, or the error that stopped it."""

    src: Path
    dst: Path
    result: UpscaleResult | None
    error: UpscalerError | None


def _result(
    src: Path | None,
    dst: Path | None,
    pic: Picture,
    model: str,
    scale: int,
    opts: Options,
    started: float,
) -> UpscaleResult:
    return UpscaleResult(
        src=src,
        dst=dst,
        in_size=(pic.width, pic.height),
        out_size=(pic.width * scale, pic.height * scale),
        model=model,
        scale=scale,
        device=pick_device(opts.device).name,
        seconds=time.perf_counter() - started,
    )


def _check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Fail before any work when the output is the input or exists already."""
    try:
        same = dst.exists() and src.exists() and dst.samefile(src)
    except OSError:
        same = False
    if same or dst.resolve() == src.resolve():
        raise OutputError(f"refusing to write over the input {src}")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} exists (use --overwrite)")


def _is_constant(a: np.ndarray) -> bool:
    return bool(a.min() == a.max())


def _gray_of(rgb: np.ndarray) -> np.ndarray:
    acc = rgb.astype(np.uint32).sum(axis=2)
    acc += 1
    acc //= 3
    return acc.astype(rgb.dtype)


def _resize_plane(a: np.ndarray, w: int, h: int, resample: int) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.asarray(Image.fromarray(a, "L").resize((w, h), resample))
    f = np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), resample))
    return np.clip(f + 0.5, 0, np.iinfo(a.dtype).max).astype(a.dtype)


def _resize_rgb(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(rgb, "RGB").resize((w, h), Image.LANCZOS))
    return np.stack([_resize_plane(rgb[:, :, c], w, h, Image.LANCZOS) for c in range(3)], axis=2)


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
