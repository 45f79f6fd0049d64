"""Helpers for the bot tests: tiny images, configs, a harness running the real bot.

The harness runs the real ``run_bot`` (connection loop, handlers, runner, queue) with
production-built ``TelegramClient``s attached to an in-process :class:`FakeTelegram`.
(A module of its own, not conftest.py, so test files can import it unambiguously.)
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from faketg import BOT_TOKEN, FakeTelegram, attach

from upscaler_edge.bot.app import Core, make_client, run_bot
from upscaler_edge.bot.config import BotConfig
from upscaler_edge.bot.runner import JobRunner

OWNER = 111
FRIEND = 222
STRANGER = 999
MODEL = "realesr-animevideov3-x4"


def png_bytes(
    width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 40, 30)
) -> bytes:
    """A small real PNG with some structure (a gradient) so the model has work to do."""
    from PIL import Image

    img = Image.new("RGB", (width, height), color)
    px = img.load()
    for x in range(width):
        for y in range(height):
            px[x, y] = ((x * 8) % 256, (y * 8) % 256, color[2])
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(width: int = 32, height: int = 24) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_config(tmp: Path, **changes: Any) -> BotConfig:
    """A test configuration: owner 111 and friend 222 allowed, CPU, fast model."""
    base = BotConfig(
        api_id=12345,
        api_hash="0123456789abcdef0123456789abcdef",
        bot_token=BOT_TOKEN,
        allowed_users=(OWNER, FRIEND),
        data_dir=tmp / "data",
        model=MODEL,
        device="cpu",
        max_file_mb=5,
        progress_interval=0.2,
        stop_grace=5.0,
        job_timeout=60.0,
    )
    return replace(base, **changes)


def stub_core(core: Core, calls: list[Path] | None = None) -> Core:
    """``core`` with a Pillow resize instead of the model (fast; for tests about the bot, not
    the picture). ``calls`` collects each finished upscale's input path."""
    from PIL import Image

    from upscaler_edge.pipeline import UpscaleResult

    def upscale(src: Path, dst: Path, options: Any, *, progress: Any, **kw: Any) -> Any:
        scale = options.scale or core.resolve(options.model, None).scale
        with Image.open(src) as img:
            size = img.size
            out = img.convert("RGB").resize((size[0] * scale, size[1] * scale))
        progress(1, 1)
        out.save(dst, "JPEG" if dst.suffix == ".jpg" else "PNG")
        if calls is not None:
            calls.append(src)
        return UpscaleResult(
            src=src,
            dst=dst,
            in_size=size,
            out_size=out.size,
            model=options.model,
            scale=scale,
            device="stub",
            seconds=0.01,
        )

    return replace(core, upscale=upscale, close=lambda: None)


def slowed(core: Core, seconds: float) -> Core:
    """The same core, but each upscale takes ``seconds`` longer (progress edits get a chance)."""
    base = core.upscale

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        time.sleep(seconds)
        return base(src, dst, options, **kw)

    return replace(core, upscale=upscale, close=lambda: None)


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``predicate`` until truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


class BotHarness:
    """The real bot against a fake Telegram, inside the test's event loop."""

    def __init__(self, fake: FakeTelegram, config: BotConfig, core: Core) -> None:
        self.fake = fake
        self.config = config
        self.core = core
        self.stop = asyncio.Event()
        self.service: JobRunner | None = None  # what run_bot hands to on_ready
        self.clients: list[Any] = []
        self.task: asyncio.Task[None] | None = None

    def _factory(self, config: BotConfig) -> Any:
        client = attach(make_client(config), self.fake)
        self.clients.append(client)
        return client

    def _ready(self, runner: JobRunner) -> None:
        self.service = runner

    async def start(self) -> BotHarness:
        self.task = asyncio.get_running_loop().create_task(
            run_bot(
                self.config,
                stop=self.stop,
                client_factory=self._factory,
                core=self.core,
                backoff=(0.05, 0.2),
                on_ready=self._ready,
            )
        )
        await self.connected()
        return self

    async def connected(self) -> None:
        await wait_for(
            lambda: (
                self.service is not None
                and self.service.connected
                and any(c.logged_in for c in self.fake.connections)
            ),
            what="bot online",
        )

    async def send(self, update: Any, user: Any) -> None:
        await self.fake.deliver(update, user)

    @property
    def queue(self) -> Any:
        assert self.service is not None
        return self.service.queue

    def job_for(self, update: Any) -> Any:
        return self.queue.find(update.message.peer_id.user_id, update.message.id)

    async def finished(self, update: Any, timeout: float = 30.0) -> Any:
        """Wait until the job for ``update`` is final and the runner is idle."""
        await wait_for(
            lambda: (j := self.job_for(update)) is not None and j.final,
            timeout,
            what=f"job for message {update.message.id} to end",
        )
        await wait_for(lambda: self.service.current is None, timeout, what="runner idle")
        return self.job_for(update)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
