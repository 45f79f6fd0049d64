"""Config sources and precedence, secrets, file modes, the session lock, the CLI surface."""

from __future__ import annotations

import io
import logging
import os
import stat
from pathlib import Path

import pytest
from faketg import BOT_TOKEN

from upscaler_edge.bot import cli
from upscaler_edge.bot.config import (
    ConfigError,
    MissingCredentialsError,
    RedactingFilter,
    load_config,
    parse_user_ids,
    write_config,
)
from upscaler_edge.bot.lock import AlreadyRunningError, SessionLock

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        'api_id = 1\napi_hash = "file"\nbot_token = "1:file"\n'
        "allowed_users = [5, 6]\nmax_file_mb = 7\n"
    )
    cfg = load_config(path=path, env={})
    assert (cfg.api_id, cfg.api_hash, cfg.allowed_users, cfg.max_file_mb) == (1, "file", (5, 6), 7)
    env = {
        "UPSCALER_API_ID": "2",
        "UPSCALER_API_HASH": "env",
        "UPSCALER_BOT_TOKEN": "2:env",
        "UPSCALER_ALLOWED_USERS": "9, 8",
    }
    cfg = load_config(path=path, env=env)
    assert (cfg.api_id, cfg.api_hash, cfg.bot_token) == (2, "env", "2:env")
    assert cfg.allowed_users == (9, 8)
    assert cfg.owner == 9 and cfg.bot_id == 2
    cfg = load_config(
        path=path, env=env, overrides={"api_id": 3, "allowed_users": "4", "api_hash": None}
    )
    assert (cfg.api_id, cfg.api_hash, cfg.allowed_users) == (3, "env", (4,))


def test_missing_credentials_names_them_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    with pytest.raises(MissingCredentialsError) as info:
        load_config(path=path, env={"UPSCALER_API_ID": "1"})
    text = str(info.value)
    assert "api_hash, bot_token" in text and str(path) in text
    assert "UPSCALER_BOT_TOKEN" in text and "@BotFather" in text


@pytest.mark.parametrize(
    "bad",
    [{"api_id": "x"}, {"allowed_users": "me"}, {"bot_token": "nocolon"}, {"oversize": "shrug"}],
)
def test_malformed_values_are_config_errors(tmp_path: Path, bad: dict[str, str]) -> None:
    base = {"api_id": 1, "api_hash": "h", "bot_token": "1:t", **bad}
    with pytest.raises(ConfigError):
        load_config(path=tmp_path / "none.toml", env={}, overrides=base)


def test_parse_user_ids() -> None:
    assert parse_user_ids("1, 2 2 3") == (1, 2, 3)
    assert parse_user_ids([5]) == (5,) and parse_user_ids(None) == ()
    with pytest.raises(ConfigError):
        parse_user_ids("-4")


def test_token_not_in_repr(tmp_path: Path) -> None:
    cfg = load_config(
        path=tmp_path / "x.toml",
        env={},
        overrides={"api_id": 1, "api_hash": "secrethash", "bot_token": BOT_TOKEN},
    )
    assert BOT_TOKEN not in repr(cfg) and "secrethash" not in repr(cfg)


def test_redacting_filter_hides_token_in_messages_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter([BOT_TOKEN]))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s in args", BOT_TOKEN)
        logger.warning(f"token {BOT_TOKEN} in message")
        try:
            raise ValueError(BOT_TOKEN)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert BOT_TOKEN not in out and out.count("[redacted]") == 3


@posix_only
def test_written_config_is_0600_and_loose_one_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bot.toml"
    write_config(path, {"api_id": 1, "api_hash": "h", "bot_token": BOT_TOKEN, "allowed_users": [7]})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_config(path=path, env={})
    assert cfg.bot_token == BOT_TOKEN and cfg.allowed_users == (7,)
    path.chmod(0o644)
    load_config(path=path, env={})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_session_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    lock = SessionLock(tmp_path / "bot.lock")
    lock.acquire()
    try:
        with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
            SessionLock(tmp_path / "bot.lock").acquire()
    finally:
        lock.release()
    with SessionLock(tmp_path / "bot.lock"):
        pass


def test_cli_print_config_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--print-config-path"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("bot.toml") and "upscaler-edge" in out


def test_cli_missing_credentials_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UPSCALER_API_ID", "UPSCALER_API_HASH", "UPSCALER_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    err = io.StringIO()
    assert cli.main(["--config", str(tmp_path / "none.toml")], stderr=err) == 2
    assert "my.telegram.org" in err.getvalue()


@posix_only
def test_cli_save_config_then_run_uses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "UPSCALER_API_ID",
        "UPSCALER_API_HASH",
        "UPSCALER_BOT_TOKEN",
        "UPSCALER_ALLOWED_USERS",
    ):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "bot.toml"
    assert (
        cli.main(
            [
                "--config",
                str(path),
                "--save-config",
                "--api-id",
                "5",
                "--api-hash",
                "h",
                "--bot-token",
                BOT_TOKEN,
                "--allowed-users",
                "1,2",
                "--data-dir",
                str(tmp_path / "d"),
            ],
            stderr=io.StringIO(),
        )
        == 0
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seen = {}

    async def runner(config, *, stop):  # type: ignore[no-untyped-def]
        seen["config"] = config

    assert cli.main(["--config", str(path)], runner=runner) == 0
    cfg = seen["config"]
    assert cfg.api_id == 5 and cfg.allowed_users == (1, 2) and cfg.data_dir == tmp_path / "d"
    # a second process on the same data dir is refused while the lock is held
    with SessionLock(cfg.lock_path):
        err = io.StringIO()
        assert cli.main(["--config", str(path)], stderr=err, runner=runner) == 3
        assert "already running" in err.getvalue()


def test_short_values_are_not_redacted_and_long_ones_are():
    import logging as _logging

    from upscaler_edge.bot.config import RedactingFilter

    f = RedactingFilter(["h", "123456789:AAHsecretsecretsecretsecret"])
    token = "123456789:AAHsecretsecretsecretsecret"
    rec = _logging.LogRecord("x", _logging.INFO, __file__, 1, "image has %s", (token,), None)
    assert f.filter(rec)
    assert rec.getMessage() == "image has [redacted]"


def test_limits_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        'api_id = 1\napi_hash = "h"\nbot_token = "1:t"\n'
        "daily_limit = 5\nmax_megapixels = 12.5\nmax_video_seconds = 90\n"
    )
    cfg = load_config(path=path, env={})
    assert (cfg.daily_limit, cfg.max_megapixels, cfg.max_video_seconds) == (5, 12.5, 90)
    assert cfg.max_pixels == 12_500_000
    assert load_config(path=path, env={"UPSCALER_DAILY_LIMIT": "0"}).daily_limit == 0
    path.write_text('api_id = 1\napi_hash = "h"\nbot_token = "1:t"\nmax_pixels = 30000000\n')
    assert load_config(path=path, env={}).max_megapixels == 30.0  # the older key still counts
    with pytest.raises(ConfigError, match="daily_limit"):
        load_config(path=path, env={"UPSCALER_DAILY_LIMIT": "-1"})
