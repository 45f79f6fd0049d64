"""Entry point of the desktop window: ``upscaler-edge-gui`` and ``python -m upscaler_edge --gui``.

``main(argv)`` returns an exit status and never calls ``sys.exit``. ``--screenshot FILE``
opens the window with the bundled sample, upscales it with the small fast model, shows the
comparison, saves the window to FILE and exits (works headless with QT_QPA_PLATFORM=offscreen).
"""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QRect, QSettings, QTimer
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPainterPath, QPixmap
from PySide6.QtWidgets import QApplication

from .controller import MainController
from .main_window import MainWindow
from .settings import APPLICATION, ORGANIZATION, GuiSettings, save_settings
from .theme import apply_theme

__all__ = ["app_icon", "build_parser", "main", "sample_path", "take_screenshot"]

log = logging.getLogger(__name__)

SCREENSHOT_SIZE = (1440, 900)
SCREENSHOT_MODEL = "realesr-animevideov3"
SCREENSHOT_SCALE = 2


def build_parser() -> argparse.ArgumentParser:
    """The window's command line."""
    parser = argparse.ArgumentParser(
        prog="upscaler-edge-gui",
        description="Upscaler Edge desktop window: drop images, pick a model, compare.",
    )
    parser.add_argument("files", nargs="*", type=Path, help="images or folders to queue")
    parser.add_argument(
        "--screenshot",
        metavar="FILE",
        type=Path,
        help="upscale the bundled sample, render the window to FILE (PNG) and exit",
    )
    parser.add_argument(
        "--settings",
        metavar="INI",
        type=Path,
        help="keep settings in this ini file instead of the user's settings",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def sample_path() -> Path:
    """The bundled sample image (``upscaler_edge/data/sample.jpg``)."""
    return Path(str(importlib.resources.files("upscaler_edge") / "data" / "sample.jpg"))


def app_icon() -> QIcon:
    """A violet diamond: drawn, so no image file has to ship."""
    icon = QIcon()
    for size in (16, 32, 64, 128, 256):
        pm = QPixmap(size, size)
        pm.fill(QColor(0, 0, 0, 0))
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        path = QPainterPath()
        s = float(size)
        path.moveTo(s / 2, s * 0.06)
        path.lineTo(s * 0.94, s / 2)
        path.lineTo(s / 2, s * 0.94)
        path.lineTo(s * 0.06, s / 2)
        path.closeSubpath()
        p.fillPath(path, QColor("#7c6cff"))
        inner = QPainterPath()
        inner.moveTo(s / 2, s * 0.3)
        inner.lineTo(s * 0.7, s / 2)
        inner.lineTo(s / 2, s * 0.7)
        inner.lineTo(s * 0.3, s / 2)
        inner.closeSubpath()
        p.fillPath(inner, QColor("#f0c8ff"))
        p.end()
        icon.addPixmap(pm)
    return icon


def _application() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication([sys.argv[0] if sys.argv else "upscaler-edge-gui"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Upscaler Edge")
    app.setWindowIcon(app_icon())
    apply_theme(app)
    return app


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
            if not crop.isNull() and crop.save(str(folder / name), "PNG"):
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
    _application()
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
                _wait_for(lambda: bool(window.device_status.text()), 30)
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


def _report_uncaught_in(window: MainWindow) -> Callable[..., object]:
    """A bug in a slot is logged with its traceback and shown in the status bar; the window
    stays up (Qt would otherwise only print it to a console the user may not have).
    Returns the hook it replaced."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)  # type: ignore[arg-type]
            return
        log.error("unexpected error", exc_info=(kind, exc, tb))  # type: ignore[arg-type]
        try:
            window.status.showMessage(f"Unexpected error: {exc} (details in the log)", 0)
        except RuntimeError:  # the window is already gone
            pass

    sys.excepthook = hook
    return previous


def main(argv: list[str] | None = None) -> int:
    """Run the window (or ``--screenshot``); returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    app = _application()
    if args.screenshot is not None:
        return take_screenshot(args.screenshot)
    if args.settings is not None:
        qs = QSettings(str(args.settings), QSettings.Format.IniFormat)
    else:
        qs = QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
        )
    window = MainWindow()
    controller = MainController(window, qs)
    previous_hook = _report_uncaught_in(window)
    if args.files:
        controller.add_paths(args.files)
    window.show()
    try:
        status = app.exec()
    finally:
        controller.shutdown()
        sys.excepthook = previous_hook
    return int(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
