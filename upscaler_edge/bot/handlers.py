"""Telegram events -> the feature that answers them.

:func:`register` adds two handlers to a client: one for every incoming message and one for
inline-button presses. Both are wrapped by :func:`guarded`, so an exception still gets the
user a short reply while the traceback goes to the log (Telethon itself would only log it).

A message: ``/id`` answers anyone; a sender not on the allowlist gets one polite refusal
(no row, no download) and is then ignored; a photo or file goes to :mod:`.images`; commands
to :mod:`.commands`, :mod:`.defaults` and, for the owner, :mod:`.admin`. Each receives the
narrow :class:`BotContext` and the :class:`Sender`, whose translator speaks their language.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .access import REFUSAL
from .admin import ADMIN_COMMANDS, on_forward
from .captions import command_of
from .commands import cmd_cancel, cmd_help, cmd_id, cmd_models, cmd_preview, cmd_status
from .context import BotContext, Sender
from .defaults import cmd_format, cmd_lang, cmd_model, cmd_scale, on_button
from .i18n import N_, pick, translator
from .images import accept_media
from .telethon_api import TelegramClient, events

__all__ = ["COMMANDS", "INTERNAL_ERROR", "guarded", "register"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
Command = Callable[[BotContext, Any, Sender], Awaitable[None]]

INTERNAL_ERROR = N_("Sorry, something went wrong on my side; the details are in the bot's log.")
SEEN_EVERY = 60.0  # seconds: how often a member's "last seen" is written, at most

COMMANDS: dict[str, Command] = {
    "/start": cmd_help,
    "/help": cmd_help,
    "/id": cmd_id,
    "/status": cmd_status,
    "/cancel": cmd_cancel,
    "/models": cmd_models,
    "/model": cmd_model,
    "/scale": cmd_scale,
    "/format": cmd_format,
    "/lang": cmd_lang,
    "/preview": cmd_preview,
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
            tr = translator(pick(None, getattr(event.sender, "lang_code", None)))
            try:
                if isinstance(event, events.CallbackQuery.Event):
                    await event.answer(tr.gettext(INTERNAL_ERROR), alert=True)
                else:
                    await event.reply(tr.gettext(INTERNAL_ERROR))
            except Exception as exc:
                log.warning("could not send the error reply either: %s", exc)

    return wrapper


def register(client: TelegramClient, ctx: BotContext) -> None:
    """Attach the bot's handlers to ``client``."""
    seen: dict[int, float] = {}
    client.add_event_handler(
        guarded(functools.partial(on_message, ctx, seen)), events.NewMessage(incoming=True)
    )
    client.add_event_handler(
        guarded(functools.partial(on_press, ctx, seen)), events.CallbackQuery()
    )


async def _sender(ctx: BotContext, event: Any, seen: dict[int, float]) -> Sender:
    """The allowed sender of ``event``, in their language; notes when they were last seen."""
    user = event.sender
    if user is None:
        user = await event.get_sender()
    user_id = event.sender_id
    lang_code = getattr(user, "lang_code", None)
    prefs = await ctx.prefs.get(user_id)
    now = time.monotonic()
    if now - seen.get(user_id, -SEEN_EVERY) >= SEEN_EVERY:
        seen[user_id] = now
        await _saw(ctx, user_id, user)
    return Sender(
        user_id=user_id,
        tr=translator(pick(prefs.lang, lang_code)),
        prefs=prefs,
        is_owner=ctx.access.is_owner(user_id),
    )


async def _saw(ctx: BotContext, user_id: int, user: Any) -> None:
    await ctx.members.saw(
        user_id,
        first_name=getattr(user, "first_name", None),
        username=getattr(user, "username", None),
        lang_code=getattr(user, "lang_code", None),
    )


async def on_message(ctx: BotContext, seen: dict[int, float], event: Any) -> None:
    """Every incoming message."""
    sender_id = event.sender_id
    command = command_of(event.raw_text)
    if not ctx.access.allows(sender_id):
        tr = translator(pick(None, getattr(event.sender, "lang_code", None)))
        if command == "/id":
            await event.reply(tr.gettext("Your Telegram user id is {id}.", id=sender_id))
        elif ctx.access.should_refuse(sender_id):
            await _saw(ctx, sender_id, event.sender)  # so that /users can offer them
            await event.reply(tr.gettext(REFUSAL))
        return
    who = await _sender(ctx, event, seen)
    if event.message.photo is not None or event.message.document is not None:
        await accept_media(ctx, event, who)
        return
    if who.is_owner and command is None and event.message.fwd_from is not None:
        await on_forward(ctx, event, who)
        return
    action = COMMANDS.get(command or "")
    if action is None and command in ADMIN_COMMANDS:
        if not who.is_owner:
            await event.reply(who.tr.gettext("Only the bot's owner can do that."))
            return
        action = ADMIN_COMMANDS[command or ""]
    if action is not None:
        await action(ctx, event, who)
    elif command == "/upscale":
        await event.reply(
            who.tr.gettext("Send the picture with «/upscale x2 anime» (or similar) as its caption.")
        )
    else:
        await event.reply(
            who.tr.gettext(
                "Send me a photo or a picture as a file to upscale. /help lists the rest."
            )
        )


async def on_press(ctx: BotContext, seen: dict[int, float], event: Any) -> None:
    """An inline button."""
    if not ctx.access.allows(event.sender_id):
        tr = translator(pick(None, getattr(event.sender, "lang_code", None)))
        await event.answer(tr.gettext("This bot is private."), alert=True)
        return
    await on_button(ctx, event, await _sender(ctx, event, seen))
