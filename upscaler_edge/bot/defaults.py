"""A user's defaults: /model, /scale and /format offer buttons; a press saves the choice."""

from __future__ import annotations

from typing import Any

from .context import BotContext
from .telethon_api import Button

__all__ = ["cmd_format", "cmd_model", "cmd_scale", "on_button"]

SCALES = (0, 2, 3, 4)  # 0: the model's own
FORMATS = ("png", "jpg", "webp")


def _buttons(field: str, options: list[tuple[str, str]]) -> list[list[Any]]:
    """Two buttons a row; each carries ``set:FIELD:VALUE``."""
    rows, row = [], []
    for label, value in options:
        row.append(Button.inline(label, data=f"set:{field}:{value}".encode()))
        if len(row) == 2:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    return rows


async def cmd_model(ctx: BotContext, event: Any) -> None:
    current = (await ctx.prefs.get(event.sender_id)).model or ctx.config.model
    options = [(f.name, f.name) for f in ctx.catalog.families]
    await event.reply(f"Your default model: {current}. Choose:", buttons=_buttons("model", options))


async def cmd_scale(ctx: BotContext, event: Any) -> None:
    current = (await ctx.prefs.get(event.sender_id)).scale
    options = [("model's own", "0"), ("x2", "2"), ("x3", "3"), ("x4", "4")]
    shown = f"x{current}" if current else "the model's own"
    await event.reply(f"Your default scale: {shown}. Choose:", buttons=_buttons("scale", options))


async def cmd_format(ctx: BotContext, event: Any) -> None:
    current = (await ctx.prefs.get(event.sender_id)).format or "png"
    options = [("PNG (lossless)", "png"), ("JPEG", "jpg"), ("WebP", "webp")]
    await event.reply(
        f"Your default format: {current}. Choose:", buttons=_buttons("format", options)
    )


async def on_button(ctx: BotContext, event: Any) -> None:
    """An inline button from /model, /scale or /format."""
    if not ctx.access.allows(event.sender_id):
        await event.answer("This bot is private.", alert=True)
        return
    parts = event.data.decode(errors="replace").split(":", 2)
    if len(parts) != 3 or parts[0] != "set":
        await event.answer("That button is no longer valid.")
        return
    _, field, value = parts
    if field == "model":
        if value not in ctx.catalog.names:  # a family, or a model (an older keyboard)
            await event.answer("That model is no longer available.", alert=True)
            return
        await ctx.prefs.set(event.sender_id, "model", value)
        shown = value
    elif field == "scale" and value.isdigit() and int(value) in SCALES:
        await ctx.prefs.set(event.sender_id, "scale", int(value) or None)
        shown = f"x{value}" if int(value) else "the model's own scale"
    elif field == "format" and value in FORMATS:
        await ctx.prefs.set(event.sender_id, "format", value)
        shown = value
    else:
        await event.answer("That button is no longer valid.")
        return
    await event.answer(f"Default {field}: {shown}")
    await event.edit(f"Your default {field} is now {shown}.")
