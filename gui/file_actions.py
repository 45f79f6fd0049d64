"""Files in and out through the desktop: open dialogs, paste, the output folder picker,
opening a result or its folder in the system's own apps, and File > Import model….

Everything that arrives becomes a list of paths handed to ``add_paths``; nothing here knows
how the queue works. An imported model is converted on a background thread (it can take a
minute) and then offered in the model picker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox

from .dropzone import IMAGE_SUFFIXES, paths_from_mime
from .main_window import MainWindow
from .model_choice import load_model_entries
from .outputs import unique_path
from .queue_model import QueueItem, QueueModel
from .video import VIDEO_SUFFIXES

__all__ = ["MODEL_SUFFIXES", "FileActions", "default_paste_dir"]

#: What File > Import model… offers (ONNX, then the PyTorch files spandrel reads).
MODEL_SUFFIXES = (".onnx", ".safetensors", ".pth", ".pt", ".ckpt")

log = logging.getLogger(__name__)


def default_paste_dir() -> Path:
    """Where a pasted picture is saved (its result lands beside it)."""
    return Path.home() / "Pictures" / "Upscaler Edge"


class FileActions(QObject):
    """File > Open / Open folder / Paste / Import model…, Browse… for the output folder,
    Open / Folder. ``model_imported(name)`` or ``import_failed(reason)`` ends an import."""

    model_imported = Signal(str)
    import_failed = Signal(str)
    _import_done = Signal(object)  # from the import thread: an ImportedModel or the reason

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
        window.import_model_action.triggered.connect(lambda *_: self.import_model())
        self._import_done.connect(self._finish_import)
        self._importing: threading.Thread | None = None

    def open_files(self) -> None:
        """File > Open: pick images or videos."""
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        videos = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(
            self._window,
            "Open images or videos",
            self._last_dir(),
            f"Images and videos ({patterns} {videos});;Images ({patterns});;"
            f"Videos ({videos});;All files (*)",
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

    # --- models ----------------------------------------------------------------------------

    def import_model(self, path: Path | None = None, name: str | None = None) -> bool:
        """File > Import model…: pick a model file and a name (asked when not given), then
        convert and check it on a thread; the picker offers it when done. False when nothing
        was started (cancelled, or an import is already running)."""
        if self._importing is not None and self._importing.is_alive():
            self._window.show_status("A model is already being imported", 5000)
            return False
        if path is None:
            patterns = " ".join(f"*{s}" for s in MODEL_SUFFIXES)
            picked, _ = QFileDialog.getOpenFileName(
                self._window,
                "Import a super-resolution model",
                str(Path.home()),
                f"Models ({patterns});;All files (*)",
            )
            if not picked:
                return False
            path = Path(picked)
        if name is None:
            from upscaler_edge.convert import default_name

            text, ok = QInputDialog.getText(
                self._window,
                "Import model",
                "Name (what the model picker and -m call it):",
                QLineEdit.EchoMode.Normal,
                default_name(path),
            )
            if not ok or not text.strip():
                return False
            name = text.strip()
        self._window.show_status(f"Importing {path.name} as {name}: converting and checking…")
        self._window.import_model_action.setEnabled(False)
        self._importing = threading.Thread(
            target=self._run_import, args=(path, name), name="import-model", daemon=True
        )
        self._importing.start()
        return True

    def _run_import(self, path: Path, name: str) -> None:
        try:
            from upscaler_edge.convert import import_model

            result: object = import_model(path, name)
        except Exception as exc:  # one line for the user, whatever failed
            log.info("import failed", exc_info=True)
            text = str(exc).strip().splitlines()
            result = text[0] if text else type(exc).__name__
        self._import_done.emit(result)

    def _finish_import(self, result: object) -> None:
        self._window.import_model_action.setEnabled(True)
        if isinstance(result, str):
            self._window.show_status(f"Model not imported: {result}")
            QMessageBox.warning(self._window, "Model not imported", result)
            self.import_failed.emit(result)
            return
        name = getattr(result, "name", "")
        panel = self._window.panel
        entries, error = load_model_entries()
        panel.set_models(entries)
        panel.set_model_name(name)
        panel.changed.emit()
        self._window.show_status(
            f"Imported {name} (x{getattr(result, 'scale', '?')}); it is selected in Model"
        )
        if error:
            self._window.show_status(error)
        self.model_imported.emit(name)

    def wait_for_import(self, timeout: float | None = None) -> None:
        """Block until a running import's thread ends (tests, shutdown)."""
        if self._importing is not None:
            self._importing.join(timeout)
