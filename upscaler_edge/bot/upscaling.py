"""The core library calls the bot makes: upscale (in the worker process), header probe, model
lookup. Gathered in :class:`Core` so tests can swap any of them."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .captions import Catalog
from .config import BotConfig, ConfigError
from .context import ClusterWorker

if TYPE_CHECKING:  # the core modules load numpy (and the worker ncnn): not at import time
    from ..models import ModelSpec
    from ..options import Options
    from ..pipeline import UpscaleResult
    from ..video import VideoOptions, VideoResult
    from ..worker import Worker

__all__ = ["Core", "Upscale", "UpscaleVideo", "WorkerPool", "options_for"]


class Upscale(Protocol):
    """The blocking upscale call (``Worker.run`` in production); runs in a worker thread."""

    def __call__(
        self,
        src: Path,
        dst: Path,
        options: Options,
        *,
        progress: Callable[[int, int], None],
        cancel: threading.Event,
        timeout: float | None,
    ) -> UpscaleResult: ...


class UpscaleVideo(Protocol):
    """The blocking video call (``Worker.run_video`` in production); ``progress`` gets
    (frames done, frames total or 0)."""

    def __call__(
        self,
        src: Path,
        dst: Path,
        options: Options,
        video: VideoOptions,
        *,
        progress: Callable[[int, int], None],
        cancel: threading.Event,
        timeout: float | None,
    ) -> VideoResult: ...


_R = TypeVar("_R")


def _no_close() -> None:
    pass


def _bot_client_id(config: BotConfig) -> str:
    """The same id every start (one durable consumer on the server, not one per start);
    hex digits, as the job messages' reply subject must be."""
    import hashlib

    return hashlib.sha256(f"bot {config.data_dir.resolve()}".encode()).hexdigest()[:16]


class WorkerPool:
    """One supervised worker process per device (``BotConfig.devices``); each call runs on
    a free one, with ``Options.device`` set to that worker's device. A call waits while every
    worker is busy (the runner starts at most ``slots`` jobs at once, so it does not)."""

    def __init__(self, devices: Sequence[str], make: Callable[[], Worker]) -> None:
        self._workers = [(device, make()) for device in devices]
        self._free: queue.Queue[tuple[str, Worker]] = queue.Queue()
        for pair in self._workers:
            self._free.put(pair)

    @property
    def slots(self) -> int:
        return len(self._workers)

    def _on_free(self, call: Callable[[Worker, str], _R]) -> _R:
        """``call(worker, device)`` on the next free worker, which is free again after."""
        device, worker = self._free.get()
        try:
            return call(worker, device)
        finally:
            self._free.put((device, worker))

    def run(
        self,
        src: Path,
        dst: Path,
        options: Options,
        *,
        progress: Callable[[int, int], None],
        cancel: threading.Event,
        timeout: float | None,
    ) -> UpscaleResult:
        return self._on_free(
            lambda worker, device: worker.run(
                src,
                dst,
                options.replace(device=device),
                progress=progress,
                cancel=cancel,
                timeout=timeout,
            )
        )

    def run_video(
        self,
        src: Path,
        dst: Path,
        options: Options,
        video: VideoOptions,
        *,
        progress: Callable[[int, int], None],
        cancel: threading.Event,
        timeout: float | None,
    ) -> VideoResult:
        return self._on_free(
            lambda worker, device: worker.run_video(
                src,
                dst,
                options.replace(device=device),
                video,
                progress=progress,
                cancel=cancel,
                timeout=timeout,
            )
        )

    def close(self) -> None:
        for _, worker in self._workers:
            worker.close()


@dataclass
class Core:
    """The core library functions the bot uses (swappable in tests).

    ``probe(path, max_pixels=...)`` -> (format, width, height) from the header, raising
    ``InputError``/``ImageTooLargeError``; ``resolve(name, scale, denoise)`` -> the
    ``ModelSpec`` (a family's member for that scale and noise level), raising
    ``UsageError``/``UnknownModelError`` (the registry's rule: no scale above the model's, no
    level it lacks); ``device_name`` is shown until the first result names the real device.
    ``upscale_video`` runs a video job (None: this core takes no videos). ``slots``: how
    many jobs may run at once (one per worker process: one per listed device).
    ``workers`` lists the PCs of the cluster (blocking; None: this core works locally).
    """

    upscale: Upscale
    probe: Callable[..., tuple[str, int, int]]
    resolve: Callable[..., ModelSpec]
    catalog: Catalog
    device_name: str
    close: Callable[[], None] = _no_close
    upscale_video: UpscaleVideo | None = None
    slots: int = 1
    workers: Callable[[], list[ClusterWorker]] | None = None

    @classmethod
    def load(cls, config: BotConfig) -> Core:
        """The real core: a supervised worker process, header probe, model registry (or the
        cluster's client, with ``config.uses_cluster``)."""
        if config.uses_cluster:
            return cls.load_cluster(config)
        from ..imageio import probe
        from ..models import default_registry
        from ..worker import Worker

        pool = WorkerPool(config.devices, lambda: Worker(timeout=config.job_timeout))
        registry = default_registry()
        if config.device == "cpu":
            name = "CPU"
        elif pool.slots > 1:
            name = f"devices {', '.join(config.devices)}"
        else:
            name = f"device '{config.device}'"
        return cls(
            upscale=pool.run,
            probe=probe,
            resolve=registry.resolve,
            catalog=Catalog.from_registry(registry),
            # Naming the GPU here would load ncnn/Vulkan into the bot process, which only the
            # worker child may do; the runner learns the real name from the first result.
            device_name=name,
            close=pool.close,
            upscale_video=pool.run_video,
            slots=pool.slots,
        )

    @classmethod
    def load_cluster(cls, config: BotConfig) -> Core:
        """The core that sends each job to the cluster (images whole, videos as segments
        that several workers do at once); ``config.cluster_slots`` jobs in flight.
        ConfigError (one line) when the cluster is not set up or cannot be reached."""
        from ..cluster.client import ClusterClient
        from ..errors import UpscalerError
        from ..imageio import probe
        from ..models import default_registry

        address = config.cluster_address()
        try:
            client = ClusterClient(address, client_id=_bot_client_id(config))
        except UpscalerError as exc:
            raise ConfigError(f"cluster: {exc}") from None
        except Exception as exc:  # a timeout, a refused connection: one line either way
            raise ConfigError(
                f"cluster: cannot reach the coordinator at {address.url}: "
                f"{exc or type(exc).__name__}"
            ) from None

        def workers() -> list[ClusterWorker]:
            return [
                ClusterWorker(
                    name=w.name,
                    device=w.device,
                    jobs_done=w.jobs_done,
                    mp_per_s=w.mp_per_s,
                    busy=w.current is not None,
                    small_only=w.small_only,
                )
                for w in client.workers()
            ]

        registry = default_registry()
        return cls(
            upscale=client.run,
            probe=probe,
            resolve=registry.resolve,
            catalog=Catalog.from_registry(registry),
            device_name=f"the cluster at {address.host}:{address.port}",
            close=client.close,
            upscale_video=client.run_video,
            slots=config.cluster_slots,
            workers=workers,
        )


def options_for(params: Mapping[str, Any], config: BotConfig, fmt: str) -> Options:
    """The core Options for a job's params (imported lazily: the core may load ncnn).

    ``params["model"]`` is the member the registry resolved for the scale and noise level
    asked for, so the level is honoured through the model; it is also passed as
    ``Options.denoise`` where the core's Options has that field.
    """
    from ..options import Options

    extra: dict[str, Any] = {}
    if params.get("denoise") is not None and "denoise" in {f.name for f in fields(Options)}:
        extra["denoise"] = params["denoise"]
    # overwrite: the spool folder is the job's own, and a crashed attempt may have left a file
    return Options(
        model=params["model"],
        scale=params.get("scale"),
        device=config.device,
        format=fmt,
        max_pixels=config.max_pixels,
        overwrite=True,
        **extra,
    )
