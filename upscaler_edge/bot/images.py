"""An incoming photo or image file becomes a queued job, or one refusal.

Order of checks: a repeated update (catch-up after a restart) changes nothing -> caption
understood -> model and scale valid -> Telegram's reported size and type (0 bytes, over the
cap, not an image: a ``failed`` row and one reply, no download) -> queued row + "queued (#n,
ETA)" reply. The pixel count is checked on the header after the download, by the runner.
The sender was checked against the allowlist before this is called.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import UpscalerError
from ..jobs import FAILED, QUEUED
from .captions import CaptionError, parse_caption
from .context import BotContext
from .telegram import MediaInfo, describe_media, peer_to_string, send_text
from .telethon_api import errors

__all__ = ["PHOTO_HINT", "accept_image"]

log = logging.getLogger(__name__)

PHOTO_HINT = (
    "Tip: Telegram compressed this photo before I got it. Send the picture as a "
    "file (paperclip -> File) to keep its full quality."
)


async def accept_image(ctx: BotContext, event: Any) -> None:
    """Queue the image of ``event`` (or refuse it with one reply)."""
    msg = event.message
    existing = await ctx.queue.find(event.chat_id, msg.id)
    if existing is not None:  # a repeated update (catch-up after a restart)
        log.info("message %s/%s is job %s already", event.chat_id, msg.id, existing.id)
        if existing.state == FAILED and existing.reply_message_id is None and existing.error:
            # refused on arrival but the reply may not have gone out: send it (at most once)
            reply_id = await send_text(
                event.client,
                existing.chat_address,
                existing.error,
                random_id=existing.reply_random_id,
                reply_to=msg.id,
            )
            if reply_id is not None:
                await ctx.queue.record_reply(existing.id, reply_id)
        return
    info = describe_media(msg)
    assert info is not None
    try:
        choice = parse_caption(msg.message, ctx.catalog)
    except CaptionError as exc:
        await event.reply(str(exc))
        return
    prefs = await ctx.prefs.get(event.sender_id)
    model = choice.model or prefs.model or ctx.config.model
    scale = choice.scale or prefs.scale
    fmt = choice.format or prefs.format or "png"
    try:
        spec = await asyncio.to_thread(ctx.resolve, model, scale)
    except UpscalerError as exc:
        await event.reply(f"Sorry: {exc}")
        return
    refusal = _refusal(ctx, info)
    params = {
        "model": spec.name,
        "scale": scale,
        "format": fmt,
        "file_name": info.file_name,
        "size": info.size,
        "width": info.width,
        "height": info.height,
        "compressed": info.compressed,
    }
    peer = peer_to_string(await event.get_input_chat())
    job, created = await ctx.queue.add(
        event.chat_id,
        msg.id,
        event.sender_id,
        chat_address=peer,
        params=params,
        state=FAILED if refusal else QUEUED,
        error=refusal,
    )
    if not created:
        return
    if refusal is not None:
        log.info("job %s refused on arrival: %s", job.id, refusal)
        reply_id = await send_text(
            event.client, peer, refusal, random_id=job.reply_random_id, reply_to=msg.id
        )
        if reply_id is not None:
            await ctx.queue.record_reply(job.id, reply_id)
        return
    text = await ctx.runner.queued_text(job)
    if info.compressed and await ctx.prefs.take_photo_hint(event.sender_id):
        text += "\n" + PHOTO_HINT
    status_id: int | None = None
    try:
        status = await event.reply(text)
    except errors.FloodWaitError as exc:
        # the job is safely queued; the runner sends a status message when it starts
        log.warning("job %s: no 'queued' reply (flood wait %s s)", job.id, exc.seconds)
    else:
        status_id = status.id
    await ctx.runner.enqueue(job, message=msg, status_message_id=status_id)
    log.info("job %s queued: user %s, %s x%s", job.id, event.sender_id, spec.name, scale or "")


def _refusal(ctx: BotContext, info: MediaInfo) -> str | None:
    """The one-line reply for a file refused on what Telegram says about it, or None."""
    cfg = ctx.config
    if not info.looks_like_image:
        return f"Sorry: that file ({info.mime_type}) is not an image I can read."
    if info.size is not None and info.size == 0:
        return "Sorry: that file is empty (0 bytes)."
    if info.size is not None and info.size > cfg.max_file_bytes:
        return (
            f"Sorry: that file is {info.size / 2**20:.0f} MiB; the limit is {cfg.max_file_mb} MiB."
        )
    return None
