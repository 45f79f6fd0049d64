"""Telegram events -> the feature that answers them.

:func:`register` adds two handlers to a client: one for every incoming message and one for
inline-button presses. Both are wrapped by :func:`guarded`, so an exception still gets the
user a short reply while the traceback goes to the log (Telethon itself would only log it).

A message: ``/id`` answers anyone; a sender not on the allowlist gets one polite refusal
(no row, no download) and is then ignored; a photo or file goes to :mod:`.images`; commands
to :mod:`.commands` and :mod:`.defaults`. Each receives the narrow :class:`BotContext`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .access import REFUSAL
from .captions import command_of
from .commands import cmd_cancel, cmd_help, cmd_models, cmd_status, help_text
from .context import BotContext
from .defaults import cmd_format, cmd_model, cmd_scale, on_button
from .images import accept_image
from .telethon_api import TelegramClient, events

__all__ = ["COMMANDS", "INTERNAL_ERROR", "guarded", "help_text", "register"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
Command = Callable[[BotContext, Any], Awaitable[None]]

INTERNAL_ERROR = "Sorry, something went wrong on my side; the details are in the bot's log."

COMMANDS: dict[str, Command] = {
    "/start": cmd_help,
    "/help": cmd_help,
    "/status": cmd_status,
    "/cancel": cmd_cancel,
    "/models": cmd_models,
    "/model": cmd_model,
    "/scale": cmd_scale,
    "/format": cmd_format,
}


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


def register(client: TelegramClient, ctx: BotContext) -> None:
    """Attach the bot's handlers to ``client``."""
    client.add_event_handler(
        guarded(functools.partial(on_message, ctx)), events.NewMessage(incoming=True)
    )
    client.add_event_handler(guarded(functools.partial(on_button, ctx)), events.CallbackQuery())


async def on_message(ctx: BotContext, event: Any) -> None:
    """Every incoming message."""
    sender = event.sender_id
    command = command_of(event.raw_text)
    if command == "/id":
        await event.reply(f"Your Telegram user id is {sender}.")
        return
    if not ctx.access.allows(sender):
        if ctx.access.should_refuse(sender):
            await event.reply(REFUSAL)
        return
    if event.message.photo is not None or event.message.document is not None:
        await accept_image(ctx, event)
        return
    action = COMMANDS.get(command or "")
    if action is not None:
        await action(ctx, event)
    elif command == "/upscale":
        await event.reply("Send the image with '/upscale x2 anime' (or similar) as its caption.")
    else:
        await event.reply("Send me a photo or an image file to upscale. /help lists the rest.")
