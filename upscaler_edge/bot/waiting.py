"""Stop-aware waiting: the one way the bot waits for something *or* a stop request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

__all__ = ["until"]


async def until(aw: Awaitable[Any], stop: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until ``aw`` completes, ``stop`` is set or ``timeout`` seconds pass, whichever
    comes first. Returns ``stop.is_set()``.

    ``aw`` is waited for, not computed: its result or exception is dropped (a connection's
    ``disconnected`` future ends with the error that closed it). A coroutine left unfinished
    is cancelled; a future passed in belongs to its owner and is left alone.
    """
    main = asyncio.ensure_future(aw)
    ours = main is not aw
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({main, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if ours and not main.done():
            main.cancel()
        if main.done() and not main.cancelled():
            main.exception()  # retrieved: dropped on purpose (see above)
    return stop.is_set()
