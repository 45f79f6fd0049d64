"""Fixtures for the window's tests: headless Qt, settings in tmp_path, real tiny images.

QT_QPA_PLATFORM is set here, at import, before anything imports Qt, so the suite runs without
a display (CI can still override it, e.g. to run under Xvfb).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("PySide6", reason="the gui extra (PySide6) is not installed")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")

from PySide6.QtCore import QSettings
from upscaler_edge_gui.controller import MainController
from upscaler_edge_gui.main_window import MainWindow
from upscaler_edge_gui.settings import GuiSettings, save_settings

from tests.cluster_fixtures import coordinator, workers  # noqa: F401 (the window as a client)

FAST_MODEL = "realesr-animevideov3"


@pytest.fixture(autouse=True)
def _isolated_user_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Any QSettings built from organisation/app names lands in a temp folder, never in the
    user's real settings."""
    folder = str(tmp_path_factory.mktemp("qsettings"))
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)
        QSettings.setPath(fmt, QSettings.Scope.SystemScope, folder)


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    """The ini file a test's window keeps its settings in."""
    return tmp_path / "settings.ini"


@pytest.fixture
def qsettings(settings_file: Path) -> QSettings:
    """Settings preset to the fast model at x4 (each tiny job takes well under a second)."""
    qs = QSettings(str(settings_file), QSettings.Format.IniFormat)
    save_settings(qs, GuiSettings(model=FAST_MODEL, scale=4, format="png"))
    return qs


WindowFactory = Callable[..., tuple[MainWindow, MainController]]


@pytest.fixture
def make_window(qtbot, qsettings: QSettings, tmp_path: Path) -> Iterator[WindowFactory]:
    """Builds a shown window + controller (device probe off unless asked); shuts them down."""
    made: list[tuple[MainWindow, MainController]] = []

    def make(qs: QSettings | None = None, **kwargs: object) -> tuple[MainWindow, MainController]:
        kwargs.setdefault("probe_devices", False)
        kwargs.setdefault("paste_dir", tmp_path / "pasted")
        window = MainWindow()
        qtbot.addWidget(window)
        controller = MainController(window, qs or qsettings, **kwargs)  # type: ignore[arg-type]
        window.show()
        qtbot.waitExposed(window)
        made.append((window, controller))
        return window, controller

    yield make
    for _window, controller in made:
        controller.shutdown()


def _photo_crop(photo: np.ndarray, w: int, h: int, x: int = 40, y: int = 30) -> np.ndarray:
    return np.ascontiguousarray(photo[y : y + h, x : x + w])


@pytest.fixture
def images(tmp_path: Path, photo: np.ndarray) -> list[Path]:
    """Two tiny real photos (48x40 PNG, 40x32 JPEG) in their own folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    a = folder / "alpha.png"
    b = folder / "beta.jpg"
    Image.fromarray(_photo_crop(photo, 48, 40)).save(a)
    Image.fromarray(_photo_crop(photo, 40, 32, 60, 60)).save(b, quality=92)
    return [a, b]


@pytest.fixture
def big_image(tmp_path: Path, photo: np.ndarray) -> Path:
    """A 160x160 photo: with tile 32 it takes 25 tiles, long enough to cancel or measure."""
    folder = tmp_path / "big"
    folder.mkdir()
    path = folder / "big.png"
    Image.fromarray(photo).save(path)
    return path


@pytest.fixture
def corrupt_image(tmp_path: Path) -> Path:
    """A file named like a JPEG holding garbage."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    path = folder / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + bytes(range(256)))
    return path
