"""Several PCs on one machine: throughput with 1 and 2 workers, and the queue's cost per job.

Starts the bundled NATS server (TLS + token, as ``--coordinator`` does) on loopback and
worker processes through the real CLI (``--serve``), each pinned to its own CPU core, so
"2 workers" means two 1-core PCs. Measures:

1. throughput: a batch of N photos (128x128 crops, realesr-animevideov3 x2) sent at once,
   with 1 and then 2 workers (warmed up: model loaded), against the same batch run locally
   through one supervised worker process pinned to one core;
2. overhead per job: a 64x48 photo, one job at a time, median of M: through the cluster
   (upload, queue, download, result) minus the same job through the local supervised worker.

Run: ``python bench/cluster.py [--jobs 12] [--repeat 10] [--json OUT.json]`` (cluster extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# bench/openvino.py would shadow the openvino package in the worker processes
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
MODEL = "realesr-animevideov3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photos(folder: Path, n: int, size: int) -> list[Path]:
    from upscaler_edge import __file__ as pkg

    with Image.open(Path(pkg).parent / "data" / "sample.jpg") as im:
        photo = np.asarray(im.convert("RGB"))
    big = np.tile(photo, (2, 2, 1))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"p{i}.png"
        y, x = (i * 7) % (big.shape[0] - size), (i * 13) % (big.shape[1] - size)
        Image.fromarray(big[y : y + size, x : x + size]).save(p)
        out.append(p)
    return out


def _start_worker(address, name: str, cpu: int, logs: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "upscaler_edge", "--serve", address.url, "--token", address.token,
        "--tls-pin", address.tls_pin, "--name", name, "-d", "cpu",
        "--save-address", str(logs / f"{name}.json"),
    ]  # fmt: skip
    log = open(logs / f"{name}.log", "wb")  # noqa: SIM115
    if shutil.which("taskset"):  # one core per worker: two 1-core PCs
        cmd = ["taskset", "-c", str(cpu % (os.cpu_count() or 1)), *cmd]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


SHARES: dict[str, int] = {}


def _batch(client, photos: list[Path], out: Path, opts) -> float:
    """Seconds for the batch; SHARES says which worker did how many."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    futures = [client.submit(p, out / f"{p.stem}_x2.png", opts) for p in photos]
    SHARES.clear()
    for f in futures:
        name = f.result(600).device.split(":")[0]
        SHARES[name] = SHARES.get(name, 0) + 1
    return time.perf_counter() - started


def _warm(client, photos: list[Path], out: Path, opts, names: set[str]) -> None:
    """Until every worker has finished a job (its model is loaded)."""
    deadline = time.monotonic() + 300
    i = 0
    while {w.name for w in client.workers() if w.jobs_done} < names:
        assert time.monotonic() < deadline, "workers did not warm up"
        _batch(client, photos[: len(names)], out / f"warm{i}", opts)
        i += 1
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from upscaler_edge.cluster.cli import _setup
    from upscaler_edge.cluster.client import ClusterClient
    from upscaler_edge.cluster.server import Coordinator
    from upscaler_edge.options import Options
    from upscaler_edge.worker import Worker

    opts = Options(model=MODEL, scale=2, device="cpu", overwrite=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    photos = _photos(tmp / "in", args.jobs, args.size)
    tiny = _photos(tmp / "tiny", 1, 48)[0]
    results: dict[str, float] = {}

    # local reference: one supervised worker process on one core
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    with Worker(options=opts) as local:
        local.run(photos[0], tmp / "lw.png", opts)  # load the model
        (tmp / "local").mkdir()
        started = time.perf_counter()
        for p in photos:
            local.run(p, tmp / "local" / f"{p.stem}.png", opts)
        results["local_batch_s"] = time.perf_counter() - started
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            local.run(tiny, tmp / "tiny_local.png", opts)
            times.append(time.perf_counter() - t)
        results["local_job_s"] = statistics.median(times)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

    server = Coordinator(
        tmp / "coord", port=_free_port(), listen="127.0.0.1", advertise="127.0.0.1"
    )
    address = server.start()
    asyncio.run(_setup(address, 60.0, 3))
    procs = []
    try:
        procs.append(_start_worker(address, "w1", 0, tmp))
        with ClusterClient(address) as client:
            _warm(client, photos, tmp / "o", opts, {"w1"})
            results["cluster1_batch_s"] = _batch(client, photos, tmp / "o1", opts)
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                client.run(tiny, tmp / "tiny_cluster.png", opts)
                times.append(time.perf_counter() - t)
            results["cluster_job_s"] = statistics.median(times)
            procs.append(_start_worker(address, "w2", 1, tmp))
            _warm(client, photos, tmp / "o", opts, {"w1", "w2"})
            results["cluster2_batch_s"] = _batch(client, photos, tmp / "o2", opts)
            shares = dict(SHARES)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
        server.stop()
    n = args.jobs
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"| setup | batch of {n} ({args.size}x{args.size} x2) | photos/s | vs local |")
    print("|---|---|---|---|")
    for key, label in (
        ("local_batch_s", "local, 1 worker process, 1 core"),
        ("cluster1_batch_s", "cluster, 1 worker (1 core)"),
        ("cluster2_batch_s", "cluster, 2 workers (1 core each)"),
    ):
        s = results[key]
        print(f"| {label} | {s:.2f} s | {n / s:.2f} | {results['local_batch_s'] / s:.2f}x |")
    over = results["cluster_job_s"] - results["local_job_s"]
    speedup = results["cluster1_batch_s"] / results["cluster2_batch_s"]
    print(f"speed-up 2 workers vs 1: {speedup:.2f}x; jobs per worker in that batch: {shares}")
    print(
        f"one 48x48 job: local {results['local_job_s'] * 1000:.0f} ms, cluster "
        f"{results['cluster_job_s'] * 1000:.0f} ms: overhead {over * 1000:.0f} ms per job"
    )
    if args.json:
        args.json.write_text(json.dumps({**results, "jobs": n, "shares": shares}, indent=1))


if __name__ == "__main__":
    main()
