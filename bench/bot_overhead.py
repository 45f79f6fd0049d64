"""Measure the Telegram bot's cost outside inference, against the in-process fake Telegram.

1. Overhead per job: for each of N jobs sent one after another, the time from the update
   reaching the bot to the result's SendMediaRequest arriving at the fake, minus the time spent
   inside the upscale call (the supervised worker, real model, tiny image). What is left is the
   bot: handlers, queue writes, download through GetFileRequest parts, header probe, upload
   through SaveFilePartRequest parts, replies and edits, and (unless ``--no-preview``) the
   before/after preview made with Pillow and sent before the result.
2. Queue throughput: 200 tiny jobs from 4 users, (a) through ``JobQueue`` alone (add, claim,
   finish), and (b) through the whole bot with an upscale that just copies the file, so the
   number is the bot's own ceiling.

Run: ``python bench/bot_overhead.py [--jobs 30] [--throughput 200] [--no-preview]`` (needs the
``bot`` extra).
Numbers are logged (INFO) and printed as one summary line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "bot"))

log = logging.getLogger("bench.bot_overhead")


async def _overhead(tmp: Path, jobs: int, preview: bool = True) -> dict[str, float]:
    from botkit import MODEL, OWNER, BotHarness, make_config, png_bytes, wait_for
    from faketg import FakeTelegram

    from upscaler_edge.bot.app import Core

    fake = FakeTelegram()
    user = fake.user(OWNER)
    config = make_config(tmp, progress_interval=2.0, model=MODEL)
    core = Core.load(config)
    inside: list[float] = []
    base = core.upscale

    def timed(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        began = time.perf_counter()
        try:
            return base(src, dst, options, **kw)
        finally:
            inside.append(time.perf_counter() - began)

    core.upscale = timed
    h = await BotHarness(fake, config, core).start()
    await h.send(fake.text(user, "/preview " + ("on" if preview else "off")), user)
    warm = fake.document(user, png_bytes(64, 48), "warm.png")  # spawns the worker child
    await h.send(warm, user)
    await h.finished(warm, timeout=120)
    inside.clear()
    totals: list[float] = []
    for i in range(jobs):
        update = fake.document(user, png_bytes(64, 48), f"img{i}.png")
        before = len(fake.documents_to(OWNER))
        began = time.perf_counter()
        await h.send(update, user)
        await wait_for(lambda n=before: len(fake.documents_to(OWNER)) > n, 60, "a result")
        totals.append(time.perf_counter() - began)
        await h.finished(update)
    await h.close()
    core.close()
    overhead = [t - u for t, u in zip(totals, inside, strict=True)]
    return {
        "jobs": jobs,
        "total_median_ms": 1000 * statistics.median(totals),
        "upscale_median_ms": 1000 * statistics.median(inside),
        "overhead_median_ms": 1000 * statistics.median(overhead),
        "overhead_p90_ms": 1000 * sorted(overhead)[int(0.9 * (len(overhead) - 1))],
    }


def _queue_only(tmp: Path, n: int) -> float:
    from upscaler_edge.jobs import DONE, JobQueue

    with JobQueue(tmp / "q.sqlite3", tmp / "spool") as queue:
        began = time.perf_counter()
        for i in range(n):
            queue.add(1000 + i % 4, i, 1000 + i % 4, params={"model": "m"})
        while (job := queue.claim()) is not None:
            queue.finish(job.id, DONE, reply_message_id=job.id)
        return n / (time.perf_counter() - began)


async def _through_bot(tmp: Path, n: int, preview: bool = True) -> float:
    from botkit import BotHarness, make_config, png_bytes, wait_for
    from faketg import FakeTelegram

    from upscaler_edge.bot.app import Core
    from upscaler_edge.bot.captions import Catalog
    from upscaler_edge.imageio import probe
    from upscaler_edge.models import default_registry
    from upscaler_edge.pipeline import UpscaleResult

    def copy(src: Path, dst: Path, options: Any, **kw: Any) -> UpscaleResult:
        shutil.copyfile(src, dst)
        return UpscaleResult(
            src=src,
            dst=dst,
            in_size=(32, 24),
            out_size=(128, 96),
            model=options.model,
            scale=4,
            device="copy",
            seconds=0.001,
        )

    core = Core(
        upscale=copy,
        probe=probe,
        resolve=default_registry().resolve,
        catalog=Catalog.from_registry(default_registry()),
        device_name="copy",
    )
    users = list(range(301, 305))
    allowed = tuple(users)
    fake = FakeTelegram()
    people = [fake.user(u) for u in users]
    config = replace(make_config(tmp, progress_interval=2.0), allowed_users=allowed)
    h = await BotHarness(fake, config, core).start()
    for person in people:
        await h.send(fake.text(person, "/preview " + ("on" if preview else "off")), person)
    data = png_bytes(32, 24)
    began = time.perf_counter()
    for i in range(n):
        person = people[i % len(people)]
        await h.send(fake.document(person, data, f"t{i}.png"), person)
    await wait_for(lambda: sum(len(fake.documents_to(u)) for u in users) >= n, 300, "all results")
    rate = n / (time.perf_counter() - began)
    await h.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="jobs for the overhead measurement")
    parser.add_argument("--throughput", type=int, default=200, help="jobs for throughput")
    parser.add_argument(
        "--no-preview", action="store_true", help="without the before/after preview photos"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        preview = not args.no_preview
        over = asyncio.run(_overhead(tmp / "o", args.jobs, preview))
        log.info(
            "overhead per job outside inference (64x48 PNG, x4, %d jobs, preview %s): "
            "median %.1f ms, "
            "p90 %.1f ms (receive->reply median %.1f ms, of which upscale call %.1f ms)",
            over["jobs"],
            "on" if preview else "off",
            over["overhead_median_ms"],
            over["overhead_p90_ms"],
            over["total_median_ms"],
            over["upscale_median_ms"],
        )
        q = _queue_only(tmp / "q", args.throughput)
        log.info("queue alone: %d jobs (add + claim + finish) at %.0f jobs/s", args.throughput, q)
        b = asyncio.run(_through_bot(tmp / "b", args.throughput, preview))
        log.info(
            "whole bot, copy instead of upscale: %d jobs from 4 users at %.1f jobs/s",
            args.throughput,
            b,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
