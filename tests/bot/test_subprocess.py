"""The bot as a real process: kill -9 mid-job and restart (one reply), a second bot on the same
session (exits at once), SIGTERM (clean exit 0), and the CLI's setup message."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botkit import MODEL, OWNER, png_bytes
from faketg import BOT_TOKEN, FakeTelegram, TcpFakeServer
from PIL import Image

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL/SIGTERM"),
]

FAKEBOT = Path(__file__).with_name("fakebot.py")


def wait(
    predicate: Any,
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    detail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def job_states(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT state, attempts FROM jobs ORDER BY id").fetchall()


def test_kill_9_mid_job_then_restart_replies_exactly_once(tmp_path: Path) -> None:
    fake = FakeTelegram()
    user = fake.user(OWNER)
    data = tmp_path / "data"
    marker = tmp_path / "holding"
    args = [
        sys.executable,
        str(FAKEBOT),
        "--config",
        str(tmp_path / "absent.toml"),
        "--data-dir",
        str(data),
        "--api-id",
        "12345",
        "--api-hash",
        "f" * 32,
        "--bot-token",
        BOT_TOKEN,
        "--allowed-users",
        str(OWNER),
        "--model",
        MODEL,
        "--device",
        "cpu",
    ]
    with TcpFakeServer(fake) as server:
        env = {**os.environ, "FAKETG_PORT": str(server.address[1]), "FAKEBOT_HOLD": str(marker)}

        def online() -> bool:
            return server.run(lambda: any(c.logged_in for c in fake.connections))

        log1 = tmp_path / "bot1.log"
        with log1.open("w") as out:
            first = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait(online, 60, "the first bot to log in", first, log1)
            update = server.run(lambda: fake.document(user, png_bytes(32, 24), "k.png"))
            server.run(fake.deliver(update, user))
            wait(marker.exists, 60, "the job to be mid-upscale", first, log1)

            # A second bot on the same session refuses at once instead of hanging.
            began = time.monotonic()
            second = subprocess.run(
                args, env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert second.returncode == 3, second.stderr
            assert "already running" in second.stderr and "Traceback" not in second.stderr
            assert time.monotonic() - began < 30

            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
        assert job_states(data / "jobs.sqlite3") == [("running", 1)]
        wait(lambda: not server.run(lambda: fake.connections), 10, "the dead bot's link to close")

        log2 = tmp_path / "bot2.log"
        with log2.open("w") as out:
            restarted = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait(
                lambda: server.run(lambda: len(fake.documents_to(OWNER))),
                60,
                "the result after the restart",
                restarted,
                log2,
            )
            wait(
                lambda: job_states(data / "jobs.sqlite3")[0][0] == "done",
                10,
                "job done",
                restarted,
                log2,
            )
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(30) == 0, log2.read_text()[-3000:]
        finally:
            if restarted.poll() is None:
                restarted.kill()
    assert job_states(data / "jobs.sqlite3") == [("done", 2)]
    (doc,) = fake.documents_to(OWNER)
    assert Image.open(io.BytesIO(doc.file_bytes)).size == (128, 96)
    # the status message was replaced by the preview and the result
    assert [m.kind for m in fake.messages_to(OWNER)] == ["photo", "document"]
    assert fake.messages_to(OWNER)[-1].id == doc.id
    assert not any((data / "spool").iterdir())
    assert BOT_TOKEN not in log1.read_text() + log2.read_text()
    assert "bot stopped" in log2.read_text()
    if os.name == "posix":
        assert (data / "bot.session").stat().st_mode & 0o777 == 0o600


def test_missing_credentials_message_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSCALER_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from upscaler_edge.bot.cli import main; sys.exit(main(sys.argv[1:]))",
            "--config",
            str(tmp_path / "nothing.toml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "@BotFather" in proc.stderr and "my.telegram.org" in proc.stderr
    assert str(tmp_path / "nothing.toml") in proc.stderr


def test_bot_without_telethon_says_how_to_install_exit_2(tmp_path: Path) -> None:
    """Credentials configured but the bot extra missing: one line, exit 2 (systemd's
    RestartPreventExitStatus), no traceback; --print-config-path still works."""
    config = tmp_path / "bot.toml"
    config.write_text(
        f'api_id = 12345\napi_hash = "{"f" * 32}"\nbot_token = "{BOT_TOKEN}"\n'
        f'allowed_users = [{OWNER}]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSCALER_")}
    blocked = (
        "import sys; sys.modules['telethon'] = None; "  # import telethon -> ModuleNotFoundError
        "from upscaler_edge.cli import main; sys.exit(main(sys.argv[1:]))"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", blocked, "--bot", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    proc = run("--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "upscaler-edge[bot]"' in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was started
    shown = run("--print-config-path")
    assert shown.returncode == 0 and shown.stdout.strip(), shown.stderr
