"""Several devices sharing one job's work: the queue each device's thread pulls its next
unit from (``_WorkQueue``, balanced by measured speed at the tail), which devices still work
(``_Devices``), and the tiles of one image spread over several engines (``spread_tiles``).
``batch`` spreads the files of a batch the same way."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from .engine import DeviceInfo, TileEngine
from .errors import DeviceError
from .models import ModelSpec
from .tile_work import _check_cancel, _Feeds, _Job, _RowsDone
from .tiling import Tile

if TYPE_CHECKING:
    from .pipeline import CancelToken, Upscaler

#: the pipeline's messages, under its name as before the split
log = logging.getLogger("upscaler_edge.pipeline")

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


def spread_tiles(
    up: Upscaler,
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
    """``Upscaler._upscale_plane`` over several engines: each engine's thread takes the next
    tile when it is free, runs it (``Upscaler._run_tile``, with the one-device fallbacks)
    and pastes its core; the cores are disjoint, so the threads never write the same
    pixels. A device that fails gives its tile back and stops."""
    work = _WorkQueue(tiles)
    devices = _Devices(len(engines))
    failed: list[BaseException] = []

    def device_loop(eng: TileEngine) -> None:
        while (t := work.take(eng.device)) is not None:
            try:
                _check_cancel(job.cancel)
                if up._before_work is not None:
                    up._before_work(eng.device, t)
                up._run_tile(src, out, t, spec, eng, tta, maxval, feeds)
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
