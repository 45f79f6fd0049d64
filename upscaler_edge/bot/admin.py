"""The owner's commands: /allow, /deny, /users, /stats. Anyone else gets one refusal.

``/allow ID`` (or ``/allow`` in reply to a message of that person forwarded to the bot) and
``/deny ID`` are stored in :class:`~.members.Members` first and then applied to
:class:`~.access.Access`, so they take effect at the next message and survive a restart.
A denied user's unfinished jobs are cancelled. The owner cannot be denied.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from typing import Any

from ..jobs import CANCELLED, DONE, FAILED, Job
from .context import BotContext, Sender
from .i18n import N_, Translator, pick, translator
from .limits import day_start
from .members import Member

__all__ = [
    "ADMIN_COMMANDS",
    "cmd_allow",
    "cmd_deny",
    "cmd_stats",
    "cmd_users",
    "on_forward",
    "who_text",
]

log = logging.getLogger(__name__)


def who_text(member: Member | None, user_id: int) -> str:
    """``Anna (@anna, 222)``, or the bare id when the bot never saw them."""
    if member is None or not (member.first_name or member.username):
        return str(user_id)
    inner = ", ".join(
        x for x in (f"@{member.username}" if member.username else "", str(user_id)) if x
    )
    return f"{member.first_name or ''} ({inner})".strip()


HIDDEN = N_(
    "I can't see who wrote that: their privacy settings hide them in forwards. "
    "Ask them to send me /id and use the number."
)


async def on_forward(ctx: BotContext, event: Any, who: Sender) -> None:
    """The owner forwarded someone's message: say who it is and how to let them in."""
    tr = who.tr
    user_id = getattr(event.message.fwd_from.from_id, "user_id", None)
    if user_id is None:
        await event.reply(tr.gettext(HIDDEN))
        return
    name = who_text(await ctx.members.get(user_id), user_id)
    if ctx.access.allows(user_id):
        text = tr.gettext(
            "From {who}, who may use the bot. Reply /deny to shut them out.", who=name
        )
    else:
        text = tr.gettext("From {who}. Reply /allow to this message to let them in.", who=name)
    await event.reply(text)


async def _target(ctx: BotContext, event: Any, tr: Translator) -> int | str:
    """The user id a /allow or /deny names, or the reply explaining why there is none."""
    words = (event.raw_text or "").split()[1:]
    if words:
        if words[0].isdigit() and int(words[0]) > 0:
            return int(words[0])
        return tr.gettext(
            "«{word}» is not a Telegram user id (a number; they get it with /id).", word=words[0]
        )
    if event.is_reply:
        replied = await event.get_reply_message()
        forward = getattr(replied, "fwd_from", None)
        if forward is None:
            return tr.gettext("Reply to a message of theirs that you forwarded here.")
        user_id = getattr(forward.from_id, "user_id", None)
        if user_id is None:
            return tr.gettext(HIDDEN)
        return int(user_id)
    return tr.gettext(
        "Write the person's id after the command (they get it with /id), or reply with the "
        "command to a message of theirs forwarded here."
    )


async def cmd_allow(ctx: BotContext, event: Any, who: Sender) -> None:
    tr = who.tr
    target = await _target(ctx, event, tr)
    if isinstance(target, str):
        await event.reply(target)
        return
    changed = await ctx.members.set_allowed(target, True, who.user_id)
    ctx.access.set(target, True)
    member = await ctx.members.get(target)
    name = who_text(member, target)
    log.info("owner allowed user %s", target)
    if not changed:
        await event.reply(tr.gettext("{who} could already use the bot.", who=name))
        return
    await event.reply(tr.gettext("Done: {who} can use the bot now.", who=name))
    if member is not None and member.last_seen is not None:  # they wrote before: tell them
        their = translator(pick(None, member.lang_code))
        try:
            await event.client.send_message(
                target, their.gettext("Good news: the owner let you in. Send me a picture!")
            )
        except Exception as exc:  # a courtesy; the owner can tell them too
            log.info("could not tell user %s they were allowed: %s", target, exc)


async def cmd_deny(ctx: BotContext, event: Any, who: Sender) -> None:
    tr = who.tr
    target = await _target(ctx, event, tr)
    if isinstance(target, str):
        await event.reply(target)
        return
    if ctx.access.is_owner(target):
        await event.reply(tr.gettext("You are the owner; you can't shut yourself out."))
        return
    changed = await ctx.members.set_allowed(target, False, who.user_id)
    ctx.access.set(target, False)
    name = who_text(await ctx.members.get(target), target)
    log.info("owner denied user %s", target)
    if not changed:
        await event.reply(tr.gettext("{who} had no access anyway.", who=name))
        return
    text = tr.gettext("Done: {who} can no longer use the bot.", who=name)
    cancelled = await ctx.runner.cancel(target)
    if cancelled:
        text += " " + tr.ngettext(
            "I cancelled their {n} unfinished job.",
            "I cancelled their {n} unfinished jobs.",
            cancelled,
        )
    await event.reply(text)


def _when(tr: Translator, moment: float | None, now: float) -> str:
    if moment is None:
        return tr.gettext("no messages yet")
    local = dt.datetime.fromtimestamp(moment)
    clock = local.strftime("%H:%M")
    if moment >= day_start(now):
        return tr.gettext("last message today at {time}", time=clock)
    if moment >= day_start(now) - 24 * 3600:
        return tr.gettext("last message yesterday at {time}", time=clock)
    # Translators: a strftime format for a date and time
    when = local.strftime(tr.pgettext("strftime", "%Y-%m-%d %H:%M"))
    return tr.gettext("last message on {date}", date=when)


async def cmd_users(ctx: BotContext, event: Any, who: Sender) -> None:
    tr, now = who.tr, time.time()
    known = {m.user_id: m for m in await ctx.members.everyone()}
    since = day_start(now)
    allowed = ctx.access.allowed
    lines = [
        tr.ngettext("{n} person may use the bot:", "{n} people may use the bot:", len(allowed))
    ]
    for uid in allowed:
        jobs = await ctx.queue.counted_since(uid, since)
        parts = [tr.ngettext("{n} job today", "{n} jobs today", jobs)]
        parts.append(_when(tr, known[uid].last_seen if uid in known else None, now))
        mark = " " + tr.gettext("(owner)") if ctx.access.is_owner(uid) else ""
        lines.append(f"• {who_text(known.get(uid), uid)}{mark}: {', '.join(parts)}")
    others = [m for m in known.values() if not ctx.access.allows(m.user_id) and m.last_seen]
    if others:
        lines.append("")
        lines.append(tr.gettext("Wrote to the bot but may not use it (/allow ID lets them in):"))
        for m in others[:20]:
            lines.append(f"• {who_text(m, m.user_id)}: {_when(tr, m.last_seen, now)}")
    await event.reply("\n".join(lines))


def stats_text(tr: Translator, jobs: list[Job], names: dict[int, str], since: float) -> str:
    """The /stats reply for the jobs created since ``since``."""
    states = collections.Counter(job.state for job in jobs)
    mp_in = mp_out = 0.0
    seconds: dict[str, float] = collections.defaultdict(float)
    per_user: collections.Counter[int] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    for job in jobs:
        p = job.params
        if job.state == DONE:
            per_user[job.user_id] += 1
            mp_in += (p.get("width") or 0) * (p.get("height") or 0) / 1e6
            mp_out += (p.get("out_width") or 0) * (p.get("out_height") or 0) / 1e6
        if p.get("seconds"):
            seconds[p.get("device") or "?"] += float(p["seconds"])
        if job.state == FAILED and job.error:
            reasons[job.error[:80]] += 1
    # Translators: a strftime format for a date
    day = tr.pgettext("strftime", "%Y-%m-%d")
    lines = [
        tr.gettext("Since {date}:", date=dt.datetime.fromtimestamp(since).strftime(day)),
        tr.gettext(
            "Jobs: {done} done, {failed} failed, {cancelled} cancelled.",
            done=states[DONE],
            failed=states[FAILED],
            cancelled=states[CANCELLED],
        ),
        tr.gettext(
            "Megapixels: {mp_in} in, {mp_out} out.",
            mp_in=tr.number(mp_in),
            mp_out=tr.number(mp_out),
        ),
    ]
    if seconds:
        spent = "; ".join(f"{dev}: {tr.duration(s)}" for dev, s in sorted(seconds.items()))
        lines.append(tr.gettext("Upscaling time: {spent}.", spent=spent))
    if per_user:
        top = ", ".join(f"{names.get(uid, str(uid))} ({n})" for uid, n in per_user.most_common(5))
        lines.append(tr.gettext("Who: {people}.", people=top))
    if reasons:
        lines.append(tr.gettext("Most common failures:"))
        lines += [f"• {n}× {reason}" for reason, n in reasons.most_common(3)]
    return "\n".join(lines)


async def cmd_stats(ctx: BotContext, event: Any, who: Sender) -> None:
    since = day_start(time.time()) - 6 * 24 * 3600  # today and the six days before
    jobs = await ctx.queue.jobs_since(since)
    names = {m.user_id: who_text(m, m.user_id) for m in await ctx.members.everyone()}
    await event.reply(stats_text(who.tr, jobs, names, since))


ADMIN_COMMANDS = {
    "/allow": cmd_allow,
    "/deny": cmd_deny,
    "/users": cmd_users,
    "/stats": cmd_stats,
}
