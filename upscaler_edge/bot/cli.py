"""``python -m upscaler_edge --bot [args]``: argv -> config -> :func:`run_bot` -> exit status.

Exit status (:class:`~upscaler_edge.errors.ExitStatus`): ``OK`` (0) after a clean stop (Ctrl-C,
SIGTERM); ``USAGE`` (2) when the setup is incomplete or wrong (missing credentials: the setup
message; Telethon not installed: one line; no traceback either way); 3 when another bot
process already uses the session; ``FAILED`` (1) for anything else. Those messages go to
stderr; everything else is logged, with the bot token redacted from every record.

Nothing here imports Telethon at module level, so ``--print-config-path`` and
``--save-config`` work before the ``bot`` extra is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TextIO

from ..errors import ExitStatus
from .config import (
    BotConfig,
    ConfigError,
    MissingCredentialsError,
    RedactingFilter,
    config_path,
    load_config,
    write_config,
)
from .lock import AlreadyRunningError, SessionLock

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


TELETHON_MISSING = (
    'upscaler-edge --bot: Telethon is not installed; run: pip install "upscaler-edge[bot]"'
)


def telethon_missing() -> bool:
    """True when the ``bot`` extra's Telethon cannot be imported (any other error propagates)."""
    try:
        from . import telethon_api  # noqa: F401  (the bot's one import of Telethon)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "telethon":
            raise
        return True
    return False


def build_parser() -> argparse.ArgumentParser:
    """Flags of bot mode (the CLI strips ``--bot`` before calling :func:`main`)."""
    p = argparse.ArgumentParser(
        prog="upscaler-edge --bot", description="Run the personal Telegram bot."
    )
    p.add_argument(
        "--print-config-path",
        action="store_true",
        help="print where the config file is looked for, and exit",
    )
    p.add_argument("--config", metavar="FILE", help="config file (default: --print-config-path)")
    p.add_argument("--api-id", type=int, help="from https://my.telegram.org")
    p.add_argument("--api-hash", help="from https://my.telegram.org")
    p.add_argument("--bot-token", help="from @BotFather (prefer the config file or env var)")
    p.add_argument("--allowed-users", metavar="ID,ID", help="user ids allowed to use the bot")
    p.add_argument("--data-dir", metavar="DIR", help="session, job queue and spool folder")
    p.add_argument("--model", help="default model")
    p.add_argument(
        "--device",
        help="auto, cpu, a GPU index, a list (0,1: one worker process per device, jobs run "
        "side by side) or all (each image's tiles spread over every GPU)",
    )
    p.add_argument("--max-file-mb", type=int, help="largest file accepted, in MiB")
    p.add_argument(
        "--save-config",
        action="store_true",
        help="write the given settings to the config file (mode 0600) and exit",
    )
    p.add_argument("--log-file", metavar="FILE", help="also log to this file (e.g. under pythonw)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _setup_logging(
    verbose: bool, secrets: list[str], log_file: str | None = None
) -> Callable[[], None]:
    """Log to stderr (and a file) with secrets redacted; returns a function undoing it all, so
    an in-process caller (tests, an embedding app) is left with its logging as it was."""
    root = logging.getLogger()
    added: list[logging.Handler] = []
    handler: logging.Handler
    old_level = root.level
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not root.handlers and sys.stderr is not None:  # pythonw has no stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        root.addHandler(handler)
        added.append(handler)
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
        added.append(file_handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("telethon").setLevel(logging.INFO if verbose else logging.WARNING)
    redact = RedactingFilter(secrets)
    filtered = list(root.handlers)
    for handler in filtered:
        handler.addFilter(redact)

    def undo() -> None:
        for handler in filtered:
            handler.removeFilter(redact)
        for handler in added:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(old_level)

    return undo


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "api_id": args.api_id,
        "api_hash": args.api_hash,
        "bot_token": args.bot_token,
        "allowed_users": args.allowed_users,
        "data_dir": args.data_dir,
        "model": args.model,
        "device": args.device,
        "max_file_mb": args.max_file_mb,
    }


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; returns a function that restores the old handlers."""

    def request_stop(signame: str) -> None:
        if stop.is_set():
            return
        log.info("%s received: finishing up (Ctrl-C again does not force it)", signame)
        stop.set()

    def from_any_thread(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(request_stop, signal.Signals(signum).name)

    loop_handlers: list[signal.Signals] = []
    old_handlers: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request_stop, sig.name)
            loop_handlers.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            old_handlers.append((sig, signal.signal(sig, from_any_thread)))

    def restore() -> None:
        for sig in loop_handlers:
            loop.remove_signal_handler(sig)
        for sig, old in old_handlers:
            signal.signal(sig, old)

    return restore


def main(
    argv: Sequence[str] | None = None,
    *,
    stderr: TextIO | None = None,
    runner: Callable[..., Any] | None = None,
) -> int:
    """Run bot mode; returns the exit status. ``runner`` replaces :func:`run_bot` in tests."""
    err = stderr or sys.stderr
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    cfg_file = config_path() if args.config is None else os.path.abspath(args.config)
    if args.print_config_path:
        print(cfg_file, file=sys.stdout)
        return ExitStatus.OK
    if args.save_config:
        from pathlib import Path

        values = {k: v for k, v in _overrides(args).items() if v is not None}
        if "allowed_users" in values:
            from .config import parse_user_ids

            try:
                values["allowed_users"] = list(parse_user_ids(values["allowed_users"]))
            except ConfigError as exc:
                print(f"upscaler-edge --bot: {exc}", file=err)
                return ExitStatus.USAGE
        write_config(Path(cfg_file), values)
        print(f"settings written to {cfg_file} (mode 0600)", file=err)
        return ExitStatus.OK
    if telethon_missing():
        print(TELETHON_MISSING, file=err)
        return ExitStatus.USAGE
    try:
        config = load_config(path=cfg_file, overrides=_overrides(args))
    except MissingCredentialsError as exc:
        print(str(exc), file=err)
        return ExitStatus.USAGE
    except ConfigError as exc:
        print(f"upscaler-edge --bot: {exc}", file=err)
        return ExitStatus.USAGE
    undo_logging = _setup_logging(
        args.verbose, [config.bot_token, config.api_hash, config.cluster_token], args.log_file
    )
    try:
        lock = SessionLock(config.lock_path)
        try:
            lock.acquire()
        except AlreadyRunningError as exc:
            print(f"upscaler-edge --bot: {exc}", file=err)
            return ExitStatus.ALREADY_RUNNING
        try:
            return asyncio.run(_serve(config, runner))
        except KeyboardInterrupt:  # a signal before the handlers were installed
            return ExitStatus.OK
        finally:
            lock.release()
    finally:
        undo_logging()


async def _serve(config: BotConfig, runner: Callable[..., Any] | None) -> int:
    from .app import FatalBotError, run_bot

    stop = asyncio.Event()
    restore = _install_signals(asyncio.get_running_loop(), stop)
    try:
        await (runner or run_bot)(config, stop=stop)
    except FatalBotError as exc:
        log.error("%s", exc)
        print(f"upscaler-edge --bot: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except Exception:
        log.exception("the bot stopped on an unexpected error")
        return ExitStatus.FAILED
    finally:
        restore()
    return ExitStatus.OK
