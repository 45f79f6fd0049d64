"""Files in and out through the desktop: open dialogs, paste, the output folder picker, and
opening a result or its folder in the system's own apps.

Everything that arrives becomes a list of paths handed to ``add_paths``; nothing here knows
how the queue works.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QFileDialog

from .dropzone import IMAGE_SUFFIXES, paths_from_mime
from .main_window import MainWindow
from .outputs import unique_path
from .queue_model import QueueItem, QueueModel

__all__ = ["FileActions", "default_paste_dir"]

log = logging.getLogger(__name__)


def default_paste_dir() -> Path:
    """Where a pasted picture is saved (its result lands beside it)."""
    return Path.home() / "Pictures" / "Upscaler Edge"


class FileActions(QObject):
    """File > Open / Open folder / Paste, Browse… for the output folder, Open / Folder."""

    def __init__(
        self,
        window: MainWindow,
        model: QueueModel,
        add_paths: Callable[[list[Path]], object],
        current_item: Callable[[], QueueItem | None],
        paste_dir: Path | None = None,
    ) -> None:
        super().__init__(window)
        self._window = window
        self._model = model
        self._add_paths = add_paths
        self._current_item = current_item
        self._paste_dir = paste_dir
        window.open_action.triggered.connect(self.open_files)
        window.open_folder_action.triggered.connect(self.open_folder)
        window.paste_action.triggered.connect(self.paste)
        window.open_result_action.triggered.connect(self.open_result)
        window.show_folder_action.triggered.connect(self.show_in_folder)
        window.panel.browse_output_requested.connect(self.browse_output)

    def open_files(self) -> None:
        """File > Open: pick images."""
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(
            self._window, "Open images", self._last_dir(), f"Images ({patterns});;All files (*)"
        )
        if files:
            self._add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        """File > Open folder: every image inside it (recursively)."""
        folder = QFileDialog.getExistingDirectory(self._window, "Open folder", self._last_dir())
        if folder:
            self._add_paths([Path(folder)])

    def _last_dir(self) -> str:
        last = next(reversed(list(self._model)), None)
        return str(last.src.parent) if last else str(Path.home())

    def paste(self) -> None:
        """Edit > Paste: file URLs or paths from the clipboard, else a copied image (saved as a
        PNG in the paste folder, so its result lands there too)."""
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        paths = paths_from_mime(mime) if mime is not None else []
        if paths:
            self._add_paths(paths)
            return
        image = clipboard.image()
        if image.isNull():
            self._window.show_status("Nothing to paste: copy an image or image files", 5000)
            return
        folder = self._paste_dir or default_paste_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._window.show_status(f"Cannot save the pasted image: {exc}")
            return
        path = unique_path(folder / time.strftime("pasted-%Y%m%d-%H%M%S.png"))
        if not image.save(str(path)):  # PNG, by the suffix
            self._window.show_status(f"Cannot save the pasted image to {path}")
            return
        self._add_paths([path])

    def browse_output(self) -> None:
        """Pick the output folder."""
        panel = self._window.panel
        folder = QFileDialog.getExistingDirectory(
            self._window, "Save results to", panel.output_dir() or self._last_dir()
        )
        if folder:
            panel.set_output_dir(folder)

    def open_result(self) -> None:
        """Open the selected result in the system viewer."""
        item = self._current_item()
        if item is not None and item.dst is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(item.dst)))

    def show_in_folder(self) -> None:
        """Open the folder holding the selected result (or input)."""
        item = self._current_item()
        if item is not None:
            target = item.dst if item.dst is not None else item.src
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target.parent)))
