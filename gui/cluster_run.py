"""Sending a batch to the cluster: every item at once, so each worker PC gets a share.

:class:`ClusterBatch` holds one :class:`upscaler_edge.cluster.client.ClusterClient` (opened on
the first batch, off the UI thread) and reports like the local runner does, through Qt signals
only: for every item exactly one of ``returned``, ``errored`` or ``cancelled``, then
``finished``. Uploads and the connection happen on a helper thread, results arrive on the
client's thread; Qt queues the signals to the window's thread.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Signal

from .workers import Job, one_line

if TYPE_CHECKING:
    from upscaler_edge.cluster.client import WorkerInfo

__all__ = ["ClientLike", "ClusterBatch", "cluster_client_factory"]

log = logging.getLogger(__name__)


class ClientLike(Protocol):
    """What :class:`ClusterBatch` needs of ``ClusterClient``."""

    def submit(
        self, src: Path, dst: Path, options: Any = None, *, progress: Any = None
    ) -> concurrent.futures.Future[Any]: ...

    def submit_video(
        self, src: Path, dst: Path, options: Any = None, video: Any = None, *, progress: Any = None
    ) -> concurrent.futures.Future[Any]: ...

    def cancel(self, future: concurrent.futures.Future[Any]) -> None: ...

    def workers(self) -> list[WorkerInfo]: ...

    def close(self) -> None: ...


def cluster_client_factory(address_file: Path) -> Callable[[], ClientLike]:
    """Opens a client for the cluster saved in ``address_file`` (read when called)."""

    def make() -> ClientLike:
        from upscaler_edge.cluster.client import ClusterClient
        from upscaler_edge.cluster.connect import Address

        return ClusterClient(Address.load(address_file))

    return make


class ClusterBatch(QObject):
    """Items sent to the cluster; signals carry the queue item id.

    ``progress`` is (item id, done, total): tiles for a picture, frames for a video; the first
    one also means a worker took the item.
    """

    progress = Signal(int, int, int)
    returned = Signal(int, object)
    errored = Signal(int, str)
    cancelled = Signal(int)
    finished = Signal(int)

    def __init__(self, client_factory: Callable[[], ClientLike]) -> None:
        super().__init__()
        self._factory = client_factory
        self._client: ClientLike | None = None
        self._lock = threading.Lock()
        self._connecting = threading.Lock()  # one connection attempt at a time
        self._futures: dict[int, tuple[Job, concurrent.futures.Future[Any]]] = {}
        self._closed = False

    def send(self, jobs: list[Job]) -> None:
        """Queue ``jobs`` on the cluster; returns at once (uploads run on a helper thread)."""
        threading.Thread(target=self._send, args=(jobs,), name="cluster-send", daemon=True).start()

    def cancel(self, item_ids: list[int] | None = None) -> None:
        """Give items up (all in flight when None): dropped if waiting, stopped on a worker."""
        with self._lock:
            chosen = [
                (job, fut)
                for item_id, (job, fut) in self._futures.items()
                if item_ids is None or item_id in item_ids
            ]
        for job, _ in chosen:
            job.cancel.set()  # an item still being uploaded is given up right after
        client = self._client
        if client is not None and chosen:
            threading.Thread(
                target=self._cancel, args=(client, [f for _, f in chosen]), daemon=True
            ).start()

    def workers(self) -> list[WorkerInfo]:
        """The cluster's workers, as they last reported (blocks on the network: call it on a
        helper thread; opens the connection when none is open yet)."""
        return self._client_now().workers()

    def shutdown(self) -> None:
        """Cancel what is in flight and close the connection (idempotent)."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            pending = list(self._futures.values())
        for job, _ in pending:
            job.cancel.set()
        if client is not None:
            self._cancel(client, [f for _, f in pending])
            try:
                client.close()
            except Exception:
                log.exception("closing the cluster client failed")

    # --- helper threads ------------------------------------------------------------------

    @staticmethod
    def _cancel(client: ClientLike, futures: list[concurrent.futures.Future[Any]]) -> None:
        for fut in futures:
            if fut.done():
                continue
            try:
                client.cancel(fut)
            except Exception as exc:  # the coordinator is away: the job fails on its own
                log.warning("could not cancel a cluster job: %s", exc)

    def _client_now(self) -> ClientLike:
        """The open client, connecting first if needed (outside ``_lock``, so ``shutdown``
        never waits on a slow connection attempt)."""
        from upscaler_edge.errors import Cancelled

        with self._connecting:
            with self._lock:
                if self._closed:
                    raise Cancelled("the window is closing")
                if self._client is not None:
                    return self._client
            client = self._factory()
            with self._lock:
                if not self._closed:
                    self._client = client
                    return client
            client.close()  # the window closed while it connected
            raise Cancelled("the window is closing")

    def _send(self, jobs: list[Job]) -> None:
        from upscaler_edge.errors import Cancelled, UpscalerError

        try:
            client = self._client_now()
        except Exception as exc:
            reason = one_line(str(exc)) or type(exc).__name__
            if not isinstance(exc, UpscalerError):
                log.exception("cannot open the cluster client")
            for job in jobs:
                self._end(job.item_id, error=f"cluster: {reason}")
            return
        for job in jobs:
            if job.cancel.is_set():
                self._end(job.item_id, cancelled=True)
                continue
            report = self._reporter(job.item_id)
            try:
                if job.video:
                    fut = client.submit_video(
                        job.src, job.dst, job.options, job.video_options, progress=report
                    )
                else:
                    fut = client.submit(job.src, job.dst, job.options, progress=report)
            except Cancelled:
                self._end(job.item_id, cancelled=True)
                continue
            except UpscalerError as exc:
                self._end(job.item_id, error=one_line(str(exc)) or type(exc).__name__)
                continue
            except Exception as exc:
                log.exception("cannot send %s to the cluster", job.src)
                self._end(job.item_id, error=f"internal error: {one_line(str(exc))}")
                continue
            with self._lock:
                self._futures[job.item_id] = (job, fut)
            fut.add_done_callback(functools.partial(self._done, job))
            if job.cancel.is_set():  # cancelled while it was being uploaded
                self._cancel(client, [fut])

    def _reporter(self, item_id: int) -> Callable[[int, int], None]:
        last = [-1]

        def report(done: int, total: int) -> None:
            pct = int(100 * done / total) if total > 0 else 0
            if pct != last[0]:
                last[0] = pct
                self.progress.emit(item_id, done, total)

        return report

    def _done(self, job: Job, fut: concurrent.futures.Future[Any]) -> None:
        from upscaler_edge.errors import Cancelled, UpscalerError

        with self._lock:
            self._futures.pop(job.item_id, None)
        try:
            result = fut.result()
        except (Cancelled, concurrent.futures.CancelledError):
            self._end(job.item_id, cancelled=True)
        except UpscalerError as exc:
            self._end(job.item_id, error=one_line(str(exc)) or type(exc).__name__)
        except Exception as exc:
            log.error("cluster job for %s: %r", job.src, exc)
            self._end(job.item_id, error=f"internal error: {one_line(str(exc))}")
        else:
            self.returned.emit(job.item_id, result)
            self.finished.emit(job.item_id)

    def _end(self, item_id: int, *, error: str | None = None, cancelled: bool = False) -> None:
        if cancelled:
            self.cancelled.emit(item_id)
        else:
            self.errored.emit(item_id, error or "failed")
        self.finished.emit(item_id)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._futures)
