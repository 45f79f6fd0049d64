"""Wiring: open the queue, start the runner, keep a Telegram connection up until told to stop.

:func:`run_bot` is the whole bot. It recovers the queue (rows a crash left ``running`` go back
in line, or fail after ``max_attempts``), starts the job runner, and then loops: build a client
(``catch_up=True``, so messages sent while the PC was off arrive now), register the handlers,
log in with the token, verify the session really is this bot, serve until the connection is
lost, and reconnect with exponential backoff (1 s doubling to 60 s) when Telethon's own
retries (5) run out. When ``stop`` is set (SIGINT/SIGTERM in the CLI) it stops starting jobs,
lets the running one finish for ``config.stop_grace`` seconds or puts it back in line, and
disconnects cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telethon import TelegramClient, errors

from ..jobs import JobQueue
from .captions import Catalog
from .config import BotConfig, create_private, ensure_private
from .handlers import register
from .prefs import Prefs
from .service import BotService, Upscale

__all__ = ["Core", "FatalBotError", "make_client", "run_bot"]

log = logging.getLogger(__name__)

ClientFactory = Callable[[BotConfig], TelegramClient]


class FatalBotError(Exception):
    """Reconnecting will not help (bad token, wrong session); ``str()`` is for the user."""


@dataclass
class Core:
    """The core library functions the bot uses (swappable in tests)."""

    upscale: Upscale
    probe: Callable[..., tuple[str, int, int]]
    resolve: Callable[[str, int | None], Any]
    catalog: Catalog
    device_name: str
    close: Callable[[], None] = lambda: None

    @classmethod
    def load(cls, config: BotConfig) -> Core:
        """The real core: a supervised worker process, header probe, model registry."""
        from ..imageio import probe
        from ..models import default_registry
        from ..worker import Worker

        worker = Worker(timeout=config.job_timeout)
        registry = default_registry()
        return cls(
            upscale=worker.run,
            probe=probe,
            resolve=lambda name, scale: registry.resolve(name, scale),
            catalog=Catalog.from_specs(registry.specs(), registry.names()),
            # Naming the GPU here would load ncnn/Vulkan into the bot process, which only the
            # worker child may do; the runner learns the real name from the first result.
            device_name="CPU" if config.device == "cpu" else f"device '{config.device}'",
            close=worker.close,
        )


def make_client(config: BotConfig) -> TelegramClient:
    """The production client: the bot's own session file (0600), catch-up on."""
    create_private(config.session_path)
    return TelegramClient(
        str(config.session_path),
        config.api_id,
        config.api_hash,
        catch_up=True,
        connection_retries=5,
        retry_delay=2,
        auto_reconnect=True,
        request_retries=5,
        flood_sleep_threshold=30,
    )


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` completes (its exception is swallowed), cancel the rest."""
    futs = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(futs, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in futs:
            if not fut.done():
                fut.cancel()
        for fut in futs:
            if fut.done() and not fut.cancelled():
                fut.exception()  # mark retrieved


async def _login(client: TelegramClient, config: BotConfig) -> Any:
    try:
        await client.start(bot_token=config.bot_token)
        me = await client.get_me()
    except (errors.AccessTokenInvalidError, errors.AccessTokenExpiredError) as exc:
        raise FatalBotError(
            f"Telegram refused the bot token; copy it again from @BotFather ({type(exc).__name__})"
        ) from None
    except errors.ApiIdInvalidError:
        raise FatalBotError(
            "Telegram refused api_id/api_hash; check them at https://my.telegram.org"
        ) from None
    if me is None or not getattr(me, "bot", False) or me.id != config.bot_id:
        raise FatalBotError(
            f"the session file {config.session_path} belongs to another account, not this bot; "
            "bot mode needs a session of its own: move that file away and start again"
        )
    return me


async def run_bot(
    config: BotConfig,
    *,
    stop: asyncio.Event,
    client_factory: ClientFactory = make_client,
    core: Core | None = None,
    backoff: tuple[float, float] = (1.0, 60.0),
    on_ready: Callable[[BotService], None] | None = None,
) -> None:
    """Serve until ``stop`` is set. Raises :class:`FatalBotError` for unrecoverable setups."""
    own_core = core is None  # close only what we opened
    core = core or Core.load(config)
    queue = JobQueue(config.jobs_path, config.spool_dir, max_attempts=config.max_attempts)
    prefs = Prefs(config.prefs_path)
    service = BotService(
        config,
        queue,
        prefs,
        upscale=core.upscale,
        catalog=core.catalog,
        device_name=core.device_name,
        probe=core.probe,
        resolve=core.resolve,
    )
    failed_on_start = queue.recover()
    removed = queue.clean_spool()
    if removed:
        log.info("removed %d leftover spool entr%s", removed, "y" if removed == 1 else "ies")
    if not config.allowed_users:
        log.warning(
            "allowed_users is empty: nobody can use the bot yet; send it /id and add your id to %s",
            config.config_file,
        )
    service.start()
    if on_ready is not None:
        on_ready(service)
    delay = backoff[0]
    try:
        while not stop.is_set():
            client = client_factory(config)
            register(client, service)
            try:
                me = await _login(client, config)
                ensure_private(config.session_path)
                service.attach(client)
                log.info(
                    "connected as @%s (id %s); device: %s",
                    getattr(me, "username", "?"),
                    me.id,
                    service.device_name,
                )
                delay = backoff[0]
                if failed_on_start:
                    await service.notify_failed(failed_on_start)
                    failed_on_start = []
                await _first(client.disconnected, stop.wait())
                if not stop.is_set():
                    log.warning("lost the connection to Telegram")
            except FatalBotError:
                raise
            except (ConnectionError, OSError, asyncio.TimeoutError, errors.RPCError) as exc:
                log.warning("Telegram connection failed: %s: %s", type(exc).__name__, exc)
            finally:
                if stop.is_set():  # finish or requeue the running job while still online
                    await service.shutdown(config.stop_grace)
                service.detach()
                try:
                    await client.disconnect()
                except Exception as exc:  # already broken; nothing more to do
                    log.debug("disconnect: %s", exc)
            if stop.is_set():
                break
            log.info("reconnecting in %.0f s", delay)
            await _first(asyncio.sleep(delay), stop.wait())
            delay = min(delay * 2, backoff[1])
    finally:
        await service.shutdown(config.stop_grace)
        queue.close()
        prefs.close()
        if own_core:
            core.close()
        log.info("bot stopped")
