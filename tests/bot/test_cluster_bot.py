"""The bot as a client of the cluster: its jobs go to worker PCs over NATS, /status lists them.

The end-to-end test runs the real bot against the fake Telegram, a real ``nats-server`` on
loopback and one worker process (tests/cluster_fixtures.py); the bot has no local worker.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botkit import MODEL, OWNER, BotHarness, make_config, png_bytes, wait_for
from faketg import FakeTelegram
from PIL import Image

from tests.cluster_fixtures import WORKER_DEVICE
from upscaler_edge.bot.app import Core, FatalBotError, run_bot
from upscaler_edge.bot.commands import status_text
from upscaler_edge.bot.config import ConfigError, load_config
from upscaler_edge.bot.context import ClusterWorker, QueueStatus
from upscaler_edge.bot.i18n import translator
from upscaler_edge.jobs import DONE

pytestmark = pytest.mark.timeout(300)


def _gradient_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(width, height))).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_a_photo_is_upscaled_by_the_cluster_worker_and_status_lists_it(
    tmp_path: Path, fake: FakeTelegram, workers: Any
) -> None:
    from upscaler_edge.options import Options
    from upscaler_edge.pipeline import upscale_file

    workers.start("alpha")
    workers.wait_joined("alpha")
    address = workers.address
    config = make_config(
        tmp_path,
        cluster_url=address.url,
        cluster_token=address.token,
        cluster_tls_pin=address.tls_pin or "",
        cluster_slots=2,
    )
    core = Core.load(config)  # the cluster's client: no worker process on "this PC"
    assert core.workers is not None and core.slots == 2
    user = fake.user(OWNER)
    source = _gradient_jpeg(40, 30)

    async def main() -> Any:
        h = await BotHarness(fake, config, core).start()
        update = fake.photo(user, source, 40, 30)
        await h.send(update, user)
        job = await h.finished(update, timeout=180)
        deadline = time.monotonic() + 30  # the worker's next heartbeat counts the job
        while (await asyncio.to_thread(core.workers))[0].jobs_done < 1:  # type: ignore[misc]
            assert time.monotonic() < deadline, "the worker never reported its job"
            await asyncio.sleep(0.2)
        await h.send(fake.text(user, "/status"), user)
        await wait_for(
            lambda: any(t.startswith("Cluster:") for t in fake.texts_to(OWNER)), what="/status"
        )
        await h.close()
        return job

    try:
        job = asyncio.run(main())
    finally:
        core.close()
    assert job.state == DONE, job.error
    assert str(job.params["device"]).startswith("alpha: ")
    (reply,) = fake.documents_to(OWNER)
    assert " on alpha: " in reply.text
    got = Image.open(io.BytesIO(reply.file_bytes))
    assert got.size == (160, 120)
    # the same pixels as this PC makes from the same photo
    src = tmp_path / "same.jpg"
    src.write_bytes(source)
    local = upscale_file(src, tmp_path / "local.png", Options(model=MODEL, device=WORKER_DEVICE))
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(Image.open(local.dst)))
    assert "done" in workers.log("alpha")
    (status,) = [t for t in fake.texts_to(OWNER) if t.startswith("Cluster:")]
    assert status.splitlines()[0] == "Cluster: 1 worker"
    assert "• alpha: " in status and "1 job done" in status and "MP/s" in status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_cluster_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip("nats")
    config = make_config(
        tmp_path, cluster_url=f"nats://127.0.0.1:{_free_port()}", cluster_token="t" * 20
    )

    async def main() -> None:
        await run_bot(config, stop=asyncio.Event(), client_factory=lambda c: None)  # type: ignore[arg-type,return-value]

    with pytest.raises(FatalBotError, match=r"^cluster: cannot reach the coordinator at 127\."):
        asyncio.run(main())


def test_cluster_true_without_a_saved_address_says_how_to_set_one_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    config = make_config(tmp_path, cluster=True)
    with pytest.raises(FatalBotError, match=r"cluster: no cluster is set up on this PC"):
        asyncio.run(run_bot(config, stop=asyncio.Event()))


def test_cluster_settings_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    base = 'api_id = 1\napi_hash = "h"\nbot_token = "1:AA"\n'
    cfg.write_text(base + "cluster = true\ncluster_slots = 3\n")
    config = load_config(path=cfg, env={})
    assert config.uses_cluster and config.cluster_slots == 3 and not config.cluster_url
    cfg.write_text(base + 'cluster_url = "nats://pc:4222"\ncluster_token = "secret-token"\n')
    config = load_config(path=cfg, env={})
    assert config.uses_cluster and config.cluster_address().url == "nats://pc:4222"
    assert "secret-token" not in repr(config)
    assert not load_config(
        path=cfg.with_name("none.toml"),
        env={},
        overrides={"api_id": 1, "api_hash": "h", "bot_token": "1:AA"},
    ).uses_cluster
    for bad, why in (
        ('cluster_url = "nats://pc:4222"\n', "cluster_url needs cluster_token"),
        ('cluster = "maybe"\n', "cluster must be true or false"),
        ("cluster_slots = 0\n", "cluster_slots must be 1 or more"),
    ):
        cfg.write_text(base + bad)
        with pytest.raises(ConfigError, match=why):
            load_config(path=cfg, env={})
    cfg.write_text(base + 'cluster_url = "http://pc"\ncluster_token = "x"\n')
    with pytest.raises(ConfigError, match="cluster: not a NATS address"):
        load_config(path=cfg, env={}).cluster_address()


def _status(workers: tuple[ClusterWorker, ...] | None) -> QueueStatus:
    return QueueStatus("the cluster", 1, 2, False, (), cluster=True, workers=workers)


def test_status_lists_the_workers_in_both_languages() -> None:
    two = (
        ClusterWorker("alpha", "NVIDIA RTX 3060", 21, 1.234, busy=True, small_only=False),
        ClusterWorker("laptop", "CPU", 1, None, busy=False, small_only=True),
    )
    en = status_text(translator("en"), _status(two)).splitlines()
    assert en[:4] == [
        "Cluster: 2 workers",
        "• alpha: NVIDIA RTX 3060, 21 jobs done, 1.23 MP/s, working",
        "• laptop: CPU, 1 job done, small pictures only",
        "Queue: 1 waiting, 2 running",
    ]
    ru = status_text(translator("ru"), _status(two)).splitlines()
    assert ru[:3] == [
        "Кластер: 2 компьютера",
        "• alpha: NVIDIA RTX 3060, сделано 21 задание, 1,23 Мп/с, работает",
        "• laptop: CPU, сделано 1 задание, только небольшие картинки",
    ]
    assert status_text(translator("en"), _status(())).startswith(
        "Cluster: no worker has joined yet.\n"
    )
    assert status_text(translator("ru"), _status(None)).startswith(
        "Кластер: список компьютеров сейчас недоступен.\n"
    )
    local = QueueStatus("CPU", 0, 0, False, ())
    assert status_text(translator("en"), local).startswith("Device: CPU\n")


def test_jobs_in_flight_at_once_use_both_workers_and_a_video_goes_too(
    tmp_path: Path, fake: FakeTelegram, workers: Any
) -> None:
    from test_bot_video import FRAMES, H, W, decoded, mp4_bytes

    workers.start("alpha")
    workers.start("beta")
    workers.wait_joined("alpha", "beta")
    address = workers.address
    config = make_config(
        tmp_path,
        cluster_url=address.url,
        cluster_token=address.token,
        cluster_tls_pin=address.tls_pin or "",
        cluster_slots=4,
    )
    core = Core.load(config)
    user = fake.user(OWNER)
    most: list[int] = []  # jobs running at once, sampled

    async def main() -> list[Any]:
        h = await BotHarness(fake, config, core).start()
        updates = [fake.document(user, png_bytes(32 + 4 * i, 24), f"pic{i}.png") for i in range(4)]
        assert h.service is not None
        runner = h.service

        async def sample() -> None:
            while True:
                most.append(len(runner.running))
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        for update in updates:
            await h.send(update, user)
        video = fake.video(user, mp4_bytes(), "cat.mp4", duration=0.25, size=(W, H))
        video.message.message = "x2"
        await h.send(video, user)
        jobs = [await h.finished(u, timeout=180) for u in [*updates, video]]
        sampler.cancel()
        await h.close()
        return jobs

    try:
        jobs = asyncio.run(main())
    finally:
        core.close()
    assert [j.state for j in jobs] == [DONE] * 5, [j.error for j in jobs]
    by = {str(j.params["device"]).split(":")[0] for j in jobs[:4]}
    assert max(most) >= 2  # several jobs were out at once (cluster_slots) ...
    assert by == {"alpha", "beta"}, by  # ... so both workers had some
    segments = workers.log("alpha") + workers.log("beta")
    assert segments.count("done segment ") == 1  # the video's one segment, on a worker
    docs = fake.documents_to(OWNER)
    assert len(docs) == 5  # exactly one reply per request
    sizes = sorted(
        Image.open(io.BytesIO(d.file_bytes)).size for d in docs if d.file_name.endswith(".png")
    )
    assert sizes == sorted((4 * (32 + 4 * i), 96) for i in range(4))
    (clip,) = [d for d in docs if d.file_name == "cat_x2.mp4"]
    assert decoded(clip.file_bytes) == (FRAMES, (2 * W, 2 * H))


def test_the_wait_estimate_counts_the_workers_not_only_the_slots(tmp_path: Path) -> None:
    from upscaler_edge.bot.runner import JobRunner

    one = ClusterWorker("alpha", "CPU", 0, None, busy=False, small_only=False)
    answers: list[Any] = [[one], [one] * 6, OSError("away")]

    def workers() -> list[ClusterWorker]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no job runs here")

    core = Core(never, never, never, None, "the cluster", slots=4, workers=workers)  # type: ignore[arg-type]
    runner = JobRunner(make_config(tmp_path), None, None, core)  # type: ignore[arg-type]
    got = [asyncio.run(runner._side_by_side()) for _ in range(3)]
    assert got == [1, 4, 1]  # one worker; six but four slots; the coordinator away
