"""A worker PC: pulls jobs from the coordinator, runs each in the supervised worker process.

Connections go outward only (to the coordinator), so a PC behind NAT can join. The loop:
fetch one job (large ones first unless ``small_only``), check it (``protocol.parse_job``),
fetch its input from the object store (checked against its sha256), run it in
:class:`upscaler_edge.worker.Worker` (a driver crash costs the child, not this process),
telling JetStream ``in progress`` while it runs, put the output in the object store,
publish the result, and only then acknowledge. A worker that vanishes before the ack loses
nothing: JetStream gives the job to another worker after the ack wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, JobFailed, UpscalerError
from ..integrity import sha256
from ..options import Options
from . import protocol
from .connect import Address, close, connect
from .protocol import Job, ProtocolError, Result
from .streams import ensure, job_settings

__all__ = ["Node", "default_worker_name"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
FETCH_S = 0.2  # one pull request's wait when work may be there
KEEP_SOURCES = 2  # video sources kept for their next segments
IDLE_POLL_S = 2.0  # an idle worker asks again this often (redeliveries ring no bell)
PROGRESS_EVERY_S = 0.25


def default_worker_name() -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return (name.strip("-.") or "worker")[:48]


@dataclass
class Stats:
    jobs_done: int = 0
    jobs_failed: int = 0
    pixels: float = 0.0  # output megapixels (images) or frames x megapixels (segments)
    busy_s: float = 0.0
    current: str | None = None
    device: str = ""
    started: float = field(default_factory=time.time)


class Node:
    """One worker in the cluster; ``run()`` until ``stop`` is set."""

    def __init__(
        self,
        address: Address,
        *,
        name: str | None = None,
        options: Options | None = None,
        small_only: bool = False,
        work_dir: Path | None = None,
        worker: Any = None,
        job_timeout: float | None = None,
    ) -> None:
        self.address = address
        self.name = name or default_worker_name()
        if not protocol.worker_name_ok(self.name):
            raise ProtocolError(f"bad worker name {self.name!r}: letters, digits, - _ . only")
        self.options = options or Options()
        self.small_only = small_only
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="ue-worker-"))
        self._worker = worker
        self.job_timeout = job_timeout
        self.stats = Stats(device=self.options.device)
        self._cancelled: set[str] = set()
        self._cancel_event: Any = None
        self._current: Job | None = None

    def _get_worker(self) -> Any:
        if self._worker is None:
            from ..worker import Worker

            self._worker = Worker(options=self.options)
        return self._worker

    # -- the loop -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        nc = await connect(self.address, f"upscaler-edge worker {self.name}")
        try:
            js = nc.jetstream()
            await ensure(js)
            self.ack_wait, self.max_deliver = await job_settings(js)
            files = await js.object_store(protocol.FILES_BUCKET)
            kv = await js.key_value(protocol.WORKERS_BUCKET)
            sizes = [protocol.SMALL] if self.small_only else [protocol.LARGE, protocol.SMALL]
            subs = [
                await js.pull_subscribe_bind(durable=size, stream=protocol.JOBS_STREAM)
                for size in sizes
            ]
            await nc.subscribe(protocol.CANCEL_SUBJECT, cb=self._on_cancel)
            beat = asyncio.create_task(self._heartbeat(kv, stop))
            halt = asyncio.create_task(self._halt_on(stop))
            log.info("worker %s joined %s (%s jobs)", self.name, self.address.url, "/".join(sizes))
            wake = asyncio.Event()

            async def ring(_msg: Any) -> None:
                wake.set()

            await nc.subscribe(protocol.WAKE_SUBJECT, cb=ring)
            try:
                thorough = True  # the first round, and after an idle wait: ask every queue
                while not stop.is_set():
                    wake.clear()  # a job queued from here on rings again
                    got = False
                    for size, sub in zip(sizes, subs, strict=True):  # large jobs first
                        # a queue with nothing new is skipped without waiting on it; only
                        # the thorough round waits, for redeliveries the count does not show
                        if not thorough and not await _has_new(js, size):
                            continue
                        msg = await _fetch_one(sub, FETCH_S)
                        if msg is not None:
                            got = True
                            await self._handle(nc, js, files, msg)
                            break
                    thorough = False
                    if not got:  # idle: until a client rings, or a redelivery is due
                        try:
                            await asyncio.wait_for(_first(wake, stop), IDLE_POLL_S)
                        except asyncio.TimeoutError:
                            thorough = True
            finally:
                halt.cancel()
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await beat
                with contextlib.suppress(Exception):
                    await kv.delete(self.name)
        finally:
            await close(nc, drain=False)  # an unfinished job goes back to the queue
            if self._worker is not None:
                await asyncio.to_thread(self._worker.close)
            shutil.rmtree(self.work_dir, ignore_errors=True)

    async def _halt_on(self, stop: asyncio.Event) -> None:
        """Stopping (Ctrl+C) stops the running job too; it goes back to the queue."""
        await stop.wait()
        if self._cancel_event is not None:
            self._cancel_event.set()

    async def _on_cancel(self, msg: Any) -> None:
        with contextlib.suppress(ValueError, UnicodeDecodeError, TypeError):
            job = json.loads(msg.data).get("job")
            if isinstance(job, str):
                self._cancelled.add(job)
                if self._current is not None and self._current.job == job and self._cancel_event:
                    self._cancel_event.set()

    async def _heartbeat(self, kv: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            s = self.stats
            state = {
                "name": self.name,
                "host": socket.gethostname(),
                "os": platform.system(),
                "device": s.device,
                "small_only": self.small_only,
                "jobs_done": s.jobs_done,
                "jobs_failed": s.jobs_failed,
                "mp_per_s": round(s.pixels / s.busy_s, 3) if s.busy_s else None,
                "current": s.current,
                "since": s.started,
            }
            with contextlib.suppress(Exception):
                await kv.put(self.name, json.dumps(state).encode())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)

    # -- one job ------------------------------------------------------------------------
    async def _handle(self, nc: Any, js: Any, files: Any, msg: Any) -> None:
        try:
            job = protocol.parse_job(msg.data)
        except ProtocolError as exc:
            log.warning("rejected a malformed job message: %s", exc)
            await msg.term()
            return
        if job.job in self._cancelled:
            await msg.term()
            return
        delivered = int(getattr(msg.metadata, "num_delivered", 1) or 1)
        self._current, self.stats.current = job, job.key
        started = time.perf_counter()
        try:
            result = await self._run(nc, files, msg, job)
        except asyncio.CancelledError:
            raise
        finally:
            self._current, self.stats.current = None, None
            self.stats.busy_s += time.perf_counter() - started
        if result is None:
            if job.job in self._cancelled:  # given up by its client: nobody waits for it
                await msg.term()
            else:  # this worker is stopping: straight back to the queue for another
                await msg.nak()
            return
        if not result.ok and result.error == "JobFailed" and delivered < self.max_deliver:
            # the child crashed or hung: maybe this PC's driver; let another worker try
            log.warning("%s failed here (%s); handing it back", job.key, result.message)
            await msg.nak(delay=1.0)
            return
        await js.publish(
            job.reply,
            result.to_bytes(),
            headers={"Nats-Msg-Id": f"{job.key}:{self.name}:{delivered}"},
        )
        await msg.ack_sync()
        what = f"{job.kind} {job.input.name}" + (f" #{job.index}" if job.kind == "segment" else "")
        took = time.perf_counter() - started
        if result.ok:
            self.stats.jobs_done += 1
            log.info("done %s in %.1f s", what, took)
        else:
            self.stats.jobs_failed += 1
            log.info("failed %s: %s", what, result.message)

    async def _run(self, nc: Any, files: Any, msg: Any, job: Job) -> Result | None:
        folder = self.work_dir / f"{job.job}-{job.index}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            try:
                src = await self._input(files, job)
                opts = protocol.options_from_json(job.options, self.options)
            except UpscalerError as exc:
                return Result(
                    job.job, job.index, self.name, False, error=type(exc).__name__, message=str(exc)
                )
            dst = folder / f"out{job.suffix}"
            import threading

            cancel = threading.Event()
            self._cancel_event = cancel
            loop = asyncio.get_running_loop()
            last = [0.0]

            def progress(done: int, total: int) -> None:
                now = time.monotonic()
                if now - last[0] < PROGRESS_EVERY_S and done != total:
                    return
                last[0] = now
                body = json.dumps(
                    {
                        "job": job.job,
                        "index": job.index,
                        "done": done,
                        "total": total,
                        "worker": self.name,
                    }
                ).encode()
                subject = job.reply.replace("ue.results.", "ue.progress.", 1)
                asyncio.run_coroutine_threadsafe(nc.publish(subject, body), loop)

            worker = self._get_worker()
            if job.kind == "image":
                call = lambda: worker.run(  # noqa: E731
                    src, dst, opts, progress=progress, cancel=cancel, timeout=self.job_timeout
                )
            else:
                call = lambda: worker.run_segment(  # noqa: E731
                    src,
                    job.plan,
                    job.index,
                    dst,
                    opts,
                    progress=progress,
                    cancel=cancel,
                    timeout=self.job_timeout,
                )
            task = asyncio.ensure_future(asyncio.to_thread(call))
            while True:
                done, _ = await asyncio.wait([task], timeout=max(0.5, self.ack_wait / 3))
                if done:
                    break
                with contextlib.suppress(Exception):
                    await msg.in_progress()
            try:
                value = task.result()
            except Cancelled:
                return None
            except UpscalerError as exc:
                return Result(
                    job.job, job.index, self.name, False, error=type(exc).__name__, message=str(exc)
                )
            except Exception as exc:  # a bug costs one job, not the worker
                log.exception("job %s", job.key)
                return Result(
                    job.job,
                    job.index,
                    self.name,
                    False,
                    error="UpscalerError",
                    message=f"internal error: {type(exc).__name__}: {exc}",
                )
            if job.job in self._cancelled:
                return None
            meta = _meta(value)
            self.stats.device = str(meta.get("device") or self.stats.device)
            self.stats.pixels += _megapixels(meta, job)
            written = Path(getattr(value, "dst", None) or dst)
            meta["suffix"] = written.suffix
            digest = await asyncio.to_thread(sha256, written)
            name = f"out/{job.job}/{job.index}/{self.name}"
            with open(written, "rb") as fh:
                await files.put(name, fh)
            return Result(
                job.job,
                job.index,
                self.name,
                True,
                object=name,
                sha256=digest,
                size=written.stat().st_size,
                meta=meta,
            )
        finally:
            self._cancel_event = None
            shutil.rmtree(folder, ignore_errors=True)
            if job.kind == "image":
                with contextlib.suppress(OSError):
                    (self.work_dir / "in" / job.input.sha256).unlink()
            else:  # a video's source serves its next segments; keep the last few only
                _prune(self.work_dir / "in", keep=KEEP_SOURCES)

    async def _input(self, files: Any, job: Job) -> Path:
        """The job's input, fetched once into the work folder and checked."""
        folder = self.work_dir / "in"
        folder.mkdir(exist_ok=True)
        path = folder / job.input.sha256
        if path.exists():
            os.utime(path)  # most recently used: kept by _prune
            return path
        tmp = folder / f".{job.input.sha256}.{os.getpid()}.part"
        try:
            with open(tmp, "wb") as fh:
                await files.get(job.input.object, writeinto=fh)
            if tmp.stat().st_size != job.input.size or sha256(tmp) != job.input.sha256:
                raise ProtocolError(f"{job.input.name}: the input arrived damaged")
            os.replace(tmp, path)
        except ProtocolError:
            raise
        except Exception as exc:
            raise JobFailed(f"{job.input.name}: cannot fetch the input: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return path


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _has_new(js: Any, consumer: str) -> bool:
    """Whether the queue holds jobs nobody has taken yet (True when it cannot tell)."""
    try:
        info = await js.consumer_info(protocol.JOBS_STREAM, consumer)
    except Exception:
        return True
    return bool(info.num_pending)


async def _fetch_one(sub: Any, timeout: float) -> Any:
    from nats.errors import TimeoutError as NatsTimeout

    try:
        msgs = await sub.fetch(1, timeout=timeout)
    except (NatsTimeout, asyncio.TimeoutError):
        return None
    return msgs[0] if msgs else None


def _meta(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):  # a segment's metadata (join_segments checks it as is)
        return {
            "segment": value,
            "device": value.get("device"),
            "seconds": value.get("seconds"),
            "frames": value.get("frames"),
        }
    w, h = value.out_size
    return {
        "in_size": list(value.in_size),
        "out_size": [w, h],
        "model": value.model,
        "scale": value.scale,
        "device": value.device,
        "seconds": round(value.seconds, 3),
        "megapixels": w * h / 1e6,
    }


def _megapixels(meta: dict[str, Any], job: Job) -> float:
    """Output megapixels of a finished job (a segment: its frames' total)."""
    if "segment" in meta:
        w, h = (job.plan or {}).get("encoder", {}).get("size") or (0, 0)
        return float(w * h * int(meta.get("frames") or 0)) / 1e6
    return float(meta.get("megapixels") or 0.0)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used inputs."""
    with contextlib.suppress(OSError):
        files = sorted(
            (p for p in folder.iterdir() if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in files[keep:]:
            old.unlink(missing_ok=True)
