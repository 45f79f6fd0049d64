"""The bot's one import of Telethon (the ``bot`` extra).

Every other bot module takes Telethon's names from here, so a missing extra surfaces in one
place: :func:`upscaler_edge.bot.cli.main` imports this module before starting and turns a
``ModuleNotFoundError`` for ``telethon`` into one line and exit status 2.
"""

from __future__ import annotations

from telethon import Button, TelegramClient, errors, events, functions, types, utils

__all__ = ["Button", "TelegramClient", "errors", "events", "functions", "types", "utils"]
