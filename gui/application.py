"""The Qt side of start-up: the QApplication, its icon and theme, and the window's event loop.

Imported only once PySide6 is known to be there (see :mod:`upscaler_edge_gui.app`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPixmap
from PySide6.QtWidgets import QApplication

from .controller import MainController
from .main_window import MainWindow
from .settings import APPLICATION, ORGANIZATION
from .theme import apply_theme

__all__ = ["app_icon", "application", "run_window"]

log = logging.getLogger(__name__)


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


def application() -> QApplication:
    """The process's QApplication (made on first call), named, themed and with its icon."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication([sys.argv[0] if sys.argv else "upscaler-edge-gui"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Upscaler Edge")
    app.setWindowIcon(app_icon())
    apply_theme(app)
    return app


def _report_uncaught_in(
    window: MainWindow,
) -> Callable[[type[BaseException], BaseException, TracebackType | None], object]:
    """A bug in a slot is logged with its traceback and shown in the status bar; the window
    stays up (Qt would otherwise only print it to a console the user may not have).
    Returns the hook it replaced."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        log.error("unexpected error", exc_info=(kind, exc, tb))
        with contextlib.suppress(RuntimeError):  # the window is already gone
            window.show_status(f"Unexpected error: {exc} (details in the log)")

    sys.excepthook = hook
    return previous


def run_window(files: list[Path], settings_file: Path | None = None) -> int:
    """Open the window with ``files`` queued and run until it closes; the exit status.

    Settings live in ``settings_file`` (an ini file) when given, else in the user's."""
    app = application()
    if settings_file is not None:
        qs = QSettings(str(settings_file), QSettings.Format.IniFormat)
    else:
        qs = QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
        )
    window = MainWindow()
    from upscaler_edge.cluster.cli import address_file

    controller = MainController(window, qs, cluster_address_file=address_file())
    previous_hook = _report_uncaught_in(window)
    if files:
        controller.add_paths(files)
    window.show()
    try:
        status = app.exec()
    finally:
        controller.shutdown()
        sys.excepthook = previous_hook
    return int(status)
