"""The cluster's workers in the status bar while "Send to the cluster" is on.

:class:`ClusterStatus` asks the cluster for its workers every few seconds on a helper thread
(the list comes over the network: never on the UI thread) and shows "Cluster: N workers",
with a line per worker in the tooltip (name, device, jobs done, speed, busy or idle), or
"Cluster: unreachable — reason". Nothing shows while the option is off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from .workers import one_line

if TYPE_CHECKING:
    from upscaler_edge.cluster.client import WorkerInfo

    from .main_window import MainWindow

__all__ = ["ClusterStatus", "summary", "worker_line"]

log = logging.getLogger(__name__)

#: how often the list is asked for (the workers refresh theirs every 5 s)
REFRESH_MS = 3000


def worker_line(w: WorkerInfo) -> str:
    """One worker for the tooltip: "alpha: cpu, 3 jobs done, 1.25 MP/s, busy"."""
    parts = [w.device or "?", f"{w.jobs_done} job{'s' if w.jobs_done != 1 else ''} done"]
    if w.mp_per_s:
        parts.append(f"{w.mp_per_s:.2f} MP/s")
    parts.append("busy" if w.current is not None else "idle")
    if w.small_only:
        parts.append("small pictures only")
    return f"{w.name}: {', '.join(parts)}"


def summary(workers: Sequence[WorkerInfo]) -> tuple[str, str]:
    """The label's text and its tooltip for this list of workers."""
    if not workers:
        return "Cluster: no workers", "No worker PC has joined the cluster yet"
    n = len(workers)
    busy = sum(w.current is not None for w in workers)
    text = f"Cluster: {n} worker{'s' if n != 1 else ''}" + (f" ({busy} busy)" if busy else "")
    return text, "\n".join(worker_line(w) for w in workers)


class _Relay(QObject):
    """Carries a helper thread's answer to the window's thread: (generation, workers) or
    (generation, reason). No parent and no children, so a thread may hold it after the
    controller is gone."""

    listed = Signal(int, list)
    failed = Signal(int, str)


class ClusterStatus(QObject):
    """Shows the cluster's workers on ``window`` while its ``cluster_action`` is checked.

    ``fetch`` returns the workers and may block on the network (it runs on a helper thread);
    it raises when the cluster cannot be reached. One ask at a time; answers that come after
    the option was turned off (or off and on again) are dropped.
    """

    def __init__(
        self,
        window: MainWindow,
        fetch: Callable[[], list[WorkerInfo]],
        *,
        refresh_ms: int = REFRESH_MS,
    ) -> None:
        super().__init__(window)
        self._window = window
        self._fetch = fetch
        self._generation = 0  # bumped on every on/off: older answers are stale
        self._asking = False
        self._relay = _Relay()
        self._relay.listed.connect(self._on_listed)
        self._relay.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self._ask)
        window.cluster_action.toggled.connect(self._on_toggled)
        window.set_cluster_status("")

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    @Slot(bool)
    def _on_toggled(self, on: bool) -> None:
        self._generation += 1
        if on:
            self._window.set_cluster_status("Cluster: connecting…", "Asking the cluster")
            self._timer.start()
            self._ask()
        else:
            self.stop()

    def stop(self) -> None:
        """Stop asking and hide the label (the window is closing, or the option is off)."""
        self._generation += 1
        self._timer.stop()
        self._window.set_cluster_status("")

    @Slot()
    def _ask(self) -> None:
        if self._asking:
            return
        self._asking = True
        threading.Thread(
            target=self._fetch_on_thread,
            args=(self._fetch, self._relay, self._generation),
            name="cluster-status",
            daemon=True,
        ).start()

    @staticmethod
    def _fetch_on_thread(
        fetch: Callable[[], list[WorkerInfo]], relay: _Relay, generation: int
    ) -> None:
        try:
            workers = fetch()
        except Exception as exc:
            reason = one_line(str(exc)) or type(exc).__name__
            log.debug("cluster status: %s", reason)
            relay.failed.emit(generation, reason)
        else:
            relay.listed.emit(generation, list(workers))

    @Slot(int, list)
    def _on_listed(self, generation: int, workers: list[WorkerInfo]) -> None:
        if self._answered(generation):
            self._window.set_cluster_status(*summary(workers))

    @Slot(int, str)
    def _on_failed(self, generation: int, reason: str) -> None:
        if self._answered(generation):
            short = reason if len(reason) <= 80 else reason[:79] + "…"
            self._window.set_cluster_status(f"Cluster: unreachable — {short}", reason)

    def _answered(self, generation: int) -> bool:
        """True when this answer is for the current state (else it is dropped, and a fresh
        ask goes out at once if the option is on)."""
        self._asking = False
        if generation == self._generation and self.active:
            return True
        if self.active:
            self._ask()
        return False
