"""``upscaler-edge IN... --cluster``: the CLI's batch sent to the cluster at once.

Every image is queued before the first answer is awaited, so every worker gets a share
(pull-based: a faster worker takes more); videos follow, each split into segments that
several workers do at once. Answers are reported in input order, one line per file, and a
failure never stops the batch.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import TextIO

from ..cli_args import PROG
from ..errors import UpscalerError
from ..options import Options
from .client import ClusterClient
from .connect import Address

__all__ = ["address_from_args", "run_batch"]


def address_from_args(args: argparse.Namespace) -> Address:
    """``--cluster URL --token T [--tls-pin P]``, or ``--cluster`` alone: the address this PC
    saved when it started or joined a cluster."""
    from .cli import address_file

    if args.cluster and args.cluster != "saved":
        from ..errors import UsageError

        if not args.token:
            raise UsageError("--cluster URL needs --token")
        return Address(args.cluster, args.token, args.tls_pin)
    return Address.load(address_file())


def run_batch(
    address: Address,
    images: list[tuple[Path, Path]],
    videos: list[tuple[Path, Path]],
    options: Options,
    video_options: object,
    stdout: TextIO,
    stderr: TextIO,
    quiet: bool,
) -> tuple[int, int]:
    """Send everything, wait for every answer; returns (done, failed)."""
    done = failed = 0
    started = time.perf_counter()
    workers: set[str] = set()
    with ClusterClient(address) as client:
        if not quiet:
            names = ", ".join(f"{w.name} ({w.device})" for w in client.workers()) or "none yet"
            stderr.write(f"{PROG}: cluster {address.url}: workers {names}\n")
        pending = []
        for src, dst in images:
            try:
                pending.append((src, client.submit(src, dst, options)))
            except UpscalerError as exc:
                failed += 1
                stderr.write(f"{PROG}: error: {src}: {exc}\n")
        cancel = threading.Event()
        try:
            for src, future in pending:
                try:
                    r = client.wait(future, cancel, None)
                except UpscalerError as exc:
                    failed += 1
                    stderr.write(f"{PROG}: error: {src}: {exc}\n")
                    continue
                done += 1
                workers.add(r.device.split(":")[0])
                if not quiet:
                    stdout.write(
                        f"{src} -> {r.dst} ({r.in_size[0]}x{r.in_size[1]} -> "
                        f"{r.out_size[0]}x{r.out_size[1]}, on {r.device})\n"
                    )
            for src, dst in videos:
                try:
                    v = client.run_video(src, dst, options, video_options)
                except UpscalerError as exc:
                    failed += 1
                    stderr.write(f"{PROG}: error: {src}: {exc}\n")
                    continue
                done += 1
                if not quiet:
                    stdout.write(f"{src} -> {v.dst} ({v.frames} frames)\n")
        except KeyboardInterrupt:
            for _, future in pending:
                if not future.done():
                    client.cancel(future)
            raise
    if not quiet:
        took = time.perf_counter() - started
        stderr.write(
            f"{done} done, {failed} failed in {took:.1f} s on the cluster "
            f"({', '.join(sorted(workers)) or 'no worker answered'})\n"
        )
    return done, failed
