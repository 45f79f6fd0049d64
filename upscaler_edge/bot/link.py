"""The job runner's way to Telegram: one client at a time, calls that outlast drops.

The connection loop (``app.py``) attaches a connected, authorised client and detaches it when
the connection drops. :meth:`TelegramLink.call` waits for a client, and retries after a
``ConnectionError`` (1 s doubling to 30 s) or a FloodWait that Telethon did not sleep itself,
so neither fails a job; only an immediate stop ends the wait, with :class:`Stopping`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .telegram import peer_from_string
from .telethon_api import TelegramClient, errors
from .waiting import until

__all__ = ["Stopping", "TelegramLink"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Stopping(Exception):
    """The bot must stop now: the job in hand goes back in line."""


class TelegramLink:
    """The attached client, if any; ``stop_now`` aborts every wait with :class:`Stopping`."""

    def __init__(self, stop_now: asyncio.Event) -> None:
        self._client: TelegramClient | None = None
        self._connected = asyncio.Event()
        self._stop_now = stop_now

    @property
    def connected(self) -> bool:
        """True while a client is attached."""
        return self._connected.is_set()

    def attach(self, client: TelegramClient) -> None:
        """A connected, authorised client: calls may go ahead."""
        self._client = client
        self._connected.set()

    def detach(self) -> None:
        """The connection is gone: calls wait until :meth:`attach`."""
        self._connected.clear()

    async def wait_connected(self) -> None:
        """Return once a client is attached."""
        await self._connected.wait()

    async def call(self, what: str, op: Callable[[TelegramClient], Awaitable[T]]) -> T:
        """``await op(client)``, waiting out disconnections and FloodWaits; ``what`` names it
        in the log. Raises :class:`Stopping` when an immediate stop is asked meanwhile."""
        delay = 1.0
        while True:
            if self._stop_now.is_set():
                raise Stopping()
            client = self._client
            if not self._connected.is_set() or client is None:
                await self._pause(self._connected.wait())
                continue
            try:
                return await op(client)
            except errors.FloodWaitError as exc:
                log.warning(
                    "%s: Telegram asks to wait %s s; trying again after that", what, exc.seconds
                )
                await self._pause(asyncio.sleep(exc.seconds))
            except ConnectionError as exc:
                log.warning("%s failed (%s); retrying in %.0f s", what, exc, delay)
                await self._pause(asyncio.sleep(delay))
                delay = min(delay * 2, 30.0)

    async def _pause(self, aw: Awaitable[Any]) -> None:
        if await until(aw, self._stop_now):
            raise Stopping()

    async def edit(self, peer: str, message_id: int, text: str) -> None:
        """Edit a status message once, no retries (for :class:`~.progress.StatusEditor`)."""
        client = self._client
        if not self._connected.is_set() or client is None:
            raise ConnectionError("not connected")
        await client.edit_message(peer_from_string(peer), message_id, text)
