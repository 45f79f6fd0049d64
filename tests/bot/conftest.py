"""Fixtures for the bot tests (helpers live in botkit.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("telethon")

sys.path.insert(0, str(Path(__file__).parent))

from botkit import make_config
from faketg import FakeTelegram

from tests.cluster_fixtures import coordinator, workers  # noqa: F401 (the bot as a client)
from upscaler_edge.bot.app import Core


@pytest.fixture(scope="session")
def real_core() -> Iterator[Core]:
    """The real core (supervised worker process on the CPU), shared by the whole session."""
    core = Core.load(make_config(Path("/nonexistent")))
    yield core
    core.close()


@pytest.fixture
def fake() -> FakeTelegram:
    """A fresh fake Telegram server."""
    return FakeTelegram()
