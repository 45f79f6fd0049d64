"""``--coordinator`` and ``--serve``: this PC starts a cluster, or joins one as a worker.

  upscaler-edge --coordinator          start the bundled NATS server (TLS, token), print the
                                       join command, and work as a worker too
  upscaler-edge --serve nats://HOST:4222 --token T --tls-pin P
                                       join as a worker (outward connections only)

Both save the cluster's address in the user's config folder (``cluster.json``), where the bot,
the window and ``upscaler-edge IN... --cluster`` find it. Ctrl-C stops cleanly; a job this
worker had not finished goes back to the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TextIO

import platformdirs

from ..cli_args import PROG
from ..errors import ExitStatus, UpscalerError, UsageError
from ..options import Options
from .connect import Address, ClusterError

__all__ = ["address_file", "main"]

log = logging.getLogger(__name__)


def data_folder() -> Path:
    return Path(platformdirs.user_data_dir("upscaler-edge", appauthor=False)) / "cluster"


def address_file() -> Path:
    return Path(platformdirs.user_config_dir("upscaler-edge", appauthor=False)) / "cluster.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Several PCs: --coordinator starts the cluster on this PC; --serve URL "
        "joins one as a worker.",
    )
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--coordinator", action="store_true", help="run the cluster's server here")
    role.add_argument("--serve", metavar="URL", help="join the cluster at URL as a worker")
    p.add_argument("--token", help="the cluster's token (printed by --coordinator)")
    p.add_argument("--tls-pin", help="the coordinator's certificate hash (printed with the token)")
    p.add_argument("--name", help="this worker's name in /status (default: the host name)")
    p.add_argument("-d", "--device", default="auto", help="device for this worker's jobs")
    p.add_argument(
        "--small-only",
        action="store_true",
        help="take only small images (a PC without a GPU), no videos or big photos",
    )
    p.add_argument("--job-timeout", type=float, help="stop a job after this many seconds")
    c = p.add_argument_group("coordinator")
    c.add_argument("--port", type=int, default=4222, help="port to listen on (default 4222)")
    c.add_argument("--listen", default="0.0.0.0", help="address to listen on (default all)")
    c.add_argument("--advertise", help="host name or address the join command names")
    c.add_argument("--nats", metavar="URL", help="use this NATS server instead of the bundled one")
    c.add_argument("--no-tls", action="store_true", help="plain TCP (a trusted network only)")
    c.add_argument("--no-local-worker", action="store_true", help="do not work on this PC")
    c.add_argument("--data-dir", type=Path, help=f"server files (default {data_folder()})")
    c.add_argument("--ack-wait", type=float, default=60.0, help=argparse.SUPPRESS)
    c.add_argument("--max-deliver", type=int, default=3, help=argparse.SUPPRESS)
    c.add_argument("--save-address", type=Path, help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and ExitStatus.USAGE
    logging.basicConfig(
        level=logging.INFO - 10 * min(args.verbose, 1),
        format=f"{PROG}: %(levelname)s: %(message)s",
        stream=err,
    )
    # asyncio warns of a harmless TLS detail on every disconnect
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    try:
        options = Options(device=args.device)
        if args.coordinator:
            return _coordinator(args, options, out)
        if not args.token:
            raise UsageError("--serve needs --token (the coordinator printed it)")
        address = Address(args.serve, args.token, args.tls_pin)
        address.save(args.save_address or address_file())
        _serve(address, args, options)
        return ExitStatus.OK
    except (UsageError, ClusterError) as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return ExitStatus.USAGE
    except UpscalerError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return ExitStatus.FAILED
    except KeyboardInterrupt:
        return ExitStatus.OK


def _coordinator(args: argparse.Namespace, options: Options, out: TextIO) -> int:
    from .server import Coordinator

    server = None
    if args.nats:
        if not args.token:
            raise UsageError("--nats needs --token: the token of that server")
        address = Address(args.nats, args.token, args.tls_pin)
        local = address
    else:
        server = Coordinator(
            args.data_dir or data_folder(),
            port=args.port,
            listen=args.listen,
            advertise=args.advertise,
            tls=not args.no_tls,
        )
        address = server.start()
        local = server.local_address(address)
    try:
        asyncio.run(_setup(local, args.ack_wait, args.max_deliver))
        local.save(args.save_address or address_file())
        out.write(
            f"coordinator ready at {address.url}\n"
            f"on each PC that should help, run:\n\n    {address.join_command(PROG)}\n\n"
            "(keep the token private: it lets a PC take and answer jobs)\n"
        )
        out.flush()
        if args.no_local_worker:
            _wait_forever()
        else:
            _serve(local, args, options)
    finally:
        if server is not None:
            server.stop()
    return ExitStatus.OK


async def _setup(address: Address, ack_wait: float, max_deliver: int) -> None:
    from .connect import close, connect
    from .streams import ensure

    nc = await connect(address, "upscaler-edge coordinator")
    try:
        await ensure(nc.jetstream(), ack_wait, max_deliver)
    finally:
        await close(nc)


def _wait_forever() -> None:
    stop = asyncio.Event()

    async def wait() -> None:
        _on_signals(stop)
        await stop.wait()

    asyncio.run(wait())


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises
            loop.add_signal_handler(sig, stop.set)


def _serve(address: Address, args: argparse.Namespace, options: Options) -> None:
    from .node import Node

    node = Node(
        address,
        name=args.name,
        options=options,
        small_only=args.small_only,
        job_timeout=args.job_timeout,
    )

    async def go() -> None:
        stop = asyncio.Event()
        _on_signals(stop)
        await node.run(stop)

    asyncio.run(go())
