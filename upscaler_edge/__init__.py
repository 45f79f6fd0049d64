"""upscaler-edge: Real-ESRGAN super-resolution on your own machine, through ncnn.

The library API (see docs/API.md): ``Options``, ``Upscaler``, ``upscale_file`` and the
supervised ``Worker``. Importing this package is cheap; ncnn loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Options", "UpscaleResult", "Upscaler", "Worker", "__version__", "upscale_file"]

if TYPE_CHECKING:
    from .options import Options
    from .pipeline import Upscaler, UpscaleResult, upscale_file
    from .worker import Worker

_LAZY = {
    "Options": "options",
    "Upscaler": "pipeline",
    "UpscaleResult": "pipeline",
    "upscale_file": "pipeline",
    "Worker": "worker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
