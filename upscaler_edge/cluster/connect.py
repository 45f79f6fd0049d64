"""How a PC reaches the coordinator: its address, the token, and the server's pinned TLS key.

The coordinator makes a self-signed certificate on first start; the join command carries the
sha256 of that certificate (``--tls-pin``). A joining PC reads the certificate from the
server (NATS sends INFO in the clear, then upgrades to TLS), compares its hash with the pin,
and then trusts exactly that certificate for the real connection. No CA, no files to copy,
and a machine in the middle cannot pose as the coordinator. The token is NATS's own
authorisation: a wrong one is refused by the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import UpscalerError, UsageError

__all__ = ["Address", "ClusterError", "connect", "server_certificate"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 4222


class ClusterError(UpscalerError):
    """The cluster cannot be reached or refused us (one line for the user)."""


@dataclass(frozen=True)
class Address:
    url: str  # nats://host:port
    token: str
    tls_pin: str | None = None  # sha256 (hex) of the server's certificate, DER

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise UsageError(f"not a NATS address: {self.url!r} (use nats://HOST:4222)")
        if self.tls_pin is not None and (
            len(self.tls_pin) != 64 or any(c not in "0123456789abcdef" for c in self.tls_pin)
        ):
            raise UsageError("--tls-pin takes the 64 hex digits the coordinator printed")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or DEFAULT_PORT

    def join_command(self, prog: str = "upscaler-edge") -> str:
        # "--token=T": a token of an older install may start with "-"
        token = f"--token={self.token}" if self.token.startswith("-") else f"--token {self.token}"
        cmd = f"{prog} --serve {self.url} {token}"
        if self.tls_pin:
            cmd += f" --tls-pin {self.tls_pin}"
        return cmd

    # -- saved beside the user's settings, so the bot, the window and `--cluster` find it
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Address:
        try:
            data = json.loads(path.read_text())
            return cls(str(data["url"]), str(data["token"]), data.get("tls_pin"))
        except FileNotFoundError:
            raise UsageError(
                f"no cluster is set up on this PC ({path} is missing): run "
                "`upscaler-edge --coordinator`, or join one with --serve"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is damaged ({exc}); set the cluster up again") from None


def server_certificate(host: str, port: int, timeout: float = 5.0) -> bytes | None:
    """The server's certificate (DER) as it presents it, or None when it does not use TLS."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            line = b""
            while not line.endswith(b"\r\n") and len(line) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                line += chunk
            if not line.startswith(b"INFO "):
                raise ClusterError(f"{host}:{port} is not a NATS server")
            info = json.loads(line[5:].split(b"\r\n", 1)[0])
            if not (info.get("tls_required") or info.get("tls_available")):
                return None
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # read only; trust comes from the pin
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert(binary_form=True)
            return cert
    except ClusterError:
        raise
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot reach the coordinator at {host}:{port}: {exc}") from None


def pinned_context(address: Address) -> ssl.SSLContext | None:
    """An SSL context trusting exactly the pinned certificate (None without a pin)."""
    if address.tls_pin is None:
        return None
    der = server_certificate(address.host, address.port)
    if der is None:
        raise ClusterError(
            f"{address.host}:{address.port} offers no TLS, but the join command pins a "
            "certificate: refusing to send the token in the clear"
        )
    got = hashlib.sha256(der).hexdigest()
    if got != address.tls_pin:
        raise ClusterError(
            f"the server at {address.host}:{address.port} is not the coordinator you joined "
            f"(certificate {got[:16]}..., expected {address.tls_pin[:16]}...)"
        )
    ctx = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
    ctx.check_hostname = False  # the one trusted certificate is the pin itself
    return ctx


async def connect(address: Address, name: str, **options: Any) -> Any:
    """A connected ``nats.NATS`` client, or ClusterError with one line saying why not."""
    try:
        import nats
        from nats.errors import Error as NatsError
    except ImportError:
        raise UsageError(
            'several PCs need the cluster extra: pip install "upscaler-edge[cluster]"'
        ) from None
    import asyncio

    tls = await asyncio.to_thread(pinned_context, address)
    errors: list[BaseException] = []

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)
        log.debug("nats: %s", exc)

    url = address.url.replace("tls://", "nats://", 1)

    async def attempt(**extra: Any) -> Any:
        try:
            return await nats.connect(
                servers=[url],
                token=address.token,
                tls=tls,
                name=name,
                connect_timeout=5,
                error_cb=on_error,
                **extra,
            )
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            text = " ".join(str(e) for e in [*errors, exc]).lower()
            if "authorization" in text:
                raise ClusterError(
                    f"the coordinator at {address.host}:{address.port} refused the token"
                ) from None
            raise ClusterError(
                f"cannot reach the coordinator at {address.host}:{address.port}: "
                f"{errors[0] if errors else exc or type(exc).__name__}"
            ) from None

    # first once without retries, so a wrong token or address is one clear error at once;
    # then the connection that keeps reconnecting through network cuts and server restarts
    probe = await attempt(allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.2)
    await probe.close()
    errors.clear()
    nc = await attempt(
        allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=1, **options
    )
    return nc


async def close(nc: Any, *, drain: bool = True) -> None:
    """Close the connection (after delivering what is in flight, when ``drain``)."""
    import asyncio

    if drain:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 5)
