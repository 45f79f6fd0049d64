"""Sending results: one request's ``ready`` jobs go back to the chat, each reply exactly once.

A single picture: its before/after preview photo (if one was made), then the result as a
document. A video goes back as a streamable MP4 video document, an animation as an animation
(a silent MP4 marked animated), with no preview. An album: the previews as one photo album,
then the results as one album of documents, in chunks of :data:`~.telegram.ALBUM_LIMIT`
(a chunk of one is sent as a single message). Every message carries a fixed ``random_id``
derived from its job
(``reply_random_id`` for the document, ``reply_random_id ^ 2`` for the preview): sending again
after a crash is refused by Telegram, so nothing arrives twice. Each job is marked ``done``
with the id of its document as soon as its chunk is sent; the status message goes last.

A stop while sending leaves the jobs ``ready``: the next start sends what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..jobs import DONE, FAILED, READY, Job
from .attempt import Delivery, internal_error, kept_result
from .endings import Tools, drop_status, end_with_reply, job_translator, show
from .i18n import Translator
from .link import Stopping
from .progress import progress_text
from .telegram import ALBUM_LIMIT, AlbumItem, send_album, send_document, send_photo

__all__ = ["PREVIEW_KEY", "deliver", "preview_caption"]

log = logging.getLogger(__name__)

PREVIEW_KEY = 2  # xor'ed into a job's reply_random_id for its preview photo


@dataclass(frozen=True)
class _Ready:
    job: Job
    result: Delivery


def preview_caption(tr: Translator, shows: str | None) -> str:
    """What the preview shows, in a few words."""
    if shows == "detail":
        return tr.gettext("Before and after: a detail from the middle, the result at 100%.")
    return tr.gettext("Before and after.")


async def deliver(tools: Tools, group: Sequence[Job]) -> None:
    """Send the results of ``group`` (one request's ready jobs, in message order)."""
    items: list[_Ready] = []
    for stale in group:
        job = await tools.queue.get(stale.id) or stale
        if job.state != READY:  # cancelled meanwhile
            continue
        result = kept_result(await tools.queue.spool_dir(job.id))
        if result is None:
            log.error("job %s: ready, but its result is gone from the spool", job.id)
            await end_with_reply(
                tools, job, FAILED, internal_error(FileNotFoundError("result"), job_translator(job))
            )
            continue
        items.append(_Ready(job, result))
    if not items:
        return
    try:
        for start in range(0, len(items), ALBUM_LIMIT):
            await _send_chunk(tools, items[start : start + ALBUM_LIMIT], len(items))
    except Stopping:
        log.info("stopped while sending; the results go out at the next start")
        return
    except Exception as exc:
        log.exception("could not send the results of jobs %s", [i.job.id for i in items])
        for item in items:
            job = await tools.queue.get(item.job.id) or item.job
            if job.state == READY:
                await end_with_reply(tools, job, FAILED, internal_error(exc, job_translator(job)))
        return
    await drop_status(tools, items[-1].job)


async def _send_chunk(tools: Tools, chunk: list[_Ready], total: int) -> None:
    first = chunk[0].job
    tr = job_translator(first)
    peer, reply_to = first.chat_address, first.request_message_id

    def on_upload(done: int, count: int) -> None:
        show(tools, first, progress_text(tr, "uploading", done, count))

    show(tools, first, progress_text(tr, "uploading"))
    previews = [i for i in chunk if i.result.preview is not None]
    if len(previews) == 1:
        one = previews[0]
        assert one.result.preview is not None
        preview_path = one.result.preview
        await tools.link.call(
            "send preview",
            lambda c: send_photo(
                c,
                peer,
                preview_path,
                caption=preview_caption(tr, one.result.preview_shows),
                random_id=one.job.reply_random_id ^ PREVIEW_KEY,
                reply_to=one.job.request_message_id,
            ),
        )
    elif previews:
        photos = [
            AlbumItem(
                i.result.preview,
                i.result.preview.name,
                preview_caption(tr, i.result.preview_shows) if n == 0 else "",
                i.job.reply_random_id ^ PREVIEW_KEY,
            )
            for n, i in enumerate(previews)
            if i.result.preview is not None
        ]
        await tools.link.call(
            "send previews",
            lambda c: send_album(c, peer, photos, as_photos=True, reply_to=reply_to),
        )
    if len(chunk) == 1:
        one = chunk[0]
        reply_id = await tools.link.call(
            "send result",
            lambda c: send_document(
                c,
                peer,
                one.result.path,
                file_name=one.result.path.name,
                caption=one.result.caption,
                random_id=one.job.reply_random_id,
                reply_to=one.job.request_message_id,
                progress=on_upload,
                video=one.result.video,
            ),
        )
        ids = {one.job.reply_random_id: reply_id} if reply_id is not None else {}
    else:
        docs = [
            AlbumItem(i.result.path, i.result.path.name, i.result.caption, i.job.reply_random_id)
            for i in chunk
        ]
        sent = await tools.link.call(
            "send results",
            lambda c: send_album(
                c, peer, docs, as_photos=False, reply_to=reply_to, progress=on_upload
            ),
        )
        ids = sent or {}
    for item in chunk:
        reply_id = ids.get(item.job.reply_random_id)
        await tools.queue.finish(item.job.id, DONE, reply_message_id=reply_id)
        log.info("job %s: done, reply %s (%d in its request)", item.job.id, reply_id, total)
