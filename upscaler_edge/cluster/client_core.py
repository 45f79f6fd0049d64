"""The plumbing under :class:`~upscaler_edge.cluster.client.ClusterClient`: the connection,
the jobs waiting for an answer, and the answers.

:class:`ClientCore` keeps the NATS connection on an asyncio loop in its own thread, uploads
each input once for all the jobs that use it at the same time, publishes jobs, cancels them,
waits for them, and takes in what comes back: progress, results, and JetStream's word that it
gave a job up (its workers vanished ``max_deliver`` times: :class:`JobFailed`). Exactly one
answer per job: the first result for a job id and index wins and is written to its output
atomically (a video segment's into its video's :class:`VideoParts` folder); a late one is
counted in ``ignored`` and its file dropped. The image side (``cluster.client``) and the video
side (``cluster.client_video``) send their jobs through it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import errors
from ..errors import Cancelled, JobFailed, UpscalerError
from ..imageio.atomic import place
from ..integrity import sha256
from ..pipeline import UpscaleResult
from . import protocol
from .connect import Address, close, connect
from .parts import VideoParts
from .protocol import FileRef, Job, ProtocolError, Result
from .streams import ensure

__all__ = ["KEEP_CONSUMER_S", "ClientCore", "Progress", "WorkerInfo"]

# the name it had before the client was split in three, so log settings still apply to it
log = logging.getLogger("upscaler_edge.cluster.client")

T = TypeVar("T")
#: a client away this long (its consumers idle) is forgotten by the server; one that comes
#: back sooner with the same ``client_id`` (the bot) collects the results that came meanwhile
KEEP_CONSUMER_S = 24 * 3600.0
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    device: str
    jobs_done: int
    mp_per_s: float | None
    current: str | None
    small_only: bool


@dataclass
class _Pending:
    job: Job
    dst: Path
    overwrite: bool
    future: concurrent.futures.Future[Any]
    progress: Progress | None = None
    seq: int | None = None  # its place in the jobs stream while it waits
    worker: str | None = None  # the worker that last reported progress on it
    started: float = field(default_factory=time.perf_counter)


class ClientCore:
    """The connection, the jobs waiting for an answer and their answers; the base of
    :class:`~upscaler_edge.cluster.client.ClusterClient` (which sends images) and of
    :class:`~upscaler_edge.cluster.client_video.ClientVideo` (which sends videos and keeps
    ``_videos`` and ``_parts`` up to date for the cancels and results handled here)."""

    def __init__(self, address: Address, *, client_id: str | None = None) -> None:
        self.address = address
        self.client_id = client_id or uuid.uuid4().hex[:16]
        self.ignored = 0  # late or duplicate results dropped
        self._closed = False
        self._pending: dict[str, _Pending] = {}
        self._inputs: dict[str, int] = {}  # input object -> jobs still using it
        self._videos: dict[int, list[concurrent.futures.Future[Any]]] = {}  # id -> segments
        self._parts: dict[str, VideoParts] = {}  # segment job key -> its video's folder
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cluster-client", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._open(), 30)
        except BaseException:
            self._stop_loop()
            raise

    # -- loop plumbing ------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        async def finish() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._call(finish(), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def reply(self) -> str:
        return f"ue.results.{self.client_id}"

    async def _open(self) -> None:
        self._files_lock = asyncio.Lock()
        self._nc = await connect(self.address, f"upscaler-edge client {self.client_id}")
        js = self._js = self._nc.jetstream()
        await ensure(js)
        self._files = await js.object_store(protocol.FILES_BUCKET)
        self._kv = await js.key_value(protocol.WORKERS_BUCKET)
        from nats.js.api import ConsumerConfig, DeliverPolicy

        self._subs = [
            await js.subscribe(
                self.reply,
                durable=f"client-{self.client_id}",
                cb=self._on_result,
                manual_ack=True,
                stream=protocol.RESULTS_STREAM,
                config=ConsumerConfig(inactive_threshold=KEEP_CONSUMER_S),
            ),
            await js.subscribe(
                f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{protocol.JOBS_STREAM}.*",
                durable=f"dead-{self.client_id}",
                cb=self._on_dead,
                manual_ack=True,
                stream=protocol.DEAD_STREAM,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.NEW, inactive_threshold=KEEP_CONSUMER_S
                ),
            ),
            await self._nc.subscribe(
                self.reply.replace("ue.results.", "ue.progress.", 1), cb=self._on_progress
            ),
        ]

    def close(self) -> None:
        self._closed = True
        for p in list(self._pending.values()):
            if not p.future.done():
                p.future.set_exception(Cancelled("the cluster client closed"))
        with contextlib.suppress(Exception):
            self._call(close(self._nc, drain=False), 10)
        self._stop_loop()

    # -- sending (images and video segments alike) --------------------------------------
    async def _put_input(self, src: Path) -> FileRef:
        """Upload the input once for all the jobs that use it at the same time."""
        digest = await asyncio.to_thread(sha256, src)
        ref = FileRef(f"in/{digest}", digest, src.stat().st_size, src.name[-255:])
        async with self._files_lock:  # never a put and a delete of one object at once
            self._inputs[ref.object] = self._inputs.get(ref.object, 0) + 1
            if self._inputs[ref.object] == 1:
                with open(src, "rb") as fh:
                    await self._files.put(ref.object, fh)
        return ref

    async def _publish(
        self,
        job: Job,
        size: str,
        dst: Path,
        overwrite: bool,
        future: concurrent.futures.Future[Any],
        progress: Progress | None,
    ) -> None:
        pending = _Pending(job, dst, overwrite, future, progress)
        self._pending[job.key] = pending
        ack = await self._js.publish(
            protocol.JOB_SUBJECTS[size], job.to_bytes(), headers={"Nats-Msg-Id": job.key}
        )
        pending.seq = ack.seq
        await self._nc.publish(protocol.WAKE_SUBJECT, b"")

    def cancel(self, future: concurrent.futures.Future[Any]) -> None:
        """Give a job up: dropped from the queue if still waiting, stopped on its worker."""
        if self._closed:  # closing gave every job up already
            return
        self._call(self._cancel(future), 30)

    async def _cancel(self, future: concurrent.futures.Future[Any]) -> None:
        parts = self._videos.get(id(future), [future])
        for key, p in list(self._pending.items()):
            if p.future not in parts or self._pending.pop(key, None) is None:
                continue  # (answered meanwhile)
            self._parts.pop(key, None)
            if p.seq is not None:
                with contextlib.suppress(Exception):
                    await self._js.delete_msg(protocol.JOBS_STREAM, p.seq)
            await self._nc.publish(protocol.CANCEL_SUBJECT, json.dumps({"job": p.job.job}).encode())
            await self._release_input(p.job.input.object)
            if not p.future.done():
                p.future.set_exception(Cancelled("cancelled"))
        if not future.done():
            future.set_exception(Cancelled("cancelled"))

    def running_on(self, future: concurrent.futures.Future[Any]) -> str | None:
        """The worker that last reported progress on this job (None before any)."""
        for p in list(self._pending.values()):
            if p.future is future:
                return p.worker
        return None

    # -- waiting ------------------------------------------------------------------------
    def wait(self, future: concurrent.futures.Future[T], cancel: Any, timeout: float | None) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return future.result(0.1)
            except concurrent.futures.TimeoutError:
                pass
            if cancel is not None and cancel.is_set():
                self.cancel(future)
                raise Cancelled("cancelled")
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(future)
                raise JobFailed(f"the job ran past its {timeout:g} s time limit and was stopped")

    # -- answers ------------------------------------------------------------------------
    async def _on_progress(self, msg: Any) -> None:
        with contextlib.suppress(ValueError, TypeError, KeyError, UnicodeDecodeError):
            body = json.loads(msg.data)
            p = self._pending.get(f"{body['job']}:{body['index']}")
            if p is None:
                return
            p.worker = str(body["worker"])
            if p.progress is not None:
                p.progress(int(body["done"]), int(body["total"]))

    async def _on_result(self, msg: Any) -> None:
        try:
            result = protocol.parse_result(msg.data)
        except ProtocolError as exc:
            log.warning("dropped a malformed result: %s", exc)
            await msg.ack()
            return
        pending = self._pending.pop(f"{result.job}:{result.index}", None)
        if pending is None:
            self.ignored += 1
            log.info(
                "ignored a late result for %s:%s from %s", result.job, result.index, result.worker
            )
        else:
            outcome: tuple[Any, BaseException | None]
            try:
                outcome = (await self._accept(pending, result), None)
            except UpscalerError as exc:
                outcome = (None, exc)
            except Exception as exc:  # a bug must not leave the job hanging
                log.exception("result of %s", pending.job.key)
                outcome = (None, UpscalerError(f"internal error: {exc}"))
            # the input goes before the caller hears: its next job may use the same file
            await self._release_input(pending.job.input.object)
            if outcome[1] is not None:
                pending.future.set_exception(outcome[1])
            else:
                pending.future.set_result(outcome[0])
        if result.object:
            with contextlib.suppress(Exception):
                await self._files.delete(result.object)
        await msg.ack()

    async def _accept(self, pending: _Pending, result: Result) -> Any:
        if not result.ok:
            raise errors.error_from(result.error, result.message or "failed on a worker")
        assert result.object is not None
        folder = pending.dst.parent
        with tempfile.NamedTemporaryFile(
            dir=folder, prefix=f".{pending.dst.name}.", suffix=".tmp", delete=False
        ) as fh:
            tmp = Path(fh.name)
            try:
                await self._files.get(result.object, writeinto=fh)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        try:
            if await asyncio.to_thread(sha256, tmp) != result.sha256:
                raise JobFailed(f"{pending.job.input.name}: the result arrived damaged")
            if pending.job.kind == "segment":
                tmp.replace(pending.dst)  # into the video's parts folder
                meta = {**result.meta, "worker": result.worker}
                parts = self._parts.pop(pending.job.key, None)
                if parts is not None:  # kept for a resume until the video is written
                    parts.keep(pending.job.index, meta)
                return meta, pending.dst
            await asyncio.to_thread(place, tmp, pending.dst, pending.overwrite)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        meta = result.meta
        return UpscaleResult(
            src=None,
            dst=pending.dst,
            in_size=_pair(meta.get("in_size")),
            out_size=_pair(meta.get("out_size")),
            model=str(meta.get("model", "")),
            scale=int(meta.get("scale") or 0),
            device=f"{result.worker}: {meta.get('device', '?')}",
            seconds=time.perf_counter() - pending.started,
        )

    async def _on_dead(self, msg: Any) -> None:
        with contextlib.suppress(Exception):
            seq = int(json.loads(msg.data)["stream_seq"])
            raw = await self._js.get_msg(protocol.JOBS_STREAM, seq)
            job = protocol.parse_job(raw.data)
            pending = self._pending.pop(job.key, None) if job.reply == self.reply else None
            if pending is not None:
                await self._js.delete_msg(protocol.JOBS_STREAM, seq)
                pending.future.set_exception(
                    JobFailed(
                        f"{job.input.name}: no worker could finish it (its workers "
                        "stopped answering every time)"
                    )
                )
                await self._release_input(job.input.object)
        await msg.ack()

    async def _release_input(self, name: str) -> None:
        async with self._files_lock:
            left = self._inputs.get(name, 0) - 1
            if left > 0:
                self._inputs[name] = left
                return
            self._inputs.pop(name, None)
            with contextlib.suppress(Exception):
                await self._files.delete(name)

    # -- the cluster's state ------------------------------------------------------------
    def workers(self) -> list[WorkerInfo]:
        return self._call(self._workers(), 10)

    async def _workers(self) -> list[WorkerInfo]:
        out = []
        try:
            keys = await self._kv.keys()
        except Exception:  # no worker has reported yet
            return []
        for key in keys:
            with contextlib.suppress(Exception):
                entry = await self._kv.get(key)
                s = json.loads(entry.value)
                out.append(
                    WorkerInfo(
                        name=str(s["name"]),
                        device=str(s.get("device", "")),
                        jobs_done=int(s.get("jobs_done", 0)),
                        mp_per_s=s.get("mp_per_s"),
                        current=s.get("current"),
                        small_only=bool(s.get("small_only")),
                    )
                )
        return sorted(out, key=lambda w: w.name)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    return 0, 0
