"""Wiring: open the queue, start the runner, keep a Telegram connection up until told to stop.

:func:`run_bot` is the whole bot. It recovers the queue (rows a crash left ``running`` go back
in line, or fail after ``max_attempts``), loads the allowlist (the config seeds it, the owner's
/allow and /deny persist in ``members.sqlite3``), starts the job runner, and then loops: build
a client (``catch_up=True``, so messages sent while the PC was off arrive now), register the
handlers, log in with the token, verify the session really is this bot, set the command menu
and descriptions in every language (once per run), serve until the connection is lost, and
reconnect with exponential backoff (1 s doubling to 60 s) when Telethon's own retries (5)
run out. When ``stop`` is set (SIGINT/SIGTERM in the CLI) it stops starting jobs,
lets the running one finish for ``config.stop_grace`` seconds or puts it back in line, and
disconnects cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..jobs import JobQueue
from .access import Access
from .config import BotConfig, ConfigError, create_private, ensure_private
from .context import BotContext
from .handlers import register
from .members import Members
from .menu import publish
from .prefs import Prefs
from .runner import JobRunner
from .stores import AsyncJobQueue, AsyncMembers, AsyncPrefs
from .telethon_api import TelegramClient, errors
from .upscaling import Core
from .waiting import until

__all__ = ["Core", "FatalBotError", "make_client", "run_bot"]

log = logging.getLogger(__name__)

ClientFactory = Callable[[BotConfig], TelegramClient]


class FatalBotError(Exception):
    """Reconnecting will not help (bad token, wrong session); ``str()`` is for the user."""


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
    on_ready: Callable[[JobRunner], None] | None = None,
) -> None:
    """Serve until ``stop`` is set. Raises :class:`FatalBotError` for unrecoverable setups."""
    own_core = core is None  # close only what we opened
    if core is None:
        try:
            core = await asyncio.to_thread(Core.load, config)
        except ConfigError as exc:  # the cluster is not set up or cannot be reached
            raise FatalBotError(str(exc)) from None
        if config.uses_cluster:
            log.info("jobs go to %s, %d at a time", core.device_name, core.slots)
    queue = AsyncJobQueue(
        await asyncio.to_thread(
            JobQueue, config.jobs_path, config.spool_dir, max_attempts=config.max_attempts
        )
    )
    prefs = AsyncPrefs(await asyncio.to_thread(Prefs, config.prefs_path))
    members = AsyncMembers(await asyncio.to_thread(Members, config.members_path))
    allowed = await members.seed(config.allowed_users)
    runner = JobRunner(config, queue, prefs, core)
    context = BotContext(
        config=config,
        queue=queue,
        prefs=prefs,
        members=members,
        access=Access(config.owner, allowed),
        catalog=core.catalog,
        resolve=core.resolve,
        runner=runner,
    )
    failed_on_start = await queue.recover()
    removed = await queue.clean_spool()
    if removed:
        log.info("removed %d leftover spool entr%s", removed, "y" if removed == 1 else "ies")
    if config.owner is None:
        log.warning(
            "allowed_users is empty: nobody can use the bot yet; send it /id and add your id to %s",
            config.config_file,
        )
    runner.start()
    if on_ready is not None:
        on_ready(runner)
    delay = backoff[0]
    published = False
    try:
        while not stop.is_set():
            client = client_factory(config)
            register(client, context)
            try:
                me = await _login(client, config)
                ensure_private(config.session_path)
                runner.attach(client)
                log.info(
                    "connected as @%s (id %s); device: %s",
                    getattr(me, "username", "?"),
                    me.id,
                    runner.device_name,
                )
                delay = backoff[0]
                if not published:
                    await publish(client, config.owner)
                    published = True
                if failed_on_start:
                    await runner.notify_failed(failed_on_start)
                    failed_on_start = []
                if not await until(client.disconnected, stop):
                    log.warning("lost the connection to Telegram")
            except FatalBotError:
                raise
            except (ConnectionError, OSError, asyncio.TimeoutError, errors.RPCError) as exc:
                log.warning("Telegram connection failed: %s: %s", type(exc).__name__, exc)
            finally:
                if stop.is_set():  # finish or requeue the running job while still online
                    await runner.shutdown(config.stop_grace)
                runner.detach()
                try:
                    await client.disconnect()
                except Exception as exc:  # already broken; nothing more to do
                    log.debug("disconnect: %s", exc)
            if stop.is_set():
                break
            log.info("reconnecting in %.0f s", delay)
            await until(asyncio.sleep(delay), stop)
            delay = min(delay * 2, backoff[1])
    finally:
        await runner.shutdown(config.stop_grace)
        queue.blocking.close()
        prefs.blocking.close()
        members.blocking.close()
        if own_core:
            core.close()
        log.info("bot stopped")
