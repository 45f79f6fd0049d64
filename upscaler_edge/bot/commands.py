"""The informational commands: /start and /help, /status, /cancel, /models, /id, /preview."""

from __future__ import annotations

import time
from typing import Any

from .captions import Catalog
from .config import BotConfig
from .context import BotContext, ClusterWorker, QueueStatus, Sender
from .i18n import N_, Translator
from .limits import day_start, megapixels, quota_line

__all__ = [
    "KINDS",
    "cluster_lines",
    "cmd_cancel",
    "cmd_help",
    "cmd_id",
    "cmd_models",
    "cmd_preview",
    "cmd_status",
    "family_line",
    "help_text",
    "status_text",
]

KINDS = {"photo": N_("photo"), "anime": N_("anime"), "fast": N_("fast")}  # ModelFamily.kind


def help_text(tr: Translator, config: BotConfig, *, owner: bool) -> str:
    """The /help and /start text (the owner also gets the admin commands)."""
    oversize = (
        tr.gettext("sent as a high-quality JPEG instead of PNG")
        if config.oversize == "jpeg"
        else tr.gettext("refused, with the reason")
    )
    limits = tr.gettext(
        "files up to {mb} MiB, pictures up to {mp} MP",
        mb=config.max_file_mb,
        mp=megapixels(tr, config.max_megapixels),
    )
    if config.daily_limit and not owner:
        limits += tr.ngettext(", {n} picture a day", ", {n} pictures a day", config.daily_limit)
    text = tr.gettext(
        "Send me a photo or, better, a picture as a file: I upscale it on my owner's computer "
        "and send back the full-resolution file, with a small before/after preview.\n"
        "Several pictures sent as one album come back as one album.\n\n"
        "A caption can choose a scale, a model, a noise level and a format, e.g. «x2 anime», "
        "«n2», «/upscale 4 realesrgan-x4plus», «jpg».\n"
        "/model - model, scale and noise reduction\n"
        "/scale, /format - default scale and format\n"
        "/models - the models\n"
        "/preview on|off - before/after previews\n"
        "/lang - language\n"
        "/status - the queue, your jobs and what is left today\n"
        "/cancel - cancel your queued and running jobs\n"
        "/id - your Telegram id\n\n"
        "Limits: {limits}. Results always come as files; a result over Telegram's 2000 MiB "
        "limit is {oversize}.",
        limits=limits,
        oversize=oversize,
    )
    if owner:
        text += "\n\n" + tr.gettext(
            "For you as the owner:\n"
            "/users - who may use the bot, jobs today, last message\n"
            "/allow ID - let someone in (or reply /allow to a message of theirs forwarded "
            "here)\n"
            "/deny ID - shut someone out\n"
            "/stats - this week's jobs, megapixels, GPU/CPU time and failures"
        )
    return text


def status_text(tr: Translator, status: QueueStatus) -> str:
    """The /status reply (without the quota line)."""
    queue = tr.gettext("Queue: {waiting} waiting, {running} running", **_counts(status))
    if status.stopping:
        queue += " " + tr.gettext("(the bot is stopping)")
    if status.cluster:
        lines = [*cluster_lines(tr, status.workers), queue]
    else:
        lines = [tr.gettext("Device: {device}", device=status.device), queue]
    if not status.jobs:
        lines.append(tr.gettext("You have no jobs in progress."))
    for job in status.jobs:
        if job.ready:
            state = tr.gettext("done, waiting for the rest of its album")
        elif job.running:
            state = tr.gettext("running")
            if job.percent is not None:
                state += f", {job.percent}%"
        else:
            state = tr.gettext("#{position} in line", position=job.position)
        lines.append(f"• «{job.name}»: {state}")
    return "\n".join(lines)


def cluster_lines(tr: Translator, workers: tuple[ClusterWorker, ...] | None) -> list[str]:
    """The cluster's PCs for /status: name, device, jobs done, speed."""
    if workers is None:
        return [tr.gettext("Cluster: its list of workers cannot be read just now.")]
    if not workers:
        return [tr.gettext("Cluster: no worker has joined yet.")]
    lines = [tr.ngettext("Cluster: {n} worker", "Cluster: {n} workers", len(workers))]
    for w in workers:
        parts = [w.device or "?"]
        parts.append(tr.ngettext("{n} job done", "{n} jobs done", w.jobs_done))
        if w.mp_per_s:
            parts.append(tr.gettext("{speed} MP/s", speed=tr.number(w.mp_per_s, 2)))
        if w.busy:
            parts.append(tr.gettext("working"))
        if w.small_only:
            parts.append(tr.gettext("small pictures only"))
        lines.append(f"• {w.name}: {', '.join(parts)}")
    return lines


def _counts(status: QueueStatus) -> dict[str, int]:
    return {"waiting": status.waiting, "running": status.running}


def family_line(tr: Translator, catalog: Catalog, family: Any, mine: str | None) -> str:
    """One family for /models: name, scales, kind, noise levels, description."""
    scales = "/".join(f"x{s}" for s in family.scales)
    parts = [scales, tr.gettext(KINDS[family.kind]) if family.kind in KINDS else family.kind]
    levels = sorted(set(family.denoise))
    if levels:
        parts.append(tr.gettext("noise {levels}", levels="/".join(f"n{d}" for d in levels)))
    line = f"• {family.name}: {', '.join(parts)}"
    if mine == family.name:
        line += " " + tr.gettext("(your default)")
    elif mine in family.members:
        line += " " + tr.gettext("(your default: {model})", model=mine)
    if family.description:
        line += ". " + tr.gettext(family.description)
    return line


async def cmd_help(ctx: BotContext, event: Any, who: Sender) -> None:
    await event.reply(help_text(who.tr, ctx.config, owner=who.is_owner))


async def cmd_id(ctx: BotContext, event: Any, who: Sender) -> None:
    await event.reply(who.tr.gettext("Your Telegram user id is {id}.", id=who.user_id))


async def cmd_status(ctx: BotContext, event: Any, who: Sender) -> None:
    tr = who.tr
    text = status_text(tr, await ctx.runner.status(who.user_id))
    limit = ctx.config.daily_limit
    if limit and who.is_owner:
        text += "\n" + tr.gettext("No daily limit for you: you are the owner.")
    elif limit:
        now = time.time()
        used = await ctx.queue.counted_since(who.user_id, day_start(now))
        text += "\n" + quota_line(tr, used, limit, now)
    await event.reply(text)


async def cmd_cancel(ctx: BotContext, event: Any, who: Sender) -> None:
    count = await ctx.runner.cancel(who.user_id)
    if not count:
        await event.reply(who.tr.gettext("You have nothing queued or running."))
        return
    await event.reply(who.tr.ngettext("Cancelled {n} job.", "Cancelled {n} jobs.", count))


async def cmd_models(ctx: BotContext, event: Any, who: Sender) -> None:
    tr = who.tr
    mine = who.prefs.model or ctx.config.model
    lines = [tr.gettext("Models (write one in a caption, or choose your default with /model):")]
    lines += [family_line(tr, ctx.catalog, f, mine) for f in ctx.catalog.families]
    await event.reply("\n".join(lines))


async def cmd_preview(ctx: BotContext, event: Any, who: Sender) -> None:
    """``/preview on|off``; without a word it says which it is."""
    tr = who.tr
    words = (event.raw_text or "").split()[1:]
    word = words[0].lower() if words else ""
    if word in ("on", "вкл", "да", "1"):
        await ctx.prefs.set(who.user_id, "preview", True)
        on = True
    elif word in ("off", "выкл", "нет", "0"):
        await ctx.prefs.set(who.user_id, "preview", False)
        on = False
    else:
        on = who.prefs.preview
    if on:
        text = tr.gettext(
            "Previews are on: with each file I also send a small before/after picture. "
            "/preview off turns them off."
        )
    else:
        text = tr.gettext("Previews are off. /preview on turns them back on.")
    await event.reply(text)
