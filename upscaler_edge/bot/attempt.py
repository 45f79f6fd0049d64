"""One attempt at one claimed job: fetch the image, check it, upscale it, send the result.

:meth:`JobAttempt.produce`: a status message if the "queued" reply never went out -> a result
kept by an attempt that crashed before replying, if any -> "downloading" into the job's spool
folder (refetching the message when Telegram's file reference has expired) -> header check
(format, pixel cap, off the event loop) -> output name and format (the 2000 MiB rule) -> the
upscale in the worker process, awaited in a thread, tile progress handed back with
``call_soon_threadsafe`` -> the result file and its caption.
:meth:`JobAttempt.deliver`: "uploading" -> send it as a document with the job's fixed
``random_id`` -> ``done`` with the reply's id -> delete the status message.

Every way out is decided here. A refusal (bad file, over a limit) or a core error is one
"Sorry: ..." line; anything unexpected is "Sorry: internal error: ..." with the traceback in
the log, and the job fails (it is not retried); a worker crash (``JobFailed``) goes back in
line until ``max_attempts``; the user's /cancel ends it quietly (/cancel answered them); a stop
puts it back in line. Each ending sends at most one reply, with the job's ``random_id``, and a
final state removes the spool folder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, JobFailed, UpscalerError
from ..jobs import CANCELLED, DONE, FAILED, Job
from ..naming import output_name
from .config import TELEGRAM_FILE_LIMIT, BotConfig
from .eta import estimate_seconds
from .link import Stopping, TelegramLink
from .progress import StatusEditor, progress_text
from .stores import AsyncJobQueue, AsyncPrefs
from .telegram import peer_from_string, send_document, send_text
from .telethon_api import errors
from .upscaling import Core, options_for

__all__ = ["Delivery", "JobAttempt", "JobView", "Tools", "internal_error", "one_line"]

log = logging.getLogger(__name__)

RESULT_MARKER = "result.json"  # in the spool: the result is made, only the reply is missing
GONE = "I can no longer see that message; please send the image again"


@dataclass
class JobView:
    """The running job as others may see it: /status, ETAs, /cancel and a clean stop."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False  # cancelled by a stop, not by its user: back in line
    done: int = 0  # tiles
    total: int = 0
    estimate: float | None = None  # seconds of upscaling, from the measured speed


@dataclass(frozen=True)
class Delivery:
    """A result ready to send. ``device`` is None for a result kept from an earlier attempt."""

    path: Path
    caption: str
    device: str | None


@dataclass(frozen=True)
class Tools:
    """What the runner lends each attempt."""

    config: BotConfig
    queue: AsyncJobQueue
    prefs: AsyncPrefs
    link: TelegramLink
    editor: StatusEditor
    core: Core


class _Refused(Exception):
    """The job cannot be done; ``str()`` is the reason for the user."""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def internal_error(exc: BaseException) -> str:
    """The reply for an unexpected exception: its type and message, one line."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    detail = one_line(str(exc))[:200]
    what = f"{name}: {detail}" if detail else name
    return f"Sorry: internal error: {what} (the details are in the bot's log)"


class JobAttempt:
    """One claimed job, from download to reply (see the module's docstring)."""

    def __init__(
        self, tools: Tools, view: JobView, *, message: Any | None, device_name: str
    ) -> None:
        self.tools = tools
        self.view = view
        self._message = message  # from the live update, if this run received it
        self._device_name = device_name

    # -- the two phases -----------------------------------------------------------------
    async def produce(self) -> Delivery | None:
        """The result to send, or None when the job ended (or went back in line) here."""
        job, queue = self.view.job, self.tools.queue
        try:
            return await self._produce()
        except Stopping:
            await queue.requeue(job.id)
            log.info("job %s: stopped; back in line for the next start", job.id)
        except asyncio.CancelledError:
            await queue.requeue(job.id)
            raise
        except Cancelled:
            if self.view.stopping:
                await queue.requeue(job.id)
            else:
                await self._cancelled()  # /cancel already answered the user
        except JobFailed as exc:
            await self._crashed(exc)
        except (_Refused, UpscalerError) as exc:
            log.info("job %s: refused: %s", job.id, exc)
            await self._end(FAILED, one_line(f"Sorry: {exc}"))
        except Exception as exc:
            log.exception("job %s: internal error", job.id)
            await self._end(FAILED, internal_error(exc))
        return None

    async def deliver(self, result: Delivery) -> None:
        """Send the result once, mark the job done, remove the status message."""
        try:
            await self._deliver(result)
        except Stopping:
            await self.tools.queue.requeue(self.view.job.id)  # the result stays in the spool
        except Exception as exc:
            log.exception("job %s: could not send the result", self.view.job.id)
            await self._end(FAILED, internal_error(exc))

    # -- producing ------------------------------------------------------------------------
    async def _produce(self) -> Delivery:
        await self._ensure_status_message()
        spool = await self.tools.queue.spool_dir(self.view.job.id)
        kept = _kept_result(spool)
        if kept is not None:
            log.info("job %s: result found from a previous attempt", self.view.job.id)
            return kept
        src = await self._download(spool)
        return await self._upscale(src, spool)

    async def _ensure_status_message(self) -> None:
        job = self.view.job
        if job.status_message_id is not None:
            return
        # e.g. the bot crashed before the "queued" reply, or that reply hit a FloodWait
        msg_id = await self.tools.link.call(
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
            await self.tools.queue.set_status_message(job.id, msg_id)
            self.view.job = await self.tools.queue.get(job.id) or job

    async def _download(self, spool: Path) -> Path:
        job, cfg = self.view.job, self.tools.config
        self._show(progress_text("downloading"))
        size = job.params.get("size")
        if size is not None and size > cfg.max_file_bytes:
            raise _Refused(
                f"the file is {size / 2**20:.0f} MiB; the limit is {cfg.max_file_mb} MiB"
            )
        message = self._message
        if message is None:
            message = await self._fetch_message("fetch message")
        if message is None or (message.photo is None and message.document is None):
            raise _Refused(GONE)
        src = spool / ("input" + Path(job.params.get("file_name", "")).suffix.lower())
        try:
            await self._download_to(message, src)
        except (errors.FileReferenceExpiredError, errors.FileReferenceInvalidError):
            # the job waited long enough for Telegram's file reference to expire: refetch
            message = await self._fetch_message("refetch message")
            if message is None:
                raise _Refused(GONE) from None
            await self._download_to(message, src)
        got = src.stat().st_size if src.exists() else 0
        if got == 0:
            raise _Refused("the file is empty")
        if got > cfg.max_file_bytes:
            raise _Refused(f"the file is over the {cfg.max_file_mb} MiB limit")
        return src

    async def _fetch_message(self, what: str) -> Any:
        job = self.view.job
        return await self.tools.link.call(
            what,
            lambda c: c.get_messages(
                peer_from_string(job.chat_address), ids=job.request_message_id
            ),
        )

    async def _download_to(self, message: Any, src: Path) -> None:
        def on_download(done: int, total: int) -> None:
            self._show(progress_text("downloading", done, total))

        await self.tools.link.call(
            "download",
            lambda c: c.download_media(message, file=str(src), progress_callback=on_download),
        )

    async def _upscale(self, src: Path, spool: Path) -> Delivery:
        job, cfg, core = self.view.job, self.tools.config, self.tools.core
        _fmt, width, height = await asyncio.to_thread(core.probe, src, max_pixels=cfg.max_pixels)
        params = (
            await self.tools.queue.update_params(job.id, width=width, height=height) or job
        ).params
        speed = await self.tools.prefs.speed(params.get("model", ""), cfg.device)
        self.view.estimate = estimate_seconds(params, speed)

        scale = (
            params.get("scale")
            or (await asyncio.to_thread(core.resolve, params["model"], None)).scale
        )
        fmt = params.get("format") or "png"
        out_w, out_h = width * scale, height * scale
        note = ""
        if fmt == "png" and out_w * out_h * 4 > TELEGRAM_FILE_LIMIT:
            if cfg.oversize == "refuse":
                raise _Refused(
                    f"the result ({out_w}x{out_h}) would be over Telegram's 2000 MiB file limit"
                )
            fmt, note = "jpg", " (JPEG: as PNG it would pass Telegram's 2000 MiB limit)"
        named = Path(params.get("file_name") or f"image_{job.request_message_id}")
        dst = spool / output_name(named, scale, fmt)

        loop = asyncio.get_running_loop()

        def on_tiles(done: int, total: int) -> None:  # called in the worker thread
            loop.call_soon_threadsafe(self._tiles, done, total)

        self._show(progress_text("upscaling", 0, 1))
        result = await asyncio.to_thread(
            core.upscale,
            src,
            dst,
            options_for(params, cfg, fmt),
            progress=on_tiles,
            cancel=self.view.cancel,
            timeout=cfg.job_timeout,
        )
        if result.dst is not None:
            dst = Path(result.dst)
        size = dst.stat().st_size
        if size > TELEGRAM_FILE_LIMIT:
            raise _Refused(
                f"the result is {size / 2**20:.0f} MiB, over Telegram's 2000 MiB file limit; "
                "try a smaller scale or format jpg"
            )
        (in_w, in_h), (res_w, res_h) = result.in_size, result.out_size
        device = result.device or self._device_name
        await self.tools.prefs.record_speed(
            params["model"], cfg.device, in_w * in_h / 1e6, result.seconds
        )
        caption = (
            f"{params['model']} x{scale}: {in_w}x{in_h} -> {res_w}x{res_h}, "
            f"{result.seconds:.1f} s on {device}{note}"
        )
        (spool / RESULT_MARKER).write_text(json.dumps({"file_name": dst.name, "caption": caption}))
        return Delivery(dst, caption, device)

    def _tiles(self, done: int, total: int) -> None:
        self.view.done, self.view.total = done, total
        self._show(progress_text("upscaling", done, total))

    # -- endings --------------------------------------------------------------------------
    async def _deliver(self, result: Delivery) -> None:
        queue = self.tools.queue
        job = self.view.job = await queue.get(self.view.job.id) or self.view.job
        if job.final:  # cancelled while it ran: drop the result
            await self._cancelled()
            return
        self._show(progress_text("uploading"))

        def on_upload(done: int, total: int) -> None:
            self._show(progress_text("uploading", done, total))

        reply_id = await self.tools.link.call(
            "send result",
            lambda c: send_document(
                c,
                job.chat_address,
                result.path,
                file_name=result.path.name,
                caption=result.caption,
                random_id=job.reply_random_id,
                reply_to=job.request_message_id,
                progress=on_upload,
            ),
        )
        await queue.finish(job.id, DONE, reply_message_id=reply_id)
        log.info("job %s: done, reply %s", job.id, reply_id)
        await self._drop_status()

    async def _crashed(self, exc: JobFailed) -> None:
        job, cfg = self.view.job, self.tools.config
        if job.attempts < cfg.max_attempts:
            log.warning("job %s: worker failed (%s); retrying", job.id, exc)
            await self.tools.queue.requeue(job.id)
            self._show(
                f"the upscaler crashed ({exc}); retrying "
                f"(attempt {job.attempts + 1} of {cfg.max_attempts})"
            )
            return
        log.warning("job %s: worker failed on the last attempt: %s", job.id, exc)
        reason = str(exc).split(";")[0]  # the rest is advice for the CLI
        await self._end(FAILED, one_line(f"Sorry, that failed {job.attempts} times: {reason}."))

    async def _end(self, state: str, text: str) -> None:
        """Finish a job that has no result: one reply (sent once), final state, no spool."""
        queue = self.tools.queue
        job = self.view.job = await queue.get(self.view.job.id) or self.view.job
        reply_id: int | None = None
        if job.reply_message_id is None:
            try:
                reply_id = await self.tools.link.call(
                    "send reply",
                    lambda c: send_text(
                        c,
                        job.chat_address,
                        text,
                        random_id=job.reply_random_id,
                        reply_to=job.request_message_id,
                    ),
                )
            except Stopping:
                pass
            except Exception:
                log.exception("job %s: could not send the final reply", job.id)
        finished = await queue.finish(job.id, state, error=text, reply_message_id=reply_id)
        if not finished and reply_id is not None:
            await queue.record_reply(job.id, reply_id)
        await self._drop_status()

    async def _cancelled(self) -> None:
        job = self.view.job
        await self.tools.queue.finish(job.id, CANCELLED, error="cancelled")
        log.info("job %s: cancelled", job.id)
        await self._drop_status()

    async def _drop_status(self) -> None:
        job = self.view.job
        await self.tools.editor.close(job.chat_id)
        if job.status_message_id is None:
            return
        try:
            await self.tools.link.call(
                "delete status",
                lambda c: c.delete_messages(
                    peer_from_string(job.chat_address), [job.status_message_id]
                ),
            )
        except Stopping:
            pass
        except Exception as exc:  # cosmetic: the reply is what matters
            log.warning("job %s: could not delete the status message: %s", job.id, exc)

    def _show(self, text: str) -> None:
        job = self.view.job
        if job.status_message_id is not None:
            self.tools.editor.show(job.chat_id, job.chat_address, job.status_message_id, text)


def _kept_result(spool: Path) -> Delivery | None:
    """The result an earlier attempt made but could not send (the bot stopped or crashed)."""
    marker = spool / RESULT_MARKER
    if not marker.exists():
        return None
    saved = json.loads(marker.read_text())
    path = spool / saved["file_name"]
    if not path.exists():
        return None
    return Delivery(path, saved["caption"], device=None)
