"""A real NATS server (the bundled ``nats-server``) on loopback, and worker processes.

Shared by tests/cluster and tests/bot (each conftest imports the fixtures); importing this
module needs no nats-py: the ``coordinator`` fixture skips its test when the extra is missing.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from upscaler_edge.cluster.connect import Address
from upscaler_edge.cluster.server import Coordinator, find_server_binary

ACK_WAIT = 3.0
MAX_DELIVER = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[Coordinator, Address]]:
    """The bundled server with TLS and a token; jobs with a short ack wait."""
    pytest.importorskip("nats", reason="the cluster extra (nats-py) is not installed")
    try:
        find_server_binary()
    except Exception as exc:
        pytest.skip(str(exc))
    server = Coordinator(
        tmp_path / "coordinator", port=free_port(), listen="127.0.0.1", advertise="127.0.0.1"
    )
    address = server.start()
    from upscaler_edge.cluster.cli import _setup

    asyncio.run(_setup(address, ACK_WAIT, MAX_DELIVER))
    try:
        yield server, address
    finally:
        server.stop()


#: ncnn on the CPU: slow enough (about 2 s for the tests' 169-tile job) that a test can stop
#: a worker in the middle of a job; OpenVINO does it in well under a second
WORKER_DEVICE = "cpu-ncnn"


class Workers:
    """Worker processes started through the real CLI (``--serve``)."""

    def __init__(self, address: Address, folder: Path) -> None:
        self.address = address
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "upscaler_edge",
            "--serve",
            self.address.url,
            "--token",
            self.address.token,
            "--name",
            name,
            "-d",
            WORKER_DEVICE,
            "-v",
            "--save-address",
            str(self.folder / f"{name}.json"),
            *extra,
        ]
        if self.address.tls_pin:
            cmd += ["--tls-pin", self.address.tls_pin]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def wait_joined(self, *names: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while "joined" not in self.log(name):
                assert self.procs[name].poll() is None, self.log(name)
                assert time.monotonic() < deadline, self.log(name)
                time.sleep(0.1)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(coordinator: tuple[Coordinator, Address], tmp_path: Path) -> Iterator[Workers]:
    folder = tmp_path / "workers"
    folder.mkdir()
    w = Workers(coordinator[1], folder)
    try:
        yield w
    finally:
        w.stop_all()
