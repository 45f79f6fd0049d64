"""The job runner: takes jobs from the durable queue, one at a time, and answers each once.

:class:`BotService` outlives any one Telegram connection. The connection loop (``app.py``)
attaches a connected client with :meth:`BotService.attach` and detaches it when the
connection drops; every Telegram call the runner makes waits for a connected client and is
retried after a drop or a long FloodWait, so neither fails a job.

One job, start to finish (:meth:`BotService._process`):
  claim (``running``, attempts + 1) -> status "downloading" -> download into the job's spool
  folder -> header check (format, pixel cap) -> upscale in the supervised worker process, off
  the event loop (``asyncio.to_thread``), progress handed back with ``call_soon_threadsafe`` ->
  "uploading" -> send the result as a document with the job's fixed ``random_id`` -> mark
  ``done`` with the reply's id -> delete the status message. Any failure ends in exactly one
  one-line reply (sent with the same ``random_id``) and a final state; the spool folder goes.

A worker crash (``JobFailed``) puts the job back in line until it has had ``max_attempts``
tries; a clean stop (:meth:`BotService.shutdown`) lets the running job finish within a grace
period, then cancels it and puts it back in line for the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import Cancelled, JobFailed, UpscalerError
from ..jobs import CANCELLED, DONE, FAILED, Job, JobQueue
from .access import Access
from .captions import Catalog
from .config import TELEGRAM_FILE_LIMIT, BotConfig
from .prefs import Prefs
from .progress import StatusEditor, format_eta, progress_text
from .telegram import peer_from_string, send_document, send_text
from .telethon_api import TelegramClient, errors

__all__ = ["BotService", "JobView", "Upscale"]

log = logging.getLogger(__name__)

T = TypeVar("T")

INTERNAL_ERROR = "Sorry, something went wrong on my side; the details are in the bot's log."


class Upscale(Protocol):
    """The blocking upscale call (``Worker.run`` in production); runs in a worker thread."""

    def __call__(
        self,
        src: Path,
        dst: Path,
        options: Any,
        *,
        progress: Callable[[int, int], None],
        cancel: threading.Event,
        timeout: float | None,
    ) -> Any: ...


class _Stopping(Exception):
    """The bot is stopping: put the job back in line."""


class _Refused(Exception):
    """The job cannot be done; ``str()`` is the one-line reply."""


@dataclass
class JobView:
    """What the runner knows about the job it is running (for /status and ETAs)."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    done: int = 0
    total: int = 0
    estimate: float | None = None
    started: float = field(default_factory=time.monotonic)


def options_for(params: dict[str, Any], config: BotConfig, fmt: str) -> Any:
    """The core Options for a job's params (imported lazily: the core may load ncnn)."""
    from ..options import Options

    # overwrite: the spool folder is the job's own, and a crashed attempt may have left a file
    return Options(
        model=params["model"],
        scale=params.get("scale"),
        device=config.device,
        format=fmt,
        max_pixels=config.max_pixels,
        overwrite=True,
    )


class BotService:
    """Runs queued jobs through ``upscale`` and replies through the attached client."""

    def __init__(
        self,
        config: BotConfig,
        queue: JobQueue,
        prefs: Prefs,
        *,
        upscale: Upscale,
        catalog: Catalog,
        device_name: str,
        probe: Callable[..., tuple[str, int, int]],
        resolve: Callable[[str, int | None], Any],
    ) -> None:
        self.config = config
        self.queue = queue
        self.prefs = prefs
        self.access = Access(config.allowed_users)
        self.catalog = catalog
        self.device_name = device_name
        self.resolve = resolve  # (model, scale) -> ModelSpec; raises UpscalerError
        self._upscale = upscale
        self._probe = probe
        self.client: TelegramClient | None = None
        self.editor = StatusEditor(self._edit, interval=config.progress_interval)
        self.current: JobView | None = None
        self.messages: dict[int, Any] = {}  # job id -> Message from the live update
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    # -- connection ---------------------------------------------------------------------
    def attach(self, client: TelegramClient) -> None:
        """A connected, authorised client: Telegram calls may go ahead."""
        self.client = client
        self._connected.set()
        self.wake()

    def detach(self) -> None:
        """The connection is gone: Telegram calls wait until :meth:`attach`."""
        self._connected.clear()

    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` was called: no new job starts."""
        return self._stop.is_set()

    def wake(self) -> None:
        """Tell the runner there may be work (a new job, a reconnect)."""
        self._wake.set()

    async def tg(self, what: str, op: Callable[[TelegramClient], Awaitable[T]]) -> T:
        """Run a Telegram call, waiting out disconnections and FloodWaits that Telethon did
        not sleep itself. Raises :class:`_Stopping` if the bot must stop meanwhile."""
        delay = 1.0
        while True:
            if self._stop_now.is_set():
                raise _Stopping()
            if not self._connected.is_set():
                await self._wait(self._connected.wait(), None)
            client = self.client
            assert client is not None
            try:
                return await op(client)
            except errors.FloodWaitError as exc:
                log.warning(
                    "%s: Telegram asks to wait %s s; trying again after that", what, exc.seconds
                )
                await self._wait(asyncio.sleep(exc.seconds), exc.seconds)
            except ConnectionError as exc:
                log.warning("%s failed (%s); retrying in %.0f s", what, exc, delay)
                await self._wait(asyncio.sleep(delay), delay)
                delay = min(delay * 2, 30.0)

    async def _wait(self, aw: Awaitable[Any], timeout: float | None) -> None:
        """Await ``aw`` but give up (raising _Stopping) when an immediate stop is asked."""
        main = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop_now.wait())
        try:
            await asyncio.wait({main, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (main, stop):
                if not fut.done():
                    fut.cancel()
        if self._stop_now.is_set():
            raise _Stopping()

    async def _edit(self, peer: str, message_id: int, text: str) -> None:
        if not self._connected.is_set() or self.client is None:
            raise ConnectionError("not connected")
        await self.client.edit_message(peer_from_string(peer), message_id, text)

    # -- queue facts ----------------------------------------------------------------------
    def estimate_seconds(self, params: dict[str, Any]) -> float | None:
        """Expected upscale time of a job from measured speed, or None if not measured."""
        speed = self.prefs.speed(params.get("model", ""), self.config.device)
        if not speed:
            return None
        w, h = params.get("width"), params.get("height")
        if w and h:
            mp = w * h / 1e6
        else:  # unknown size: guess from the file (about 0.5 byte per pixel for JPEG)
            mp = (params.get("size") or 500_000) / 0.5 / 1e6
        return mp / speed

    def eta(self, job_id: int) -> float | None:
        """Seconds until the job finishes: running remainder + jobs ahead + itself."""
        total = 0.0
        cur = self.current
        if cur is not None:
            est = cur.estimate
            if est is None:
                est = self.estimate_seconds(cur.job.params)
            if est is None:
                return None
            left = 1 - (cur.done / cur.total) if cur.total else 1
            total += est * left
        for job in self.queue.line():
            est = self.estimate_seconds(job.params)
            if est is None:
                return None
            total += est
            if job.id == job_id:
                return total
        return None

    def queued_text(self, job: Job) -> str:
        """``queued (#2 in line, ETA ~10 s)``."""
        pos = self.queue.position(job.id)
        place = f"#{pos} in line" if pos is not None else "in line"
        return f"queued ({place}, {format_eta(self.eta(job.id))})"

    # -- the runner -------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Start the runner task (once)."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="job-runner")
        return self._runner

    async def _run(self) -> None:
        while not self._stop.is_set():
            if not self._connected.is_set():
                await self._either(self._connected.wait())
                continue
            job = self.queue.claim()
            if job is None:
                self._wake.clear()
                await self._either(self._wake.wait())
                continue
            try:
                await self._process(job)
            except Exception:  # never let one job stop the runner
                log.exception("job %s: unexpected error in the runner", job.id)

    async def _either(self, aw: Awaitable[Any]) -> None:
        main = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (main, stop):
            if not fut.done():
                fut.cancel()

    async def shutdown(self, grace: float) -> None:
        """Start no new job; give the running one ``grace`` seconds, then cancel and requeue it."""
        self._stop.set()
        self._wake.set()
        runner = self._runner
        if runner is None or runner.done():
            return
        done, _ = await asyncio.wait({runner}, timeout=grace)
        if done:
            return
        cur = self.current
        if cur is not None:
            log.info("job %s did not finish within %.0f s; it goes back in line", cur.job.id, grace)
            cur.stopping = True
            cur.cancel.set()
        self._stop_now.set()
        done, _ = await asyncio.wait({runner}, timeout=15)
        if not done:
            runner.cancel()
            await asyncio.wait({runner}, timeout=5)

    def cancel_running(self, user_id: int) -> bool:
        """Cancel the running job if it belongs to ``user_id``."""
        cur = self.current
        if cur is not None and cur.job.user_id == user_id:
            cur.cancel.set()
            return True
        return False

    # -- one job ----------------------------------------------------------------------------
    async def _process(self, job: Job) -> None:
        view = JobView(job, estimate=self.estimate_seconds(job.params))
        self.current = view
        log.info("job %s: start (attempt %s, user %s)", job.id, job.attempts, job.user_id)
        try:
            outcome = await self._execute(view)
        except _Stopping:
            self.queue.requeue(job.id)
            log.info("job %s: stopped; back in line for the next start", job.id)
            return
        except asyncio.CancelledError:
            self.queue.requeue(job.id)
            raise
        except Cancelled:
            if view.stopping:
                self.queue.requeue(job.id)
                return
            await self._cancelled(job)  # /cancel already answered the user
            return
        except JobFailed as exc:
            if job.attempts < self.config.max_attempts:
                log.warning("job %s: worker failed (%s); retrying", job.id, exc)
                self.queue.requeue(job.id)
                self._show(
                    job,
                    f"the upscaler crashed ({exc}); retrying "
                    f"(attempt {job.attempts + 1} of {self.config.max_attempts})",
                )
                self.wake()
                return
            log.warning("job %s: worker failed on the last attempt: %s", job.id, exc)
            reason = str(exc).split(";")[0]  # the rest is advice for the CLI
            await self._end(job, FAILED, f"Sorry, that failed {job.attempts} times: {reason}.")
            return
        except (_Refused, UpscalerError) as exc:
            log.info("job %s: refused: %s", job.id, exc)
            await self._end(job, FAILED, f"Sorry: {exc}")
            return
        except Exception:
            log.exception("job %s: failed", job.id)
            await self._end(job, FAILED, INTERNAL_ERROR)
            return
        finally:
            self.current = None
            self.messages.pop(job.id, None)
        await self._deliver(job, *outcome)

    def _show(self, job: Job, text: str) -> None:
        if job.status_message_id is not None:
            self.editor.show(job.chat_id, job.chat_address, job.status_message_id, text)

    async def _execute(self, view: JobView) -> tuple[Path, str, str]:
        """Download, check and upscale; returns (output path, file name, caption)."""
        job = view.job
        cfg = self.config
        params = job.params
        spool = self.queue.spool_dir(job.id)
        if job.status_message_id is None:  # e.g. the bot crashed before the "queued" reply
            msg_id = await self.tg(
                "status message",
                lambda c: send_text(
                    c,
                    job.chat_address,
                    "starting…",
                    random_id=job.reply_random_id ^ 1,
                    reply_to=job.request_message_id,
                ),
            )
            if msg_id is not None:
                self.queue.set_status_message(job.id, msg_id)
                job = self.queue.get(job.id) or job
                view.job = job
        done_marker = spool / "result.json"
        if done_marker.exists():  # upscaled before a crash: only the reply is missing
            saved = json.loads(done_marker.read_text())
            out = spool / saved["file_name"]
            if out.exists():
                log.info("job %s: result found from a previous attempt", job.id)
                return out, saved["file_name"], saved["caption"]

        self._show(job, progress_text("downloading"))
        size = params.get("size")
        if size is not None and size > cfg.max_file_bytes:
            raise _Refused(
                f"the file is {size / 2**20:.0f} MiB; the limit is {cfg.max_file_mb} MiB"
            )
        message = self.messages.get(job.id)
        if message is None:
            message = await self.tg(
                "fetch message",
                lambda c: c.get_messages(
                    peer_from_string(job.chat_address), ids=job.request_message_id
                ),
            )
        if message is None or (message.photo is None and message.document is None):
            raise _Refused("I can no longer see that message; please send the image again")
        src = spool / ("input" + Path(params.get("file_name", "")).suffix.lower())

        def on_download(done: int, total: int) -> None:
            self._show(job, progress_text("downloading", done, total))

        try:
            await self.tg(
                "download",
                lambda c: c.download_media(message, file=str(src), progress_callback=on_download),
            )
        except (errors.FileReferenceExpiredError, errors.FileReferenceInvalidError):
            # the job waited long enough for Telegram's file reference to expire: refetch
            message = await self.tg(
                "refetch message",
                lambda c: c.get_messages(
                    peer_from_string(job.chat_address), ids=job.request_message_id
                ),
            )
            if message is None:
                raise _Refused("I can no longer see that message; please send the image again")
            await self.tg(
                "download",
                lambda c: c.download_media(message, file=str(src), progress_callback=on_download),
            )
        if not src.exists() or src.stat().st_size == 0:
            raise _Refused("the file is empty")
        if src.stat().st_size > cfg.max_file_bytes:
            raise _Refused(f"the file is over the {cfg.max_file_mb} MiB limit")
        _fmt, width, height = self._probe(src, max_pixels=cfg.max_pixels)
        params = (self.queue.update_params(job.id, width=width, height=height) or job).params
        view.estimate = self.estimate_seconds(params)

        scale = params.get("scale") or self.resolve(params["model"], None).scale
        fmt = params.get("format") or "png"
        out_w, out_h = width * scale, height * scale
        note = ""
        if fmt == "png" and out_w * out_h * 4 > TELEGRAM_FILE_LIMIT:
            if cfg.oversize == "refuse":
                raise _Refused(
                    f"the result ({out_w}x{out_h}) would be over Telegram's 2000 MiB file limit"
                )
            fmt, note = "jpg", " (JPEG: as PNG it would pass Telegram's 2000 MiB limit)"
        stem = Path(params.get("file_name") or f"image_{job.request_message_id}").stem
        file_name = f"{stem}_x{scale}.{fmt}"
        dst = spool / file_name
        options = options_for(params, cfg, fmt)

        loop = asyncio.get_running_loop()

        def on_tiles(done: int, total: int) -> None:  # called in the worker thread
            loop.call_soon_threadsafe(self._tiles, view, done, total)

        self._show(job, progress_text("upscaling", 0, 1))
        began = time.monotonic()
        result = await asyncio.to_thread(
            self._upscale,
            src,
            dst,
            options,
            progress=on_tiles,
            cancel=view.cancel,
            timeout=cfg.job_timeout,
        )
        seconds = float(getattr(result, "seconds", 0.0) or (time.monotonic() - began))
        written = Path(getattr(result, "dst", None) or dst)
        if written != dst:
            dst, file_name = written, written.name
        if dst.stat().st_size > TELEGRAM_FILE_LIMIT:
            raise _Refused(
                f"the result is {dst.stat().st_size / 2**20:.0f} MiB, over Telegram's "
                "2000 MiB file limit; try a smaller scale or format jpg"
            )
        in_w, in_h = getattr(result, "in_size", (width, height))
        res_w, res_h = getattr(result, "out_size", (out_w, out_h))
        self.device_name = str(getattr(result, "device", "") or self.device_name)
        self.prefs.record_speed(params["model"], self.config.device, in_w * in_h / 1e6, seconds)
        caption = (
            f"{params['model']} x{scale}: {in_w}x{in_h} -> {res_w}x{res_h}, "
            f"{seconds:.1f} s on {self.device_name}{note}"
        )
        done_marker.write_text(json.dumps({"file_name": file_name, "caption": caption}))
        return dst, file_name, caption

    def _tiles(self, view: JobView, done: int, total: int) -> None:
        view.done, view.total = done, total
        self._show(view.job, progress_text("upscaling", done, total))

    async def _deliver(self, job: Job, path: Path, file_name: str, caption: str) -> None:
        """Send the result once, mark the job done, remove the status message."""
        job = self.queue.get(job.id) or job
        if job.final:  # cancelled while it ran: drop the result
            await self._cancelled(job)
            return
        self._show(job, progress_text("uploading"))

        def on_upload(done: int, total: int) -> None:
            self._show(job, progress_text("uploading", done, total))

        try:
            reply_id = await self.tg(
                "send result",
                lambda c: send_document(
                    c,
                    job.chat_address,
                    path,
                    file_name=file_name,
                    caption=caption,
                    random_id=job.reply_random_id,
                    reply_to=job.request_message_id,
                    progress=on_upload,
                ),
            )
        except _Stopping:
            self.queue.requeue(job.id)  # the result stays in the spool for the next start
            return
        except Exception:
            log.exception("job %s: could not send the result", job.id)
            await self._end(job, FAILED, INTERNAL_ERROR)
            return
        self.queue.finish(job.id, DONE, reply_message_id=reply_id)
        log.info("job %s: done, reply %s", job.id, reply_id)
        await self._drop_status(job)

    async def _end(self, job: Job, state: str, text: str) -> None:
        """Finish a job that has no result: one reply (sent once), final state, no spool."""
        job = self.queue.get(job.id) or job
        reply_id: int | None = None
        if job.reply_message_id is None:
            try:
                reply_id = await self.tg(
                    "send reply",
                    lambda c: send_text(
                        c,
                        job.chat_address,
                        text,
                        random_id=job.reply_random_id,
                        reply_to=job.request_message_id,
                    ),
                )
            except _Stopping:
                pass
            except Exception:
                log.exception("job %s: could not send the final reply", job.id)
        if not self.queue.finish(job.id, state, error=text, reply_message_id=reply_id):
            if reply_id is not None:
                self.queue.record_reply(job.id, reply_id)
        await self._drop_status(job)

    async def _cancelled(self, job: Job) -> None:
        self.queue.finish(job.id, CANCELLED, error="cancelled")
        log.info("job %s: cancelled", job.id)
        await self._drop_status(job)

    async def _drop_status(self, job: Job) -> None:
        await self.editor.close(job.chat_id)
        if job.status_message_id is None:
            return
        try:
            await self.tg(
                "delete status",
                lambda c: c.delete_messages(
                    peer_from_string(job.chat_address), [job.status_message_id]
                ),
            )
        except _Stopping:
            pass
        except Exception as exc:  # cosmetic: the reply is what matters
            log.warning("job %s: could not delete the status message: %s", job.id, exc)

    async def notify_failed(self, jobs: list[Job]) -> None:
        """Tell users about jobs that :meth:`JobQueue.recover` failed (once each)."""
        for job in jobs:
            if job.reply_message_id is not None:
                continue
            text = f"Sorry: {job.error or 'the job failed'}."
            reply_id = await self.tg(
                "send reply",
                lambda c, job=job, text=text: send_text(
                    c,
                    job.chat_address,
                    text,
                    random_id=job.reply_random_id,
                    reply_to=job.request_message_id,
                ),
            )
            if reply_id is not None:
                self.queue.record_reply(job.id, reply_id)
