"""Telegram events -> replies and queued jobs.

:func:`register` adds two handlers to a client: one for every incoming message (commands,
photos, files) and one for inline-button presses. Both are wrapped by :func:`guarded`, so an
exception still gets the user a short reply while the traceback goes to the log (Telethon
itself would only log it).

Order of checks for an image: sender allowed (else one polite refusal, no row, no download)
-> caption understood -> model and scale valid -> Telegram's reported size (0 bytes, over the
cap, not an image: a ``failed`` row and one reply) -> queued row + "queued (#n, ETA)" reply.
The pixel count is checked on the header after the download, in the runner, before any work.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import UpscalerError
from ..jobs import FAILED, QUEUED, RUNNING
from .access import REFUSAL
from .captions import CaptionError, command_of, parse_caption
from .service import INTERNAL_ERROR, BotService
from .telegram import describe_media, peer_to_string, send_text
from .telethon_api import Button, TelegramClient, errors, events

__all__ = ["guarded", "help_text", "register"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]

PHOTO_HINT = (
    "Tip: Telegram compressed this photo before I got it. Send the picture as a "
    "file (paperclip -> File) to keep its full quality."
)


def help_text(service: BotService) -> str:
    """The /help and /start text."""
    cfg = service.config
    oversize = (
        "sent as a high-quality JPEG instead of PNG"
        if cfg.oversize == "jpeg"
        else "refused, with the reason"
    )
    return (
        "Send me a photo or, better, an image as a file: I upscale it with Real-ESRGAN on my "
        "owner's computer and send back the full-resolution file.\n\n"
        "Caption (optional): a scale and/or model and/or format, e.g. 'x2 anime', "
        "'/upscale 4 realesrgan-x4plus', 'jpg'.\n"
        "/model, /scale, /format - choose your defaults\n"
        "/models - the models\n"
        "/status - device, queue and your jobs\n"
        "/cancel - cancel your queued or running jobs\n"
        "/id - your Telegram user id\n\n"
        f"Limits: files up to {cfg.max_file_mb} MiB, images up to "
        f"{cfg.max_pixels / 1e6:.0f} megapixels. Results are always sent as files; a result "
        f"over Telegram's 2000 MiB file limit is {oversize}."
    )


def guarded(handler: Handler) -> Handler:
    """Wrap a handler so that any exception is logged and answered with a short reply."""

    async def wrapper(event: Any) -> None:
        try:
            await handler(event)
        except events.StopPropagation:
            raise
        except Exception:
            log.exception("handler %s failed", getattr(handler, "__name__", handler))
            try:
                if isinstance(event, events.CallbackQuery.Event):
                    await event.answer(INTERNAL_ERROR, alert=True)
                else:
                    await event.reply(INTERNAL_ERROR)
            except Exception as exc:
                log.warning("could not send the error reply either: %s", exc)

    return wrapper


def register(client: TelegramClient, service: BotService) -> None:
    """Attach the bot's handlers to ``client``."""
    client.add_event_handler(
        guarded(functools.partial(on_message, service)), events.NewMessage(incoming=True)
    )
    client.add_event_handler(guarded(functools.partial(on_button, service)), events.CallbackQuery())


# -- messages ---------------------------------------------------------------------------------
async def on_message(service: BotService, event: Any) -> None:
    """Every incoming message."""
    sender = event.sender_id
    command = command_of(event.raw_text)
    if command == "/id":
        await event.reply(f"Your Telegram user id is {sender}.")
        return
    if not service.access.allows(sender):
        if service.access.should_refuse(sender):
            await event.reply(REFUSAL)
        return
    if event.message.photo is not None or event.message.document is not None:
        await accept_image(service, event)
        return
    action = COMMANDS.get(command or "")
    if action is not None:
        await action(service, event)
    elif command == "/upscale":
        await event.reply("Send the image with '/upscale x2 anime' (or similar) as its caption.")
    else:
        await event.reply("Send me a photo or an image file to upscale. /help lists the rest.")


async def accept_image(service: BotService, event: Any) -> None:
    """Queue an image (or refuse it with one reply)."""
    msg = event.message
    queue, cfg = service.queue, service.config
    existing = queue.find(event.chat_id, msg.id)
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
                queue.record_reply(existing.id, reply_id)
        return
    info = describe_media(msg)
    assert info is not None
    try:
        choice = parse_caption(msg.message, service.catalog)
    except CaptionError as exc:
        await event.reply(str(exc))
        return
    prefs = service.prefs.get(event.sender_id)
    model = choice.model or prefs.model or cfg.model
    scale = choice.scale or prefs.scale
    fmt = choice.format or prefs.format or "png"
    try:
        spec = service.resolve(model, scale)
        if scale is not None and scale > spec.scale:
            raise UpscalerError(f"{spec.name} goes up to x{spec.scale}, not x{scale}")
    except UpscalerError as exc:
        await event.reply(f"Sorry: {exc}")
        return
    refusal = None
    if not info.looks_like_image:
        refusal = f"Sorry: that file ({info.mime_type}) is not an image I can read."
    elif info.size is not None and info.size == 0:
        refusal = "Sorry: that file is empty (0 bytes)."
    elif info.size is not None and info.size > cfg.max_file_bytes:
        refusal = (
            f"Sorry: that file is {info.size / 2**20:.0f} MiB; the limit is {cfg.max_file_mb} MiB."
        )
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
    job, created = queue.add(
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
            queue.record_reply(job.id, reply_id)
        return
    text = service.queued_text(job)
    if info.compressed and service.prefs.take_photo_hint(event.sender_id):
        text += "\n" + PHOTO_HINT
    try:
        status = await event.reply(text)
    except errors.FloodWaitError as exc:
        # the job is safely queued; the runner sends a status message when it starts
        log.warning("job %s: no 'queued' reply (flood wait %s s)", job.id, exc.seconds)
    else:
        queue.set_status_message(job.id, status.id)
        service.editor.note_sent(event.chat_id)
    service.messages[job.id] = msg
    log.info("job %s queued: user %s, %s x%s", job.id, event.sender_id, spec.name, scale or "")
    service.wake()


# -- commands -----------------------------------------------------------------------------
async def cmd_help(service: BotService, event: Any) -> None:
    await event.reply(help_text(service))


async def cmd_status(service: BotService, event: Any) -> None:
    counts = service.queue.counts()
    mine = service.queue.jobs_for_user(event.sender_id, (QUEUED, RUNNING))
    lines = [
        f"Device: {service.device_name}",
        f"Queue: {counts[QUEUED]} waiting, {counts[RUNNING]} running"
        + (" (the bot is stopping)" if service.stopping else ""),
    ]
    if not mine:
        lines.append("You have no jobs in progress.")
    for job in mine:
        name = job.params.get("file_name", "image")
        if job.state == RUNNING:
            cur = service.current
            ours = cur is not None and cur.job.id == job.id and cur.total
            pct = f" {100 * cur.done // cur.total}%" if ours and cur else ""
            lines.append(f"- {name}: running{pct}")
        else:
            lines.append(f"- {name}: #{service.queue.position(job.id)} in line")
    await event.reply("\n".join(lines))


async def cmd_cancel(service: BotService, event: Any) -> None:
    jobs = service.queue.cancel_for_user(event.sender_id)
    if not jobs:
        await event.reply("You have nothing queued or running.")
        return
    for job in jobs:
        if job.state == RUNNING:
            service.cancel_running(event.sender_id)
        elif job.status_message_id is not None:
            service.editor.show(job.chat_id, job.chat_address, job.status_message_id, "cancelled")
    await event.reply(f"Cancelled {len(jobs)} job{'s' if len(jobs) != 1 else ''}.")


async def cmd_models(service: BotService, event: Any) -> None:
    mine = service.prefs.get(event.sender_id).model or service.config.model
    lines = ["Models (write one in a caption or pick a default with /model):"]
    for spec in service.catalog.specs:
        mark = " (your default)" if spec.name == mine else ""
        line = f"- {spec.name}: x{spec.scale}, {spec.kind}{mark}. {spec.description}"
        lines.append(line.rstrip())
    await event.reply("\n".join(lines))


def _buttons(field: str, options: list[tuple[str, str]]) -> list[list[Any]]:
    rows, row = [], []
    for label, value in options:
        row.append(Button.inline(label, data=f"set:{field}:{value}".encode()))
        if len(row) == 2:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    return rows


async def cmd_model(service: BotService, event: Any) -> None:
    current = service.prefs.get(event.sender_id).model or service.config.model
    options = [(s.name, s.name) for s in service.catalog.specs]
    await event.reply(f"Your default model: {current}. Choose:", buttons=_buttons("model", options))


async def cmd_scale(service: BotService, event: Any) -> None:
    current = service.prefs.get(event.sender_id).scale
    options = [("model's own", "0"), ("x2", "2"), ("x3", "3"), ("x4", "4")]
    shown = f"x{current}" if current else "the model's own"
    await event.reply(f"Your default scale: {shown}. Choose:", buttons=_buttons("scale", options))


async def cmd_format(service: BotService, event: Any) -> None:
    current = service.prefs.get(event.sender_id).format or "png"
    options = [("PNG (lossless)", "png"), ("JPEG", "jpg"), ("WebP", "webp")]
    await event.reply(
        f"Your default format: {current}. Choose:", buttons=_buttons("format", options)
    )


COMMANDS: dict[str, Callable[[BotService, Any], Awaitable[None]]] = {
    "/start": cmd_help,
    "/help": cmd_help,
    "/status": cmd_status,
    "/cancel": cmd_cancel,
    "/models": cmd_models,
    "/model": cmd_model,
    "/scale": cmd_scale,
    "/format": cmd_format,
}


# -- buttons --------------------------------------------------------------------------------
async def on_button(service: BotService, event: Any) -> None:
    """An inline button from /model, /scale or /format."""
    if not service.access.allows(event.sender_id):
        await event.answer("This bot is private.", alert=True)
        return
    parts = event.data.decode(errors="replace").split(":", 2)
    if len(parts) != 3 or parts[0] != "set":
        await event.answer("That button is no longer valid.")
        return
    _, field, value = parts
    if field == "model":
        names = {s.name for s in service.catalog.specs}
        if value not in names:
            await event.answer("That model is no longer available.", alert=True)
            return
        service.prefs.set(event.sender_id, "model", value)
        shown = value
    elif field == "scale" and value.isdigit() and int(value) in (0, 2, 3, 4):
        service.prefs.set(event.sender_id, "scale", int(value) or None)
        shown = f"x{value}" if int(value) else "the model's own scale"
    elif field == "format" and value in ("png", "jpg", "webp"):
        service.prefs.set(event.sender_id, "format", value)
        shown = value
    else:
        await event.answer("That button is no longer valid.")
        return
    await event.answer(f"Default {field}: {shown}")
    await event.edit(f"Your default {field} is now {shown}.")
