"""One picture through the tiles: their layout (``layout``), its frames and alpha planes
(``upscale_frames``), progress and cancel across the tiles, which output rows are final, a
tile's model window, inference (with TTA) and the paste of its core, and the
squeeze-and-excitation values the tiles share. ``pipeline.Upscaler`` runs the tiles of a
plane (with the fallbacks); ``devices_work`` spreads them over several devices."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import gpu_windows, se_sync
from .engine import DeviceInfo, TileEngine, TileFault, pick_device
from .errors import Cancelled, DeviceError
from .imageio import Frame, Picture
from .models import ModelSpec
from .options import Options
from .planes import gray_of, is_constant, resize_plane, resize_rgb
from .preflight import available_memory
from .preprocess import cut, model_window, output_crop
from .preprocess import tta_forward as _tta_forward
from .preprocess import tta_inverse as _tta_inverse
from .tiling import Tile, auto_tiles, plan_tiles

if TYPE_CHECKING:
    from .pipeline import CancelToken, Plan, Progress, Upscaler

#: the pipeline's messages, under its name as before the split
log = logging.getLogger("upscaler_edge.pipeline")

#: shared squeeze-and-excitation values, one dict per TTA transform (se_sync); None: none
_Feeds = list[dict[str, np.ndarray]] | None


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


def shared_means(
    up: Upscaler,
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
        cpu = up.engine_for(spec, pick_device("cpu"))
        return se_sync.shared_means(cpu.features, src, tiles, spec, maxval, transforms)


def _infer(eng: TileEngine, x: np.ndarray, tta: bool, feeds: _Feeds = None) -> np.ndarray:
    """Run one tile's window ``x`` on ``eng`` (averaged over the 8 TTA transforms when
    ``tta``); a NaN, infinite or constant result from a real image is a TileFault."""

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


def layout(
    up: Upscaler,
    width: int,
    height: int,
    plan: Plan,
    options: Options,
    engine: TileEngine | None = None,
) -> list[Tile]:
    """``Upscaler.tiles``: the user's tile size, exactly; else several devices' smallest
    layout, a GPU's checked window size (``gpu_windows``) or ``tiling.auto_tiles``."""
    spec = plan.spec
    if options.tile:
        return plan_tiles(width, height, options.tile, spec.context, spec.edge_pad)
    if len(plan.all_devices) > 1:
        layouts = [
            up.tiles(
                width,
                height,
                plan.on(d),
                options,
                None if d.is_gpu else up.engine_for(spec, d, precision=plan.precision),
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
        verdict = up.gpu_verdict(spec, plan.device)
        if verdict is not None:
            return gpu_windows.pick(verdict, width, height, spec)[0]
    return auto_tiles(width, height, spec, heap, available_memory())


def _precise_for(up: Upscaler, spec: ModelSpec, dev: DeviceInfo, tiles: list[Tile]) -> bool:
    """fp32 for windows bigger than ``dev`` computes faithfully in fp16."""
    if not dev.is_gpu or not tiles:
        return False
    if gpu_windows.max_window_side(tiles) <= gpu_windows.reference_side(spec, dev.heap_budget_mb):
        return False
    verdict = up.gpu_verdict(spec, dev)
    return verdict is not None and gpu_windows.needs_fp32(verdict, tiles)


def upscale_frames(
    up: Upscaler,
    pic: Picture,
    options: Options | None,
    progress: Progress | None,
    cancel: CancelToken | None,
    plan: Plan | None,
    rows_to: Callable[[Picture], Callable[[int], None] | None] | None = None,
) -> Picture:
    """``Upscaler.upscale_picture``: each frame (and its alpha, when the model upscales
    it) through ``Upscaler._upscale_plane``. With ``rows_to``, a one-frame picture without
    alpha at the model's own scale gets its output buffer first: ``rows_to`` is called with
    the output picture (pixels not computed yet) and may return a callback, told as rows of
    it become final (``_upscale_plane``'s ``on_rows``): the streamed PNG write of
    ``Upscaler.upscale_file``. Any other picture is upscaled as usual, and ``rows_to`` not
    called."""
    opts = options or up.options
    plan = plan or up.prepare(opts)
    spec, target = plan.spec, plan.scale
    first = (
        None if plan.device.is_gpu else up.engine_for(spec, plan.device, precision=plan.precision)
    )
    tiles = up.tiles(pic.width, pic.height, plan, opts, first)
    engines = [
        up.engine_for(spec, d, precise=_precise_for(up, spec, d, tiles), precision=plan.precision)
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
        up._upscale_plane(src.rgb, spec, engines, tiles, opts.tta, job, out, on_rows)
        return done
    frames = []
    for frame, alpha_run in zip(pic.frames, alpha_runs, strict=True):
        rgb = up._upscale_plane(frame.rgb, spec, engines, tiles, opts.tta, job)
        alpha = None
        if frame.alpha is not None:
            if alpha_run:
                a3 = np.repeat(frame.alpha[:, :, None], 3, axis=2)
                a_up = up._upscale_plane(a3, spec, engines, tiles, opts.tta, job)
                alpha = gray_of(a_up)
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
