"""Sending work to the cluster: the bot, the window and ``--cluster`` use this.

:class:`ClusterClient` has the supervised worker's interface (``run``, ``run_video``, both
blocking, with progress and cancel), so a front end switches from local work to the cluster
by holding a different object; ``submit`` sends a whole batch at once so every worker gets
a share. Behind it an asyncio loop in one thread keeps the NATS connection.

Exactly one answer per job: the first result for a job id and index wins and is written to
its output atomically; a late one (from a worker presumed dead whose job went to another
worker) is counted in ``ignored`` and its file dropped. A job JetStream gave up on (its
workers vanished ``max_deliver`` times) fails with :class:`JobFailed`.

This module holds the image side; the connection, the waiting jobs and their answers are in
``client_core`` (:class:`ClientCore`), the video side in ``client_video``
(:class:`ClientVideo`). Every name this module had before that split is still here.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import UpscalerError
from ..options import Options
from ..pipeline import UpscaleResult
from . import protocol
from .client_core import KEEP_CONSUMER_S as KEEP_CONSUMER_S
from .client_core import Progress as Progress
from .client_core import T as T
from .client_core import WorkerInfo as WorkerInfo
from .client_core import _pair as _pair
from .client_core import _Pending as _Pending
from .client_core import log as log
from .client_video import ClientVideo
from .connect import Address, ClusterError
from .protocol import Job

__all__ = ["ClusterClient", "WorkerInfo"]


class ClusterClient(ClientVideo):
    """A connection to the cluster that sends jobs and collects their results."""

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------
    def submit(
        self,
        src: Path | str,
        dst: Path | str,
        options: Options | None = None,
        *,
        progress: Progress | None = None,
    ) -> concurrent.futures.Future[UpscaleResult]:
        """Queue one image; the future gives its UpscaleResult once ``dst`` is written."""
        src, dst = Path(src), Path(dst)
        opts = options or Options()
        if not src.is_file():
            raise errors.InputError(f"{src}: no such file")
        if dst.exists() and not opts.overwrite:
            raise errors.OutputExistsError(f"{dst} exists (use --overwrite)")
        future: concurrent.futures.Future[UpscaleResult] = concurrent.futures.Future()
        self._call(self._submit_image(src, dst, opts, future, progress), 600)
        return future

    async def _submit_image(
        self,
        src: Path,
        dst: Path,
        opts: Options,
        future: concurrent.futures.Future[Any],
        progress: Progress | None,
    ) -> None:
        ref = await self._put_input(src)
        size = (
            protocol.SMALL
            if _pixels(src, opts.max_pixels) <= protocol.SMALL_PIXELS
            else protocol.LARGE
        )
        job = Job(
            kind="image",
            job=uuid.uuid4().hex,
            index=0,
            reply=self.reply,
            input=ref,
            options=protocol.options_to_json(opts),
            suffix=dst.suffix.lower() or ".png",
        )
        await self._publish(job, size, dst, opts.overwrite, future, progress)

    # -- Worker's interface -------------------------------------------------------------
    def run(
        self,
        src: Path | str,
        dst: Path | str,
        options: Options | None = None,
        *,
        progress: Progress | None = None,
        cancel: Any = None,
        timeout: float | None = None,
    ) -> UpscaleResult:
        future = self.submit(src, dst, options, progress=progress)
        return self.wait(future, cancel, timeout)


def _pixels(src: Path, max_pixels: int) -> int:
    """The input's pixel count from its header (0 when it cannot be read or is over the cap:
    the worker will say why)."""
    from ..imageio import probe

    try:
        _, w, h = probe(src, max_pixels=max_pixels)
    except UpscalerError:
        return 0
    return w * h


def open_client(address: Address) -> ClusterClient:
    try:
        return ClusterClient(address)
    except ClusterError:
        raise
    except concurrent.futures.TimeoutError:
        raise ClusterError(f"the coordinator at {address.url} did not answer") from None
