"""Live status messages: throttled, coalescing edits that never fail a job.

:class:`StatusEditor` keeps, per chat, the latest text wanted for a status message and sends
it at most once every ``interval`` seconds (Telegram allows about one edit per second per
chat; 2 s leaves room for the rest). Texts shown while an edit is pending simply replace the
pending one. A ``FloodWaitError`` that Telethon did not sleep out itself postpones the next
edit by the time Telegram asked for; other errors are logged and dropped. Nothing here
raises into the caller: progress is best effort, the job's result is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .i18n import N_, Translator
from .telethon_api import errors

__all__ = ["STAGES", "StatusEditor", "frames_text", "progress_text"]

log = logging.getLogger(__name__)

EditFn = Callable[[str, int, str], Awaitable[None]]  # (peer, message id, text)


@dataclass
class _Chat:
    next_at: float = 0.0
    pending: tuple[str, int, str] | None = None  # (peer, message id, text)
    last: tuple[int, str] | None = None
    task: asyncio.Task[None] | None = None
    flood_waits: int = field(default=0)


class StatusEditor:
    """Throttled edits of status messages, keyed by chat id."""

    def __init__(
        self, edit: EditFn, *, interval: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._edit = edit
        self.interval = interval
        self._clock = clock
        self._chats: dict[int, _Chat] = {}

    def show(self, chat_id: int, peer: str, message_id: int, text: str) -> None:
        """Ask for ``text`` to appear in the message; returns at once (call from the loop)."""
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.pending = (peer, message_id, text)
        if chat.task is None or chat.task.done():
            chat.task = asyncio.get_running_loop().create_task(self._pump(chat_id, chat))

    def note_sent(self, chat_id: int) -> None:
        """Count a message just sent to the chat against its edit budget."""
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.next_at = max(chat.next_at, self._clock() + self.interval)

    async def close(self, chat_id: int) -> None:
        """Drop pending edits for the chat and wait for an edit in flight to end."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return
        chat.pending = None
        task = chat.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        chat.last = None

    def flood_waits(self, chat_id: int) -> int:
        """How many FloodWait postponements this chat has had (for diagnostics and tests)."""
        chat = self._chats.get(chat_id)
        return chat.flood_waits if chat else 0

    async def _pump(self, chat_id: int, chat: _Chat) -> None:
        while chat.pending is not None:
            delay = chat.next_at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # a newer text may have arrived while sleeping: take the latest
            peer, message_id, text = chat.pending
            chat.pending = None
            if chat.last == (message_id, text):
                continue
            try:
                await self._edit(peer, message_id, text)
            except errors.FloodWaitError as exc:
                chat.flood_waits += 1
                log.info("chat %s: edit flood-waited %s s; postponing it", chat_id, exc.seconds)
                chat.next_at = self._clock() + max(1, exc.seconds)
                if chat.pending is None:  # keep the text: it is shown after the wait
                    chat.pending = (peer, message_id, text)
                continue
            except errors.MessageNotModifiedError:
                pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # best effort: never let a status edit hurt the job
                log.warning("chat %s: could not edit status message: %s", chat_id, exc)
            else:
                chat.last = (message_id, text)
            chat.next_at = self._clock() + self.interval


STAGES = {
    "starting": N_("Starting…"),
    "downloading": N_("Downloading…"),
    "upscaling": N_("Upscaling…"),
    "uploading": N_("Sending…"),
}


def progress_text(
    tr: Translator,
    stage: str,
    done: int | None = None,
    total: int | None = None,
    *,
    item: tuple[int, int] | None = None,
) -> str:
    """One line for a status message: ``Upscaling… 40%``, ``Downloading…``, and for a file of
    an album ``Upscaling… 40% (file 2 of 3)``; ``item`` is (1-based index, count)."""
    text = tr.gettext(STAGES[stage])
    if done is not None and total:
        text += f" {min(100, int(100 * done / total))}%"
    if item is not None and item[1] > 1:
        text += " " + tr.gettext("(file {i} of {n})", i=item[0], n=item[1])
    return text


def frames_text(
    tr: Translator,
    done: int,
    total: int,
    eta: float | None,
    *,
    item: tuple[int, int] | None = None,
) -> str:
    """A video's status line: ``Upscaling… 40%: frame 120 of 300, about 2 min left``."""
    text = progress_text(tr, "upscaling", done, total, item=None)
    if total:
        text += tr.gettext(": frame {done} of {total}", done=done, total=total)
    if eta is not None:
        text += tr.gettext(", about {time} left", time=tr.duration(eta))
    if item is not None and item[1] > 1:
        text += " " + tr.gettext("(file {i} of {n})", i=item[0], n=item[1])
    return text
