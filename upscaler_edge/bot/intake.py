"""A job's input: downloaded into its spool folder and checked against the limits.

:func:`download` refuses a file over the size limit before and after fetching it, refetches
the message when Telegram's file reference has expired, and keeps an earlier attempt's
complete video download (its finished segments resume on it). :func:`check_pixels` reads
the picture's size from its header, off the event loop, and refuses it over
``max_megapixels``. Every refusal is a :class:`~.failures.Refused`.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from ..errors import ImageTooLargeError
from ..jobs import Job
from .endings import Tools
from .failures import Refused
from .i18n import N_, Text, Translator
from .images import VIDEO_KINDS
from .job_status import StatusReporter
from .limits import file_limit_bytes, megapixels, pixels_refusal
from .telegram import peer_from_string
from .telethon_api import errors

__all__ = ["GONE", "check_pixels", "download"]

_SIZE_IN_REASON = re.compile(r"(\d+)x(\d+)")
GONE = N_("Sorry: I can no longer see that message; please send the picture again.")


async def download(
    tools: Tools,
    job: Job,
    tr: Translator,
    spool: Path,
    *,
    message: Any | None,
    status: StatusReporter,
) -> Path:
    """The job's file, fetched into ``spool`` (``message``: from the live update, if any)."""
    cfg = tools.config
    status.stage("downloading")
    size = job.params.get("size")
    kind = job.params.get("kind")
    limit_bytes = file_limit_bytes(cfg, kind)
    if size is not None and size > limit_bytes:
        raise Refused(
            tr.gettext(
                "Sorry: that file is {size} MiB; the limit is {limit} MiB.",
                size=tr.number(size / 2**20, 0),
                limit=limit_bytes // 2**20,
            )
        )
    src = spool / ("input" + Path(job.params.get("file_name", "")).suffix.lower())
    if kind in VIDEO_KINDS and size and src.exists() and src.stat().st_size == size:
        # an earlier attempt's download, kept: the video's finished segments resume on it
        return src
    if message is None:
        message = await _fetch_message(tools, job, "fetch message")
    if message is None or (message.photo is None and message.document is None):
        raise Refused(Text(GONE))
    try:
        await _download_to(tools, status, message, src)
    except (errors.FileReferenceExpiredError, errors.FileReferenceInvalidError):
        # the job waited long enough for Telegram's file reference to expire: refetch
        message = await _fetch_message(tools, job, "refetch message")
        if message is None:
            raise Refused(Text(GONE)) from None
        await _download_to(tools, status, message, src)
    got = src.stat().st_size if src.exists() else 0
    if got == 0:
        raise Refused(tr.gettext("Sorry: that file is empty (0 bytes)."))
    if got > limit_bytes:
        raise Refused(
            tr.gettext(
                "Sorry: that file is {size} MiB; the limit is {limit} MiB.",
                size=tr.number(got / 2**20, 0),
                limit=limit_bytes // 2**20,
            )
        )
    return src


async def _fetch_message(tools: Tools, job: Job, what: str) -> Any:
    return await tools.link.call(
        what,
        lambda c: c.get_messages(peer_from_string(job.chat_address), ids=job.request_message_id),
    )


async def _download_to(tools: Tools, status: StatusReporter, message: Any, src: Path) -> None:
    def on_download(done: int, total: int) -> None:
        status.stage("downloading", done, total)

    await tools.link.call(
        "download",
        lambda c: c.download_media(message, file=str(src), progress_callback=on_download),
    )


async def check_pixels(tools: Tools, tr: Translator, src: Path) -> tuple[int, int]:
    """The picture's size from its header; refused over ``max_megapixels``."""
    cfg = tools.config
    try:
        _fmt, width, height = await asyncio.to_thread(
            tools.core.probe, src, max_pixels=cfg.max_pixels
        )
    except ImageTooLargeError as exc:
        size = _SIZE_IN_REASON.search(str(exc))  # the core names it: "image is WxH = ..."
        refusal = size and pixels_refusal(tr, int(size[1]), int(size[2]), cfg)
        raise Refused(
            refusal
            or tr.gettext(
                "Sorry: that picture is too large ({reason}); the limit is {limit} MP.",
                reason=str(exc),
                limit=megapixels(tr, cfg.max_megapixels),
            )
        ) from None
    return width, height
