"""The informational commands: /start and /help, /status, /cancel, /models."""

from __future__ import annotations

from typing import Any

from .config import BotConfig
from .context import BotContext, QueueStatus

__all__ = ["cmd_cancel", "cmd_help", "cmd_models", "cmd_status", "help_text", "status_text"]


def help_text(config: BotConfig) -> str:
    """The /help and /start text."""
    oversize = (
        "sent as a high-quality JPEG instead of PNG"
        if config.oversize == "jpeg"
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
        f"Limits: files up to {config.max_file_mb} MiB, images up to "
        f"{config.max_pixels / 1e6:.0f} megapixels. Results are always sent as files; a result "
        f"over Telegram's 2000 MiB file limit is {oversize}."
    )


def status_text(status: QueueStatus) -> str:
    """The /status reply."""
    lines = [
        f"Device: {status.device}",
        f"Queue: {status.waiting} waiting, {status.running} running"
        + (" (the bot is stopping)" if status.stopping else ""),
    ]
    if not status.jobs:
        lines.append("You have no jobs in progress.")
    for job in status.jobs:
        if job.running:
            percent = f" {job.percent}%" if job.percent is not None else ""
            lines.append(f"- {job.name}: running{percent}")
        else:
            lines.append(f"- {job.name}: #{job.position} in line")
    return "\n".join(lines)


async def cmd_help(ctx: BotContext, event: Any) -> None:
    await event.reply(help_text(ctx.config))


async def cmd_status(ctx: BotContext, event: Any) -> None:
    await event.reply(status_text(await ctx.runner.status(event.sender_id)))


async def cmd_cancel(ctx: BotContext, event: Any) -> None:
    count = await ctx.runner.cancel(event.sender_id)
    if not count:
        await event.reply("You have nothing queued or running.")
        return
    await event.reply(f"Cancelled {count} job{'s' if count != 1 else ''}.")


async def cmd_models(ctx: BotContext, event: Any) -> None:
    mine = (await ctx.prefs.get(event.sender_id)).model or ctx.config.model
    lines = ["Models (write one in a caption or pick a default with /model):"]
    for family in ctx.catalog.families:
        if mine == family.name:
            mark = " (your default)"
        elif mine in family.members:
            mark = f" (your default: {mine})"
        else:
            mark = ""
        scales = "/".join(f"x{s}" for s in family.scales)
        line = f"- {family.name}: {scales}, {family.kind}{mark}. {family.description}"
        lines.append(line.rstrip())
    await event.reply("\n".join(lines))
