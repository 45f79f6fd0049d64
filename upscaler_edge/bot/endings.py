"""How a job ends in the chat: at most one final reply, a final state, no status message left.

Shared by :mod:`.attempt` (a job that ends without a result) and :mod:`.delivery` (results
sent). The status message of an album is shared by its files: it goes only when none of them
is still unfinished. :class:`Tools` is what the runner lends both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..jobs import CANCELLED, LIVE_STATES, Job
from .config import BotConfig
from .i18n import Translator, translator
from .link import Stopping, TelegramLink
from .progress import StatusEditor
from .stores import AsyncJobQueue, AsyncPrefs
from .telegram import peer_from_string, send_text
from .upscaling import Core

__all__ = ["Tools", "drop_status", "end_cancelled", "end_with_reply", "job_translator", "show"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tools:
    """What the runner lends each attempt and delivery."""

    config: BotConfig
    queue: AsyncJobQueue
    prefs: AsyncPrefs
    link: TelegramLink
    editor: StatusEditor
    core: Core


def job_translator(job: Job) -> Translator:
    """The language the job's user asked in."""
    return translator(job.params.get("lang") or "en")


def show(tools: Tools, job: Job, text: str) -> None:
    """Ask for ``text`` in the job's status message (throttled; nothing if it has none)."""
    if job.status_message_id is not None:
        tools.editor.show(job.chat_id, job.chat_address, job.status_message_id, text)


async def end_with_reply(tools: Tools, job: Job, state: str, text: str) -> Job:
    """Finish a job that has no result: one reply (sent once), final state, no spool folder."""
    queue = tools.queue
    job = await queue.get(job.id) or job
    reply_id: int | None = None
    if job.reply_message_id is None:
        try:
            reply_id = await tools.link.call(
                "send reply",
                lambda c: send_text(
                    c,
                    job.chat_address,
                    text,
                    random_id=job.reply_random_id,
                    reply_to=job.request_message_id,
                ),
            )
        except Stopping:
            pass
        except Exception:
            log.exception("job %s: could not send the final reply", job.id)
    finished = await queue.finish(job.id, state, error=text, reply_message_id=reply_id)
    if not finished and reply_id is not None:
        await queue.record_reply(job.id, reply_id)
    await drop_status(tools, job)
    return job


async def end_cancelled(tools: Tools, job: Job) -> None:
    """The user cancelled it (and /cancel answered them): no reply."""
    await tools.queue.finish(job.id, CANCELLED, error="cancelled")
    log.info("job %s: cancelled", job.id)
    await drop_status(tools, job)


async def drop_status(tools: Tools, job: Job) -> None:
    """Delete the job's status message, unless files of its album still need it."""
    if job.album_id is not None:
        siblings = await tools.queue.album(job.chat_id, job.album_id)
        if any(s.id != job.id and s.state in LIVE_STATES for s in siblings):
            return
    await tools.editor.close(job.chat_id)
    if job.status_message_id is None:
        return
    status_id = job.status_message_id
    try:
        await tools.link.call(
            "delete status",
            lambda c: c.delete_messages(peer_from_string(job.chat_address), [status_id]),
        )
    except Stopping:
        pass
    except Exception as exc:  # cosmetic: the reply is what matters
        log.warning("job %s: could not delete the status message: %s", job.id, exc)
