"""Batches of files (``Upscaler.upscale_many``): decoding the next file and encoding the
last one overlap with inference on one device; several devices each take the next file
(``spread_files``). ``_Output`` is one upscaled picture on its way to its file."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import imageio
from .devices_work import _Devices, _EitherCancel, _WorkQueue
from .engine import DeviceInfo
from .errors import Cancelled, DeviceError, ImageTooLargeError, UpscalerError
from .imageio import Picture
from .options import Options
from .tile_work import _check_cancel

if TYPE_CHECKING:
    from .pipeline import BatchItem, CancelToken, Plan, Progress, Upscaler, UpscaleResult

#: the pipeline's messages, under its name as before the split
log = logging.getLogger("upscaler_edge.pipeline")


def upscale_many(
    up: Upscaler,
    items: Iterable[tuple[Path, Path]],
    options: Options | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[BatchItem]:
    """``Upscaler.upscale_many``: one device loads the next file and writes the last one
    on their own threads while it computes; several devices and files go to
    ``spread_files``."""
    from .pipeline import BatchItem  # at call time: pipeline imports this module

    opts = options or up.options
    pairs = list(items)
    plan = up.prepare(opts)
    if len(plan.all_devices) > 1 and len(pairs) > 1:
        yield from spread_files(up, pairs, opts, plan, cancel)
        return

    def load(pair: tuple[Path, Path]) -> Picture:
        return _guarded(up._load, *pair, opts, plan)

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
            src, written, _result(src, written, pic, plan, started, up._ran_on(plan)), None
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
                out = _guarded(up._render, pic, pair[1], opts, progress, cancel, plan)
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


def spread_files(
    up: Upscaler,
    pairs: list[tuple[Path, Path]],
    opts: Options,
    plan: Plan,
    cancel: CancelToken | None,
) -> Iterator[BatchItem]:
    """``upscale_many`` over several devices: one thread per device loads, upscales (on
    that device alone, so each result names its device) and writes the next file. A
    DeviceError gives the file back to the other devices and retires its device (the
    last device's errors are the file's, as with one device)."""
    from .pipeline import BatchItem  # at call time: pipeline imports this module

    work = _WorkQueue(list(enumerate(pairs)))
    devices = _Devices(len(plan.all_devices))
    finished: queue.Queue[tuple[int, BatchItem] | BaseException] = queue.Queue()
    stop = threading.Event()
    token = _EitherCancel(cancel, stop)

    def one_file(single: Plan, src: Path, dst: Path) -> BatchItem:
        started = time.perf_counter()
        if up._before_work is not None:
            up._before_work(single.device, src)
        pic = _guarded(up._load, src, dst, opts, single)
        out = _guarded(up._render, pic, dst, opts, None, token, single)
        try:
            _check_cancel(token)
            written = _guarded(out.write)
        finally:
            out.close()
        return BatchItem(
            src,
            written,
            _result(src, written, pic, single, started, up._ran_on(single)),
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


def _result(
    src: Path, dst: Path, pic: Picture, plan: Plan, started: float, device: str
) -> UpscaleResult:
    from .pipeline import UpscaleResult  # at call time: pipeline imports this module

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
