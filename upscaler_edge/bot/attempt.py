"""One attempt at one claimed job: fetch the image, check it, upscale it, keep the result.

:meth:`JobAttempt.produce`: a status message if the "queued" reply never went out (an album's
files share one; :mod:`.job_status`) -> a result kept by an attempt that stopped before its
reply, if any (:mod:`.results`) -> "downloading" into the job's spool folder (refetching the
message when Telegram's file reference has expired) -> header check (format, pixel cap, off
the event loop; both :mod:`.intake`) -> output name and format (the 2000 MiB rule) -> the
upscale in the worker process, awaited in a thread, tile progress handed back with
``call_soon_threadsafe`` -> the before/after preview (if the user wants one) -> the result,
its caption and preview recorded in the spool (``result.json``). The runner then marks the
job ``ready`` and :mod:`.delivery` sends it.

Every way out without a result is decided here. A refusal (bad file, over a limit) or a core
error is one "Sorry: ..." line (:mod:`.failures`); anything unexpected is "Sorry: internal
error: ..." with the traceback in the log, and the job fails (it is not retried); a worker
crash (``JobFailed``) goes back in line until ``max_attempts``; the user's /cancel ends it
quietly (/cancel answered them); a stop puts it back in line. Each ending sends at most one
reply, with the job's ``random_id``, in the language the user asked in, and a final state
removes the spool folder.

The names other modules use from here (:class:`JobView`, :class:`Delivery`,
:func:`kept_result`, :func:`internal_error`, ...) are re-exported from where they live;
``TELEGRAM_FILE_LIMIT`` and :data:`VIDEO_SEGMENT_SECONDS` are read from this module when a
job runs (tests shrink them here).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import Cancelled, InputError, JobFailed, UpscalerError
from ..jobs import FAILED
from ..naming import output_name
from .config import TELEGRAM_FILE_LIMIT
from .endings import Tools, end_cancelled, end_with_reply, job_translator, show
from .eta import estimate_seconds
from .failures import Refused, core_error, internal_error, one_line
from .i18n import Text
from .images import ASSUMED_FPS, VIDEO_EXTRA, VIDEO_KINDS
from .intake import check_pixels, download
from .job_status import JobView, StatusReporter
from .limits import pixels_refusal, video_length_refusal
from .link import Stopping
from .preview import make_preview
from .results import PREVIEW_NAME, RESULT_MARKER, Delivery, kept_result
from .telegram import VideoAttributes
from .upscaling import options_for

__all__ = [
    "PREVIEW_NAME",
    "RESULT_MARKER",
    "Delivery",
    "JobAttempt",
    "JobView",
    "Tools",
    "internal_error",
    "kept_result",
    "one_line",
]

log = logging.getLogger(__name__)

#: A video is encoded in pieces of about this many seconds; a retried attempt (after a worker
#: crash, or a restart of the bot) redoes at most one.
VIDEO_SEGMENT_SECONDS = 10.0


class JobAttempt:
    """One claimed job, from download to a kept result (see the module's docstring)."""

    def __init__(
        self, tools: Tools, view: JobView, *, message: Any | None, device_name: str
    ) -> None:
        self.tools = tools
        self.view = view
        self.tr = job_translator(view.job)
        self.status = StatusReporter(tools, view, self.tr)
        self._message = message  # from the live update, if this run received it
        self._device_name = device_name

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
                await end_cancelled(self.tools, self.view.job)  # /cancel answered the user
        except JobFailed as exc:
            await self._crashed(exc)
        except Refused as exc:
            log.info("job %s: refused: %s", job.id, exc)
            await self._fail(one_line(exc.render(self.tr)))
        except UpscalerError as exc:
            log.info("job %s: refused by the core: %s", job.id, exc)
            await self._fail(one_line(core_error(exc, self.tr)))
        except Exception as exc:
            log.exception("job %s: internal error", job.id)
            await self._fail(internal_error(exc, self.tr))
        return None

    # -- producing ------------------------------------------------------------------------
    async def _produce(self) -> Delivery:
        await self.status.join_album()
        await self.status.ensure_message()
        spool = await self.tools.queue.spool_dir(self.view.job.id)
        kept = kept_result(spool)
        if kept is not None:
            log.info("job %s: result found from a previous attempt", self.view.job.id)
            return kept
        src = await download(
            self.tools, self.view.job, self.tr, spool, message=self._message, status=self.status
        )
        if self.view.job.params.get("kind") in VIDEO_KINDS:
            return await self._upscale_video(src, spool)
        return await self._upscale(src, spool)

    async def _upscale(self, src: Path, spool: Path) -> Delivery:
        job, cfg, core, tr = self.view.job, self.tools.config, self.tools.core, self.tr
        width, height = await check_pixels(self.tools, tr, src)
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
                raise Refused(
                    tr.gettext(
                        "Sorry: the result ({w}×{h}) would be over Telegram's 2000 MiB file "
                        "limit; try a smaller scale or format jpg.",
                        w=out_w,
                        h=out_h,
                    )
                )
            fmt = "jpg"
            note = " " + tr.gettext("(JPEG: as PNG it would pass Telegram's 2000 MiB limit)")
        named = Path(params.get("file_name") or f"image_{job.request_message_id}")
        dst = spool / output_name(named, scale, fmt)

        loop = asyncio.get_running_loop()

        def on_tiles(done: int, total: int) -> None:  # called in the worker thread
            loop.call_soon_threadsafe(self.status.tiles, done, total)

        self.status.stage("upscaling", 0, 1)
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
            raise Refused(
                tr.gettext(
                    "Sorry: the result is {size} MiB, over Telegram's 2000 MiB file limit; "
                    "try a smaller scale or format jpg.",
                    size=tr.number(size / 2**20, 0),
                )
            )
        (in_w, in_h), (res_w, res_h) = result.in_size, result.out_size
        device = result.device or self._device_name
        await self.tools.prefs.record_speed(
            params["model"], cfg.device, in_w * in_h / 1e6, result.seconds
        )
        await self.tools.queue.update_params(
            job.id, out_width=res_w, out_height=res_h, seconds=result.seconds, device=device
        )
        caption = tr.gettext(
            "{model} ×{scale}: {in_w}×{in_h} → {out_w}×{out_h}, {seconds} s on {device}",
            model=params["model"],
            scale=scale,
            in_w=in_w,
            in_h=in_h,
            out_w=res_w,
            out_h=res_h,
            seconds=tr.number(result.seconds),
            device=device,
        )
        caption += note
        shows = None
        if params.get("preview", True):
            shows = await asyncio.to_thread(make_preview, src, dst, spool / PREVIEW_NAME)
        saved = {"file_name": dst.name, "caption": caption, "preview": shows}
        (spool / RESULT_MARKER).write_text(json.dumps(saved))
        return Delivery(
            dst, caption, device, spool / PREVIEW_NAME if shows else None, shows or None
        )

    async def _upscale_video(self, src: Path, spool: Path) -> Delivery:
        """A video, round video or animation: upscaled to MP4 in the worker process. The
        output path is the job's own, so a retried attempt resumes from the kept segments."""
        job, cfg, core, tr = self.view.job, self.tools.config, self.tools.core, self.tr
        if core.upscale_video is None:
            raise Refused(Text(VIDEO_EXTRA))
        from ..video import VideoOptions, available, probe_video

        if not available():
            raise Refused(Text(VIDEO_EXTRA))
        try:
            info = await asyncio.to_thread(probe_video, src)
        except InputError as exc:
            raise Refused(
                tr.gettext("Sorry: I can't read that video: {reason}.", reason=str(exc))
            ) from None
        refusal = pixels_refusal(tr, info.width, info.height, cfg) or video_length_refusal(
            tr, info.duration, cfg
        )
        if refusal is not None:
            raise Refused(refusal)
        kind = job.params["kind"]
        frames = info.frames or job.params.get("frames") or 1
        params = (
            await self.tools.queue.update_params(
                job.id, width=info.width, height=info.height, frames=frames
            )
            or job
        ).params
        speed = await self.tools.prefs.speed(params.get("model", ""), cfg.device)
        self.view.estimate = estimate_seconds(params, speed)
        scale = (
            params.get("scale")
            or (await asyncio.to_thread(core.resolve, params["model"], None)).scale
        )
        named = Path(params.get("file_name") or f"video_{job.request_message_id}")
        dst = spool / output_name(named, scale, "mp4")
        loop = asyncio.get_running_loop()

        def on_frames(done: int, total: int) -> None:  # called in the worker thread
            loop.call_soon_threadsafe(self.status.frames, done, total)

        # the time limit is per job for pictures; a video gets it per second of video
        limit = cfg.job_timeout * max(1.0, frames / ASSUMED_FPS) if cfg.job_timeout else None
        self.status.show_frames(0, frames, self.view.estimate)
        result = await asyncio.to_thread(
            core.upscale_video,
            src,
            dst,
            options_for(params, cfg, "png"),
            VideoOptions(container="mp4", segment_seconds=VIDEO_SEGMENT_SECONDS),
            progress=on_frames,
            cancel=self.view.cancel,
            timeout=limit,
        )
        dst = Path(result.dst)
        size = dst.stat().st_size
        if size > TELEGRAM_FILE_LIMIT:
            raise Refused(
                tr.gettext(
                    "Sorry: the result is {size} MiB, over Telegram's 2000 MiB file limit; "
                    "try a smaller scale.",
                    size=tr.number(size / 2**20, 0),
                )
            )
        (in_w, in_h), (res_w, res_h) = result.in_size, result.out_size
        device = result.device or self._device_name
        done_here = result.frames - result.frames_resumed
        if done_here > 0:
            await self.tools.prefs.record_speed(
                params["model"], cfg.device, in_w * in_h * done_here / 1e6, result.seconds
            )
        await self.tools.queue.update_params(
            job.id,
            out_width=res_w,
            out_height=res_h,
            seconds=result.seconds,
            device=device,
            frames=result.frames,
            frames_resumed=result.frames_resumed,
        )
        caption = tr.ngettext(
            "{model} ×{scale}: {in_w}×{in_h} → {out_w}×{out_h}, {n} frame, {seconds} s on {device}",
            "{model} ×{scale}: {in_w}×{in_h} → {out_w}×{out_h}, {n} frames, {seconds} s on "
            "{device}",
            result.frames,
            model=params["model"],
            scale=scale,
            in_w=in_w,
            in_h=in_h,
            out_w=res_w,
            out_h=res_h,
            seconds=tr.number(result.seconds),
            device=device,
        )
        duration = info.duration or params.get("duration") or 0.0
        video = VideoAttributes(kind, float(duration), res_w, res_h)
        saved = {
            "file_name": dst.name,
            "caption": caption,
            "preview": None,
            "video": [video.kind, video.duration, video.width, video.height],
        }
        (spool / RESULT_MARKER).write_text(json.dumps(saved))
        return Delivery(dst, caption, device, video=video)

    # -- endings --------------------------------------------------------------------------
    async def _crashed(self, exc: JobFailed) -> None:
        job, cfg, tr = self.view.job, self.tools.config, self.tr
        if job.attempts < cfg.max_attempts:
            log.warning("job %s: worker failed (%s); retrying", job.id, exc)
            await self.tools.queue.requeue(job.id)
            show(
                self.tools,
                job,
                tr.gettext(
                    "The upscaler crashed ({reason}); trying again (attempt {next} of {max}).",
                    reason=exc,
                    next=job.attempts + 1,
                    max=cfg.max_attempts,
                ),
            )
            return
        log.warning("job %s: worker failed on the last attempt: %s", job.id, exc)
        reason = str(exc).split(";")[0]  # the rest is advice for the CLI
        text = tr.ngettext(
            "Sorry, that failed {n} time: {reason}.",
            "Sorry, that failed {n} times: {reason}.",
            job.attempts,
            reason=reason,
        )
        await self._fail(one_line(text))

    async def _fail(self, text: str) -> None:
        self.view.job = await end_with_reply(self.tools, self.view.job, FAILED, text)
