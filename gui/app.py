"""Entry point of the desktop window: ``upscaler-edge-gui`` and ``python -m upscaler_edge --gui``.

``main(argv)`` returns an exit status and never calls ``sys.exit``. This module imports no Qt
at import time: without PySide6, ``main`` says in one line how to install it and returns 2.
``--screenshot FILE`` opens the window with the bundled sample, upscales it with the small fast
model, shows the comparison, saves the window to FILE and exits (works headless with
QT_QPA_PLATFORM=offscreen).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

__all__ = ["EXIT_NO_QT", "build_parser", "main", "qt_missing"]

PROG = "upscaler-edge-gui"
#: The exit status when the window cannot start for want of Qt (the CLI's usage status).
EXIT_NO_QT = 2


def build_parser() -> argparse.ArgumentParser:
    """The window's command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
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


def qt_missing(stderr: TextIO | None = None) -> bool:
    """True, after one line on ``stderr``, when Qt cannot be loaded."""
    err = stderr or sys.stderr
    try:
        import PySide6
    except ImportError:
        err.write(f'{PROG}: the desktop window needs PySide6: pip install "upscaler-edge[gui]"\n')
        return True
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as exc:  # PySide6 is there but Qt's own libraries are not
        err.write(f"{PROG}: cannot load Qt: {exc} (see docs/GUI.md for what Qt needs)\n")
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the window (or ``--screenshot``); returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    if qt_missing():
        return EXIT_NO_QT
    if args.screenshot is not None:
        from .screenshot import take_screenshot

        return take_screenshot(args.screenshot)
    from .application import run_window

    return run_window(args.files, args.settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
