"""The bot's profile in every language: command menu, short and long description.

Sent once per bot run, after the first login (``bots.setBotCommands`` and ``bots.setBotInfo``,
one of each per language: ``lang_code=""`` is the default, English, for every language without
its own). Telegram shows each user the set for their app's language. The owner's chat also
gets the admin commands in the menu, when the bot already knows the owner (they wrote to it).
A failure here is logged, never fatal: the bot works without a menu.
"""

from __future__ import annotations

import logging

from .i18n import DEFAULT, LANGUAGES, N_, translator
from .telethon_api import TelegramClient, errors, functions, types

__all__ = ["ABOUT", "ADMIN_MENU", "DESCRIPTION", "MENU", "publish"]

log = logging.getLogger(__name__)

MENU = (
    ("start", N_("What this bot does")),
    ("model", N_("Model, scale and noise reduction")),
    ("scale", N_("Default scale")),
    ("format", N_("Default format")),
    ("models", N_("The models")),
    ("preview", N_("Before/after previews on or off")),
    ("lang", N_("Language")),
    ("status", N_("Queue, your jobs, what is left today")),
    ("cancel", N_("Cancel your jobs")),
    ("help", N_("Help")),
    ("id", N_("Your Telegram id")),
)
ADMIN_MENU = (
    ("users", N_("Who may use the bot")),
    ("allow", N_("Let someone in: /allow ID")),
    ("deny", N_("Shut someone out: /deny ID")),
    ("stats", N_("This week's numbers")),
)
ABOUT = N_(  # the profile's short text: at most 120 characters
    "Upscales your pictures on its owner's computer and sends back full-resolution files."
)
DESCRIPTION = N_(  # "What can this bot do?" in an empty chat: at most 512 characters
    "Send a photo or, better, a picture as a file, and get it back upscaled 2-4× by "
    "Real-ESRGAN: the full-resolution file and a small before/after preview. Albums come "
    "back as albums.\n\n"
    "This is a private bot that runs on its owner's computer: it only works for people they "
    "added. Send /id and give them the number."
)


def _commands(lang: str, admin: bool) -> list[types.BotCommand]:
    tr = translator(lang)
    entries = MENU + ADMIN_MENU if admin else MENU
    return [types.BotCommand(command, tr.gettext(text)) for command, text in entries]


async def publish(client: TelegramClient, owner: int | None) -> None:
    """Set the menu and descriptions for every language (see the module doc)."""
    owner_peer = None
    if owner is not None:
        try:
            owner_peer = await client.get_input_entity(owner)
        except (ValueError, TypeError, errors.RPCError):
            log.debug("the owner has not written to the bot yet: no owner menu")
    for lang in LANGUAGES:
        code = "" if lang == DEFAULT else lang
        tr = translator(lang)
        try:
            await client(
                functions.bots.SetBotCommandsRequest(
                    scope=types.BotCommandScopeDefault(),
                    lang_code=code,
                    commands=_commands(lang, admin=False),
                )
            )
            if owner_peer is not None:
                await client(
                    functions.bots.SetBotCommandsRequest(
                        scope=types.BotCommandScopePeer(peer=owner_peer),
                        lang_code=code,
                        commands=_commands(lang, admin=True),
                    )
                )
            await client(
                functions.bots.SetBotInfoRequest(
                    lang_code=code, about=tr.gettext(ABOUT), description=tr.gettext(DESCRIPTION)
                )
            )
        except (errors.RPCError, ConnectionError) as exc:
            log.warning("could not set the %s menu and description: %s", lang, exc)
