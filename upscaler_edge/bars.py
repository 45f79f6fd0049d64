"""The CLI's tqdm progress bars: files across a batch and tiles within a file."""

from __future__ import annotations

from typing import Any, TextIO

__all__ = ["ProgressBars"]


class ProgressBars:
    """tqdm bars: files across the batch (when more than one) and tiles within a file."""

    def __init__(self, files: int, show: bool, stream: TextIO) -> None:
        self.show, self.stream, self.files = show, stream, files
        self._files_bar: Any = None
        self._tiles_bar: Any = None

    def __enter__(self) -> ProgressBars:
        if self.show and self.files > 1:
            from tqdm import tqdm

            self._files_bar = tqdm(
                total=self.files, unit="file", desc="files", file=self.stream, position=0
            )
        return self

    def tile(self, done: int, total: int) -> None:
        if not self.show:
            return
        if self._tiles_bar is None or done == 0:
            from tqdm import tqdm

            if self._tiles_bar is not None:
                self._tiles_bar.close()
            self._tiles_bar = tqdm(
                total=total,
                unit="tile",
                desc="tiles",
                file=self.stream,
                leave=False,
                position=1 if self._files_bar is not None else 0,
            )
        self._tiles_bar.n = done
        self._tiles_bar.refresh()

    def file_done(self) -> None:
        if self._files_bar is not None:
            self._files_bar.update(1)

    def write(self, line: str, stream: TextIO | None = None) -> None:
        target = stream or self.stream
        if self.show:
            from tqdm import tqdm

            tqdm.write(line, file=target)
        else:
            target.write(line + "\n")

    def __exit__(self, *exc: object) -> None:
        for bar in (self._tiles_bar, self._files_bar):
            if bar is not None:
                bar.close()
