"""Limits a request must fit, and the one polite line that says which one it did not.

Checked on what Telegram reports before any download (:func:`arrival_refusal`: empty, file
size, pixels when Telegram gives the size, a video's duration), on the file's header after
the download (:func:`pixels_refusal`), and per day (:func:`quota_refusal`): ``daily_limit``
jobs for each user but the owner, counted from the bot host's local midnight. Pure functions;
the caller passes the time.
"""

from __future__ import annotations

import datetime as dt

from .config import TELEGRAM_FILE_LIMIT, BotConfig
from .i18n import Translator
from .telegram import MediaInfo

__all__ = [
    "arrival_refusal",
    "day_start",
    "file_limit_bytes",
    "megapixels",
    "next_midnight",
    "pixels_refusal",
    "quota_line",
    "quota_refusal",
    "resets_text",
    "video_length_refusal",
]


def megapixels(tr: Translator, value: float) -> str:
    """``50``, ``1.2``, ``0.56`` (three significant digits at most, in the user's notation)."""
    text = f"{value:.0f}" if value >= 100 else f"{value:.3g}"
    return text.replace(".", tr.pgettext("decimal mark", "."))


def day_start(now: float) -> float:
    """The Unix time of the local midnight that began the day of ``now``."""
    today = dt.datetime.fromtimestamp(now).date()
    return dt.datetime.combine(today, dt.time()).timestamp()


def next_midnight(now: float) -> dt.datetime:
    """The next local midnight after ``now``, with the host's UTC offset at that moment."""
    tomorrow = dt.datetime.fromtimestamp(now).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time()).astimezone()


def _utc_offset(moment: dt.datetime) -> str:
    offset = moment.utcoffset() or dt.timedelta()
    minutes = round(offset.total_seconds() / 60)
    sign = "+" if minutes >= 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def resets_text(tr: Translator, now: float) -> str:
    """``at midnight (00:00 UTC+3), in 5 h 12 min``: when today's count starts again."""
    midnight = next_midnight(now)
    return tr.gettext(
        "at midnight ({clock} {zone}), in {left}",
        clock=midnight.strftime("%H:%M"),
        zone=_utc_offset(midnight),
        left=tr.duration(midnight.timestamp() - now),
    )


def quota_refusal(tr: Translator, limit: int, now: float) -> str:
    """The reply to a request over the daily limit."""
    return tr.ngettext(
        "Sorry, that's all for today: the limit is {n} picture a day. It resets {resets}.",
        "Sorry, that's all for today: the limit is {n} pictures a day. It resets {resets}.",
        limit,
        resets=resets_text(tr, now),
    )


def quota_line(tr: Translator, used: int, limit: int, now: float) -> str:
    """/status: what is left of today's limit."""
    left = max(0, limit - used)
    if left == 0:
        return tr.gettext(
            "Today's limit is used up; it resets {resets}.", resets=resets_text(tr, now)
        )
    return tr.ngettext(
        "Today you can send {n} more picture (of {limit}); the count resets {resets}.",
        "Today you can send {n} more pictures (of {limit}); the count resets {resets}.",
        left,
        limit=limit,
        resets=resets_text(tr, now),
    )


def pixels_refusal(tr: Translator, width: int, height: int, config: BotConfig) -> str | None:
    """The reply for a picture over ``max_megapixels``, or None."""
    if width * height <= config.max_pixels:
        return None
    return tr.gettext(
        "Sorry: that picture is {w}×{h} ({mp} MP); the limit is {limit} MP per picture.",
        w=width,
        h=height,
        mp=megapixels(tr, width * height / 1e6),
        limit=megapixels(tr, config.max_megapixels),
    )


def file_limit_bytes(config: BotConfig, video: str | None) -> int:
    """The largest file taken: ``max_file_mb`` for pictures, Telegram's 2000 MiB for videos."""
    return TELEGRAM_FILE_LIMIT if video else config.max_file_bytes


def arrival_refusal(tr: Translator, info: MediaInfo, config: BotConfig) -> str | None:
    """The reply for a file refused on what Telegram says about it (no download), or None.
    The type was checked before (:func:`~.images.media_kind`). A video's or animation's file
    may be as large as Telegram allows (2000 MiB); its duration and frame size are capped."""
    if info.size is not None and info.size == 0:
        return tr.gettext("Sorry: that file is empty (0 bytes).")
    limit_bytes = file_limit_bytes(config, info.video)
    if info.size is not None and info.size > limit_bytes:
        return tr.gettext(
            "Sorry: that file is {size} MiB; the limit is {limit} MiB.",
            size=tr.number(info.size / 2**20, 0),
            limit=limit_bytes // 2**20,
        )
    if info.width and info.height:
        refusal = pixels_refusal(tr, info.width, info.height, config)
        if refusal is not None:
            return refusal
    return video_length_refusal(tr, info.duration, config)


def video_length_refusal(tr: Translator, duration: float | None, config: BotConfig) -> str | None:
    """The reply for a video longer than ``max_video_seconds`` (0: no cap), or None."""
    cap = config.max_video_seconds
    if duration is not None and cap and duration > cap:
        return tr.gettext(
            "Sorry: that video is {length} long; the limit is {limit}.",
            length=tr.duration(duration),
            limit=tr.duration(cap),
        )
    return None
