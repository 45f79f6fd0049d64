"""Several devices in the bot: the device list in the config, one worker per device, jobs
side by side."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botkit import OWNER, BotHarness, make_config, png_bytes, stub_core
from faketg import FakeTelegram

from upscaler_edge.bot.app import Core
from upscaler_edge.bot.config import ConfigError
from upscaler_edge.bot.upscaling import WorkerPool
from upscaler_edge.jobs import DONE
from upscaler_edge.options import Options

pytestmark = pytest.mark.timeout(120)


def test_the_config_takes_a_device_list(tmp_path: Path) -> None:
    assert make_config(tmp_path, device="0,1").devices == ("0", "1")
    assert make_config(tmp_path, device="0,cpu").devices == ("0", "cpu")
    assert make_config(tmp_path, device="all").devices == ("all",)
    assert make_config(tmp_path).devices == ("cpu",)
    for bad in ("0,0", "gpu", "auto,1"):
        with pytest.raises(ConfigError, match="device"):
            make_config(tmp_path, device=bad)


class FakeWorker:
    """Records the device of each job; a job waits until ``release`` is set."""

    def __init__(self, log: list[str], entered: threading.Semaphore) -> None:
        self.log, self.entered = log, entered
        self.release = threading.Event()
        self.closed = False

    def run(self, src: Path, dst: Path, options: Options, **kw: Any) -> str:
        self.log.append(options.device)
        self.entered.release()
        assert self.release.wait(10)
        return options.device

    def close(self) -> None:
        self.closed = True


def test_the_pool_runs_each_call_on_a_free_worker_with_its_device() -> None:
    seen: list[str] = []
    entered = threading.Semaphore(0)
    workers: list[FakeWorker] = []

    def make() -> Any:
        workers.append(FakeWorker(seen, entered))
        return workers[-1]

    pool = WorkerPool(("0", "1"), make)
    assert pool.slots == 2
    opts = Options(model="realesr-animevideov3", device="0,1")
    results: list[str] = []

    def call() -> None:
        results.append(
            pool.run(
                Path("a"), Path("b"), opts, progress=print, cancel=threading.Event(), timeout=1
            )
        )

    threads = [threading.Thread(target=call) for _ in range(3)]
    for th in threads:
        th.start()
    assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
    assert sorted(seen) == ["0", "1"]  # both busy at once; the third call waits
    assert not entered.acquire(timeout=0.3)
    for w in workers:
        w.release.set()
    for th in threads:
        th.join(10)
    assert len(seen) == 3 and sorted(results) == sorted(seen)
    pool.close()
    assert all(w.closed for w in workers)


@pytest.mark.parametrize("slots", [1, 2])
def test_the_runner_runs_one_job_per_worker_at_once(
    tmp_path: Path, fake: FakeTelegram, real_core: Core, slots: int
) -> None:
    stub = stub_core(real_core)
    base = stub.upscale
    lock = threading.Lock()
    now = [0]
    most = [0]

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.4)
        try:
            return base(src, dst, options, **kw)
        finally:
            with lock:
                now[0] -= 1

    core = replace(stub, upscale=upscale, slots=slots)
    owner = fake.user(OWNER)

    async def main() -> None:
        h = await BotHarness(fake, make_config(tmp_path), core).start()
        assert h.service is not None
        h.service.detach()  # hold the runner while the files arrive
        updates = [fake.document(owner, png_bytes(), f"o{i}.png") for i in range(4)]
        for up in updates:
            await h.send(up, owner)
        h.service.attach(h.clients[-1])
        for up in updates:
            assert (await h.finished(up)).state == DONE
        await h.close()

    asyncio.run(main())
    assert most[0] == slots
    assert len(fake.documents_to(OWNER)) == 4
