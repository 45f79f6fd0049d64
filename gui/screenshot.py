"""``--screenshot FILE``: the window with the bundled sample upscaled and compared, saved as a
PNG (the picture in docs/GUI.md). Works headless with QT_QPA_PLATFORM=offscreen."""

from __future__ import annotations

import importlib.resources
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QRect, QSettings, QTimer
from PySide6.QtGui import QImage

from .application import application
from .controller import MainController
from .main_window import MainWindow
from .settings import GuiSettings, save_settings

__all__ = ["SCREENSHOT_MODEL", "SCREENSHOT_SCALE", "sample_path", "take_screenshot"]

log = logging.getLogger(__name__)

SCREENSHOT_SIZE = (1440, 900)
SCREENSHOT_MODEL = "realesr-animevideov3"
SCREENSHOT_SCALE = 2


def sample_path() -> Path:
    """The bundled sample image (``upscaler_edge/data/sample.jpg``)."""
    return Path(str(importlib.resources.files("upscaler_edge") / "data" / "sample.jpg"))


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop until ``condition()`` holds or the time is up."""
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: loop.quit() if condition() else None)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    timer.start()
    deadline.start(int(timeout_s * 1000))
    if not condition():
        loop.exec()
    timer.stop()
    deadline.stop()
    return condition()


def _screenshot_inputs(sample: Path, folder: Path) -> list[Path]:
    """The sample copied into ``folder`` (so results land beside it there, not in the
    installed package) plus two crops of it, so the queue shows a small batch."""
    image = QImage(str(sample))
    first = folder / f"portrait{sample.suffix}"
    shutil.copyfile(sample, first)
    paths = [first]
    if not image.isNull():
        w, h = image.width(), image.height()
        for name, rect in (
            ("portrait-face.png", QRect(w // 4, h // 6, w // 2, h // 2)),
            ("portrait-detail.png", QRect(w // 8, h // 2, w * 3 // 4, h * 3 // 8)),
        ):
            crop = image.copy(rect)
            if not crop.isNull() and crop.save(str(folder / name)):  # PNG, by the suffix
                paths.append(folder / name)
    return paths


def take_screenshot(
    out: Path,
    *,
    sample: Path | None = None,
    timeout_s: float = 300.0,
    probe_devices: bool = True,
) -> int:
    """Upscale ``sample`` (default: the bundled one) in a fresh window, show the comparison and
    save the window as a PNG to ``out``. Returns 0 on success, 1 when the job failed or timed
    out. Settings and results go to a temporary folder; the user's settings are not touched."""
    application()
    sample = sample or sample_path()
    if not sample.is_file():
        log.error("the sample image is missing: %s", sample)
        return 1
    with tempfile.TemporaryDirectory(prefix="upscaler-edge-shot-") as tmp:
        folder = Path(tmp)
        qs = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
        save_settings(qs, GuiSettings(model=SCREENSHOT_MODEL, scale=SCREENSHOT_SCALE, format="png"))
        inputs = _screenshot_inputs(sample, folder)
        window = MainWindow()
        controller = MainController(window, qs, probe_devices=probe_devices)
        devices: list[bool] = []
        controller.devices_ready.connect(lambda: devices.append(True))
        window.resize(*SCREENSHOT_SIZE)
        window.show()
        try:
            ids = controller.add_paths(inputs)
            if not ids:
                log.error("cannot queue the sample %s", sample)
                return 1
            item_id = ids[0]
            shown: list[int] = []
            controller.compare_ready.connect(shown.append)
            controller.start()
            idle = _wait_for(lambda: not controller.is_running(), timeout_s)
            item = controller.model.item(item_id)
            if not idle or item is None or item.dst is None:
                log.error("the sample was not upscaled: %s", item.state_text() if item else "gone")
                return 1
            shown.clear()
            controller.select(item_id)
            if not _wait_for(lambda: item_id in shown, 60):
                log.error("the comparison did not load")
                return 1
            if probe_devices:
                _wait_for(lambda: bool(devices), 30)
            window.compare.set_split(0.5)
            window.compare.zoom_fit()
            window.compare.setFocus()
            _wait_for(lambda: False, 0.2)  # let layouts and the status bar settle
            pixmap = window.grab()
            out.parent.mkdir(parents=True, exist_ok=True)
            if not pixmap.save(str(out), "PNG"):
                log.error("cannot write %s", out)
                return 1
            log.info("screenshot %dx%d saved to %s", pixmap.width(), pixmap.height(), out)
            return 0
        finally:
            controller.shutdown()
            window.close()
            window.deleteLater()
