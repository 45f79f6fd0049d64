"""Upscaler Edge's desktop window (PySide6), installed as ``upscaler_edge_gui``.

Entry point: :func:`upscaler_edge_gui.app.main`. The core package never imports this one.
"""

from ._pyside_guard import install as _install_pyside_guard

# before any widget exists: see _pyside_guard for the PySide6 6.12.0 / Python < 3.12 bug
_install_pyside_guard()
