"""The device picker's entries: which GPUs (and the CPU) can run a job, probed out of process.

The probe runs ``upscaler_edge.engine.list_devices`` in a short-lived child process, so a
broken Vulkan driver cannot take the window down and ncnn never loads into the UI process.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, QTimer, Signal, Slot

__all__ = ["FALLBACK_DEVICES", "DeviceChoice", "DeviceProbe", "auto_choice", "parse_devices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceChoice:
    """One entry of the device picker: ``value`` is what ``Options.device`` takes."""

    value: str
    label: str
    kind: str = ""


#: What the picker offers before (or without) a probe: auto and the CPU.
FALLBACK_DEVICES = (
    DeviceChoice("auto", "Auto (best available)", "auto"),
    DeviceChoice("cpu", "CPU", "cpu"),
)

_PROBE_CODE = """
import json
from upscaler_edge.engine import list_devices
print(json.dumps([[d.index, d.name, d.kind] for d in list_devices()]))
"""


#: GPU kinds that "all" takes (not a software rasteriser: see ``engine.pick_devices``).
_HARDWARE = ("discrete", "integrated", "virtual")


def parse_devices(text: str) -> list[DeviceChoice]:
    """Picker entries from the probe's JSON (``[[index, name, kind], ...]``), "auto" first,
    then "All GPUs" when there are two or more hardware GPUs."""
    choices = [DeviceChoice("auto", "Auto (best available)", "auto")]
    for index, name, kind in json.loads(text.strip().splitlines()[-1]):
        if int(index) < 0 or kind == "cpu":
            label = name if str(name).upper().startswith("CPU") else f"CPU ({name})"
            choices.append(DeviceChoice("cpu", label, "cpu"))
        else:
            slow = ", slow" if kind == "software" else ""
            choices.append(DeviceChoice(str(index), f"GPU {index}: {name} ({kind}{slow})", kind))
    if not any(c.value == "cpu" for c in choices):
        choices.append(DeviceChoice("cpu", "CPU", "cpu"))
    gpus = sum(c.kind in _HARDWARE for c in choices)
    if gpus >= 2:  # "-d all": each image's tiles spread over every hardware GPU
        choices.insert(1, DeviceChoice("all", f"All GPUs ({gpus})", "all"))
    return choices


def auto_choice(choices: list[DeviceChoice]) -> DeviceChoice | None:
    """What "auto" runs on, by the engine's rule: discrete, integrated, another hardware GPU
    (never a software one), else the CPU."""
    for kinds in (("discrete",), ("integrated",), ("virtual", "")):
        for c in choices:
            if c.value not in ("auto", "all", "cpu") and c.kind in kinds:
                return c
    return next((c for c in choices if c.value == "cpu"), None)


class DeviceProbe(QObject):
    """Lists compute devices in a child process. ``ready(list[DeviceChoice])`` always fires
    (just auto + CPU when the probe fails or times out)."""

    ready = Signal(list)

    def __init__(self, parent: QObject | None = None, timeout_ms: int = 30_000) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._timeout_ms = timeout_ms
        self._started = 0.0

    def start(self) -> None:
        """Start the probe; returns at once."""
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(["-c", _PROBE_CODE])
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self._process = proc
        self._started = time.monotonic()
        proc.start()
        QTimer.singleShot(self._timeout_ms, self._on_timeout)

    def _on_timeout(self) -> None:
        if self._process is not None:
            log.warning("device probe still running after %d ms; killing it", self._timeout_ms)
            self._process.kill()  # finished() follows and reports the fallback list

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        proc = self._process
        if proc is None:
            return
        self._process = None
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace")
        proc.deleteLater()
        choices = list(FALLBACK_DEVICES)
        if code == 0 and status == QProcess.ExitStatus.NormalExit:
            try:
                choices = parse_devices(out)
            except (ValueError, TypeError, IndexError):
                log.warning("device probe printed something unexpected: %r", out[-200:])
        else:
            log.warning("device probe failed (exit %s): %s", code, err.strip()[-500:])
        log.info(
            "devices (%.1f s): %s", time.monotonic() - self._started, [c.label for c in choices]
        )
        self.ready.emit(choices)

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            log.warning("cannot start the device probe: %s", self._process.errorString())
            self._process.deleteLater()
            self._process = None
            self.ready.emit(list(FALLBACK_DEVICES))

    def stop(self) -> None:
        """Kill a probe still running (at exit)."""
        if self._process is not None:
            proc, self._process = self._process, None
            proc.kill()
            proc.waitForFinished(1000)
