"""An incoming photo or file becomes a queued job, or one refusal.

Order of checks: a repeated update (catch-up after a restart) changes nothing -> what kind of
file it is (:func:`media_kind`, the one place that decides) -> caption understood -> model,
scale and noise level valid -> the limits on what Telegram reports (empty, file size, pixels,
duration; see :mod:`.limits`) and today's quota, with no download -> queued row + "queued"
reply. The pixel count is checked again on the header after the download, by the runner.
The sender was checked against the allowlist before this is called.

Albums: the files of one album (same ``grouped_id``) are one request. Each is its own row
(so none is done twice), with the album's id; the first to arrive sends the one "queued"
message and the others share it; a file without a caption takes the album's caption; a
refusal the album's files share (today's limit) is said once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..errors import UpscalerError
from ..jobs import FAILED, QUEUED, READY, RUNNING, Job
from .captions import CaptionError, Choice, parse_caption
from .context import BotContext, Sender
from .i18n import N_, Translator
from .limits import arrival_refusal, day_start, quota_refusal
from .telegram import MediaInfo, describe_media, peer_to_string, send_text
from .telethon_api import errors

__all__ = ["PHOTO_HINT", "accept_media", "media_kind"]

log = logging.getLogger(__name__)

PHOTO_HINT = N_(
    "Tip: Telegram compressed this photo before I got it. Send the picture as a "
    "file (paperclip → File) to keep its full quality."
)

CAPTION_KEYS = ("model", "scale", "format", "denoise")  # what a caption may choose


VIDEO_KINDS = ("video", "round", "animation")

#: Frames per second assumed for a video before its header is read (Telegram does not say).
ASSUMED_FPS = 30.0

VIDEO_EXTRA = N_(
    "Sorry: videos and animations need the bot's video extra (PyAV), which is not installed "
    "here. Send a picture instead."
)


def media_kind(info: MediaInfo) -> str | None:
    """What the bot does with a file: ``"image"`` (upscale it), ``"video"``, ``"round"``
    (a round video message) or ``"animation"`` (a GIF: Telegram sends it as a silent MP4),
    or None (refuse it). The one type check."""
    if info.video in VIDEO_KINDS:
        return info.video
    return "image" if info.looks_like_image else None


def estimated_frames(info: MediaInfo) -> int | None:
    """The frame count from what Telegram says (duration x :data:`ASSUMED_FPS`), or None."""
    if not info.duration:
        return None
    return max(1, round(info.duration * ASSUMED_FPS))


async def accept_media(ctx: BotContext, event: Any, who: Sender) -> None:
    """Queue the photo or file of ``event`` (or refuse it with one reply)."""
    msg = event.message
    existing = await ctx.queue.find(event.chat_id, msg.id)
    if existing is not None:  # a repeated update (catch-up after a restart)
        await _repeated(ctx, event, existing)
        return
    info = describe_media(msg)
    assert info is not None
    tr = who.tr
    try:
        choice = parse_caption(msg.message, ctx.catalog)
    except CaptionError as exc:
        await event.reply(exc.text.render(tr))
        return
    album = info.album_id
    key = ("album", event.chat_id, album) if album is not None else ("message", msg.id)
    async with ctx.locks.hold(key):
        siblings = await ctx.queue.album(event.chat_id, album) if album is not None else []
        if not msg.message and siblings:  # most albums carry one caption, on one file
            choice = _album_choice(siblings)
        params = await _params(ctx, who, choice, info)
        if isinstance(params, str):
            await event.reply(params)
            return
        async with ctx.locks.hold(("user", who.user_id)):  # the quota check and the row: atomic
            refused_by, refusal = await _refusal(ctx, who, info)
            if refused_by is not None:
                params["refused"] = refused_by
            job, created = await ctx.queue.add(
                event.chat_id,
                msg.id,
                who.user_id,
                chat_address=peer_to_string(await event.get_input_chat()),
                params=params,
                state=FAILED if refusal else QUEUED,
                error=refusal,
                album_id=album,
            )
        if not created:
            return
        if msg.message and siblings:  # the album's caption, even on a file refused itself
            await _caption_for_album(ctx, who, siblings, choice)
        if refusal is not None:
            await _refuse(ctx, event, job, refusal, siblings)
            return
        await _announce(ctx, event, job, who, info, siblings)


async def _repeated(ctx: BotContext, event: Any, existing: Job) -> None:
    log.info(
        "message %s/%s is job %s already", event.chat_id, existing.request_message_id, existing.id
    )
    if existing.state == FAILED and existing.reply_message_id is None and existing.error:
        # refused on arrival but the reply may not have gone out: send it (at most once)
        reply_id = await send_text(
            event.client,
            existing.chat_address,
            existing.error,
            random_id=existing.reply_random_id,
            reply_to=existing.request_message_id,
        )
        if reply_id is not None:
            await ctx.queue.record_reply(existing.id, reply_id)


def _album_choice(siblings: list[Job]) -> Choice:
    """The caption choice an album's earlier file carried, if any."""
    for job in siblings:
        chosen = job.params.get("caption")
        if chosen:
            return Choice(**{k: chosen.get(k) for k in CAPTION_KEYS})
    return Choice()


async def _params(
    ctx: BotContext, who: Sender, choice: Choice, info: MediaInfo
) -> dict[str, Any] | str:
    """The job's params for this choice over the user's defaults, or the reply saying what is
    wrong with the model, scale or noise level."""
    tr, prefs = who.tr, who.prefs
    model = choice.model or prefs.model or ctx.config.model
    scale = choice.scale or prefs.scale
    family = ctx.catalog.family(model)
    denoise = choice.denoise
    same_model = choice.model is None or prefs.model == model  # the saved level is for it
    if denoise is None and family is not None and same_model:
        levels = ctx.catalog.levels(family, scale)
        denoise = prefs.denoise if prefs.denoise in levels else None
    problem = _model_problem(ctx, tr, model, scale, denoise)
    if problem is not None:
        return problem
    try:
        spec = await asyncio.to_thread(ctx.resolve, model, scale, denoise)
    except UpscalerError as exc:
        return tr.gettext("Sorry: {reason}", reason=exc)
    explicit = {k: getattr(choice, k) for k in CAPTION_KEYS if getattr(choice, k) is not None}
    kind = media_kind(info)
    video: dict[str, Any] = {}
    if kind in VIDEO_KINDS:
        video = {"kind": kind, "duration": info.duration, "frames": estimated_frames(info)}
    return {
        **video,
        "model": spec.name,
        "scale": scale,
        "denoise": denoise,
        "format": "mp4" if video else choice.format or prefs.format or "png",
        "file_name": info.file_name,
        "size": info.size,
        "width": info.width,
        "height": info.height,
        "compressed": info.compressed,
        "lang": tr.lang,
        "preview": prefs.preview,
        "caption": explicit,
    }


def _model_problem(
    ctx: BotContext, tr: Translator, model: str, scale: int | None, denoise: int | None
) -> str | None:
    """What is wrong with this combination, in the user's words (None: it is valid)."""
    family = ctx.catalog.family(model)
    if family is None:
        return None  # the registry's own error says which names exist
    top = max(ctx.catalog.scales(family))
    if scale is not None and scale > top:
        return tr.gettext(
            "Sorry: «{model}» goes up to ×{top}, not ×{scale}.",
            model=family.name,
            top=top,
            scale=scale,
        )
    if denoise is not None:
        levels = ctx.catalog.levels(family, scale)
        if not levels:
            return tr.gettext("Sorry: «{model}» has no noise reduction levels.", model=family.name)
        if denoise not in levels:
            return tr.gettext(
                "Sorry: «{model}» has noise levels {levels} at ×{scale}, not {level}.",
                model=family.name,
                levels=", ".join(f"n{d}" for d in levels),
                scale=scale or family.default_scale,
                level=f"n{denoise}",
            )
    return None


async def _refusal(ctx: BotContext, who: Sender, info: MediaInfo) -> tuple[str | None, str | None]:
    """Why a file is refused before any download: (``"type"``, ``"limits"`` or ``"quota"``,
    the one-line reply), or (None, None)."""
    tr = who.tr
    kind = media_kind(info)
    if kind is None:
        text = tr.gettext(
            "Sorry: that file ({mime}) is not an image I can read.", mime=info.mime_type
        )
        return "type", text
    if kind in VIDEO_KINDS and not _video_available():
        return "type", tr.gettext(VIDEO_EXTRA)
    refusal = arrival_refusal(tr, info, ctx.config)
    if refusal is not None:
        return "limits", refusal
    limit = ctx.config.daily_limit
    if limit and not who.is_owner:
        now = time.time()
        used = await ctx.queue.counted_since(who.user_id, day_start(now))
        if used >= limit:
            return "quota", quota_refusal(tr, limit, now)
    return None, None


def _video_available() -> bool:
    from ..video import available

    return available()


async def _refuse(ctx: BotContext, event: Any, job: Job, refusal: str, siblings: list[Job]) -> None:
    log.info("job %s refused on arrival: %s", job.id, refusal)
    said = next(
        (
            s
            for s in siblings
            if s.params.get("refused") == "quota" == job.params.get("refused")
            and s.reply_message_id is not None
        ),
        None,
    )
    if said is not None:  # the album was told about today's limit already: once is enough
        await ctx.queue.record_reply(job.id, said.reply_message_id or 0)
        return
    reply_id = await send_text(
        event.client,
        job.chat_address,
        refusal,
        random_id=job.reply_random_id,
        reply_to=job.request_message_id,
    )
    if reply_id is not None:
        await ctx.queue.record_reply(job.id, reply_id)


async def _caption_for_album(
    ctx: BotContext, who: Sender, siblings: list[Job], choice: Choice
) -> None:
    """A caption that arrived after files of its album: it applies to those still queued."""
    for job in siblings:
        if job.state != QUEUED or job.params.get("caption"):
            continue
        p = job.params
        info = MediaInfo(
            file_name=p.get("file_name", ""),
            size=p.get("size"),
            mime_type="",
            width=p.get("width"),
            height=p.get("height"),
            compressed=bool(p.get("compressed")),
            looks_like_image=p.get("kind") is None,
            duration=p.get("duration"),
            video=p.get("kind"),
        )
        params = await _params(ctx, who, choice, info)
        if isinstance(params, str):
            log.info("the album's caption does not fit job %s: %s", job.id, params)
            continue
        await ctx.queue.update_params(job.id, **params)


async def _announce(
    ctx: BotContext, event: Any, job: Job, who: Sender, info: MediaInfo, siblings: list[Job]
) -> None:
    """The "queued" reply: one per request; the files of an album share it."""
    tr, msg = who.tr, event.message
    accepted = [s for s in siblings if s.state in (QUEUED, RUNNING, READY)]
    shared = next((s.status_message_id for s in siblings if s.status_message_id), None)
    if shared is not None:
        await ctx.runner.enqueue(job, message=msg, status_message_id=shared)
        if not any(s.state in (RUNNING, READY) for s in accepted):  # else progress shows
            first = min([*accepted, job], key=lambda s: s.id)  # the album's place in line
            text = await ctx.runner.queued_text(job, tr, count=len(accepted) + 1, first=first)
            ctx.runner.show_status(job, text, status_message_id=shared)
        log.info("job %s queued with its album (user %s)", job.id, who.user_id)
        return
    text = await ctx.runner.queued_text(job, tr, count=len(accepted) + 1)
    if info.compressed and await ctx.prefs.take_photo_hint(who.user_id):
        text += "\n" + tr.gettext(PHOTO_HINT)
    status_id: int | None = None
    try:
        status = await event.reply(text)
    except errors.FloodWaitError as exc:
        # the job is safely queued; the runner sends a status message when it starts
        log.warning("job %s: no 'queued' reply (flood wait %s s)", job.id, exc.seconds)
    else:
        status_id = status.id
    await ctx.runner.enqueue(job, message=msg, status_message_id=status_id)
    log.info("job %s queued: user %s, %s", job.id, who.user_id, job.params.get("model"))
