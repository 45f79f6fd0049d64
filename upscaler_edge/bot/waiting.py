"""Stop-aware waiting: the one way the bot waits for something *or* a stop request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

__all__ = ["until"]


async def until(aw: Awaitable[Any], stop: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until ``aw`` completes, ``stop`` is set or ``timeout`` seconds pass, whichever
    comes first, then cancel ``aw`` if it is still pending. Returns ``stop.is_set()``.

    ``aw`` is waited for, not computed: its result or exception is dropped (a connection's
    ``disconnected`` future ends with the error that closed it). Pass a coroutine, or a future
    that is yours to cancel (Telethon's ``client.disconnected`` is a fresh shield each time).
    """
    main = asyncio.ensure_future(aw)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({main, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (main, stopped):
            if not fut.done():
                fut.cancel()
        if main.done() and not main.cancelled():
            main.exception()  # retrieved: dropped on purpose (see above)
    return stop.is_set()
