"""A user's defaults, with buttons: /model (family, then scale, then noise level, showing only
the combinations the family has), /scale, /format, /lang; a press saves the choice.

Button data (at most 64 bytes): ``m:FAMILY``, ``m:FAMILY:SCALE``, ``m:FAMILY:SCALE:LEVEL`` for
the /model steps; ``set:FIELD:VALUE`` for the others.
"""

from __future__ import annotations

from typing import Any

from .commands import KINDS
from .context import BotContext, Sender
from .i18n import LANGUAGES, N_, Translator, pick, translator
from .telethon_api import Button

__all__ = ["cmd_format", "cmd_lang", "cmd_model", "cmd_scale", "on_button"]

FORMATS = ("png", "jpg", "webp")
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}  # buttons: each in its own language
IN_A_SENTENCE = {"en": N_("English"), "ru": N_("Russian")}  # "Language: English."
AS_IN_TELEGRAM = N_("as in Telegram")


def _buttons(options: list[tuple[str, str]], per_row: int = 2) -> list[list[Any]]:
    """``per_row`` buttons a row; each carries its data string."""
    rows, row = [], []
    for label, data in options:
        row.append(Button.inline(label, data=data.encode()))
        if len(row) == per_row:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    return rows


def _model_words(tr: Translator, model: str, scale: int | None, denoise: int | None) -> str:
    """``«realesr-animevideov3», ×2, noise reduction n1`` (the parts that are set)."""
    text = f"«{model}»"
    if scale:
        text += f", ×{scale}"
    if denoise is not None:
        text += ", " + tr.gettext("noise reduction n{level}", level=denoise)
    return text


async def cmd_model(ctx: BotContext, event: Any, who: Sender) -> None:
    tr, prefs = who.tr, who.prefs
    current = _model_words(tr, prefs.model or ctx.config.model, prefs.scale, prefs.denoise)
    options = []
    for family in ctx.catalog.families:
        kind = tr.gettext(KINDS[family.kind]) if family.kind in KINDS else family.kind
        options.append((f"{family.name} · {kind}", f"m:{family.name}"))
    await event.reply(
        tr.gettext("Your model: {current}. Choose one:", current=current),
        buttons=_buttons(options, per_row=1),
    )


async def cmd_scale(ctx: BotContext, event: Any, who: Sender) -> None:
    tr, prefs = who.tr, who.prefs
    family = ctx.catalog.family(prefs.model or ctx.config.model)
    scales = ctx.catalog.scales(family) if family is not None else (2, 3, 4)
    options = [(tr.gettext("model's own"), "set:scale:0")]
    options += [(f"×{s}", f"set:scale:{s}") for s in scales]
    shown = f"×{prefs.scale}" if prefs.scale else tr.gettext("the model's own")
    await event.reply(
        tr.gettext("Your default scale: {scale}. Choose:", scale=shown),
        buttons=_buttons(options),
    )


async def cmd_format(ctx: BotContext, event: Any, who: Sender) -> None:
    tr = who.tr
    current = who.prefs.format or "png"
    options = [(tr.gettext("PNG (lossless)"), "set:format:png")]
    options += [("JPEG", "set:format:jpg"), ("WebP", "set:format:webp")]
    await event.reply(
        tr.gettext("Your default format: {format}. Choose:", format=current),
        buttons=_buttons(options),
    )


async def cmd_lang(ctx: BotContext, event: Any, who: Sender) -> None:
    """``/lang ru|en|auto``, or buttons."""
    words = (event.raw_text or "").split()[1:]
    if words and words[0].lower() in (*LANGUAGES, "auto"):
        await event.reply(await _set_lang(ctx, event, who, words[0].lower()))
        return
    tr = who.tr
    current = tr.gettext(IN_A_SENTENCE[tr.lang] if who.prefs.lang else AS_IN_TELEGRAM)
    options = [(LANGUAGE_NAMES[code], f"set:lang:{code}") for code in ("ru", "en")]
    options.append((tr.gettext("As in Telegram"), "set:lang:auto"))
    await event.reply(
        tr.gettext("Language: {language}. Choose:", language=current),
        buttons=_buttons(options),
    )


async def _set_lang(ctx: BotContext, event: Any, who: Sender, code: str) -> str:
    choice = None if code == "auto" else code
    await ctx.prefs.set(who.user_id, "lang", choice)
    tr = translator(pick(choice, getattr(event.sender, "lang_code", None)))
    if choice is None:
        return tr.gettext("Done: I answer in the language of your Telegram app.")
    # Translators: say it in your language ("Done: I answer in Russian.")
    return tr.pgettext("the language of this catalogue", "Done: I answer in English.")


async def on_button(ctx: BotContext, event: Any, who: Sender) -> None:
    """An inline button from /model, /scale, /format or /lang."""
    tr = who.tr
    data = event.data.decode(errors="replace")
    if data.startswith("m:"):
        await _model_step(ctx, event, who, data.split(":")[1:])
        return
    parts = data.split(":", 2)
    if len(parts) != 3 or parts[0] != "set":
        await event.answer(tr.gettext("That button is no longer valid."))
        return
    _, field, value = parts
    if field == "scale" and value.isdigit() and int(value) in (0, 2, 3, 4):
        await ctx.prefs.set(who.user_id, "scale", int(value) or None)
        shown = f"×{value}" if int(value) else tr.gettext("the model's own")
        text = tr.gettext("Done: your default scale is {scale}.", scale=shown)
    elif field == "format" and value in FORMATS:
        await ctx.prefs.set(who.user_id, "format", value)
        text = tr.gettext("Done: your default format is {format}.", format=value)
    elif field == "lang" and value in (*LANGUAGES, "auto"):
        text = await _set_lang(ctx, event, who, value)
    else:
        await event.answer(tr.gettext("That button is no longer valid."))
        return
    await event.answer(text)
    await event.edit(text)


async def _model_step(ctx: BotContext, event: Any, who: Sender, parts: list[str]) -> None:
    """One /model step: family -> scale (if there is a choice) -> level (if any) -> saved."""
    tr = who.tr
    family = ctx.catalog.family(parts[0]) if parts else None
    if family is None or family.name != parts[0]:
        await event.answer(tr.gettext("That model is no longer available."), alert=True)
        return
    try:
        numbers = [int(p) for p in parts[1:3]]
    except ValueError:
        await event.answer(tr.gettext("That button is no longer valid."))
        return
    scales = ctx.catalog.scales(family)
    if not numbers and len(scales) > 1:
        await event.answer()
        await event.edit(
            tr.gettext("«{model}»: choose the scale.", model=family.name),
            buttons=_buttons([(f"×{s}", f"m:{family.name}:{s}") for s in scales], per_row=4),
        )
        return
    scale = (numbers[0] or None) if numbers else None  # 0: the family's default scale
    if scale is not None and scale not in scales:
        await event.answer(tr.gettext("That button is no longer valid."))
        return
    levels = ctx.catalog.levels(family, scale)
    if len(numbers) < 2 and len(levels) > 1:
        options = [(f"n{d}", f"m:{family.name}:{scale or 0}:{d}") for d in levels]
        await event.answer()
        await event.edit(
            tr.gettext(
                "«{model}» ×{scale}: choose the noise reduction. Higher levels remove more "
                "noise, and more fine detail with it.",
                model=family.name,
                scale=scale or family.default_scale,
            ),
            buttons=_buttons(options, per_row=5),
        )
        return
    level = numbers[1] if len(numbers) > 1 else (levels[0] if len(levels) == 1 else None)
    if level is not None and level not in levels:
        await event.answer(tr.gettext("That button is no longer valid."))
        return
    await ctx.prefs.update(who.user_id, model=family.name, scale=scale or None, denoise=level)
    text = tr.gettext(
        "Done: your model is {model}.", model=_model_words(tr, family.name, scale, level)
    )
    await event.answer(text)
    await event.edit(text)
