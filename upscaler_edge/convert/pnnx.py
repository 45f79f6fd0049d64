"""Running pnnx's standalone converter: a TorchScript or ONNX file -> an ncnn .param/.bin pair.

The converter is one executable (no Python, no torch at run time): ``$PNNX``, ``pnnx`` on the
PATH, or the one inside the ``pnnx`` wheel (found without importing the wheel's Python
package, which imports torch).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ModelError

__all__ = ["ConversionFailed", "find_pnnx", "to_ncnn"]

log = logging.getLogger(__name__)


class ConversionFailed(ModelError):
    """pnnx could not convert the model; the message is its last words."""


def find_pnnx() -> Path | None:
    """The pnnx executable, or None."""
    env = os.environ.get("PNNX")
    if env and Path(env).is_file():
        return Path(env)
    spec = importlib.util.find_spec("pnnx")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        for name in ("pnnx", "pnnx.exe"):
            if (folder / name).is_file():
                return folder / name
    found = shutil.which("pnnx")
    return Path(found) if found else None


def to_ncnn(
    source: Path,
    workdir: Path,
    shapes: tuple[tuple[int, ...], tuple[int, ...]],
    *,
    fp16: bool = True,
    timeout: float = 600,
) -> tuple[Path, Path]:
    """Convert ``source`` (.onnx or TorchScript .pt) in ``workdir``; returns the ncnn .param
    and .bin. ``shapes`` are two input shapes (N, C, H, W) of different sizes, so pnnx keeps
    height and width dynamic. Raises ConversionFailed."""
    exe = find_pnnx()
    if exe is None:
        raise ConversionFailed(
            'no pnnx converter found: pip install "upscaler-edge[convert]" '
            "(or put the pnnx executable on PATH, or set PNNX)"
        )
    param, binf = workdir / "model.ncnn.param", workdir / "model.ncnn.bin"

    def shape(s: tuple[int, ...]) -> str:
        return "[" + ",".join(map(str, s)) + "]f32"

    cmd = [
        str(exe),
        str(source),
        f"inputshape={shape(shapes[0])}",
        f"inputshape2={shape(shapes[1])}",
        f"fp16={int(fp16)}",
        "device=cpu",
        f"ncnnparam={param}",
        f"ncnnbin={binf}",
        f"ncnnpy={workdir / 'model_ncnn.py'}",
        f"pnnxparam={workdir / 'model.pnnx.param'}",
        f"pnnxbin={workdir / 'model.pnnx.bin'}",
        f"pnnxpy={workdir / 'model_pnnx.py'}",
        f"pnnxonnx={workdir / 'model.pnnx.onnx'}",
    ]
    log.info("converting: %s", " ".join(cmd))
    try:
        done = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConversionFailed(f"pnnx failed to run: {exc}") from exc
    log.debug("pnnx said:\n%s%s", done.stdout, done.stderr)
    if done.returncode != 0 or not param.is_file() or not binf.is_file():
        said = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        last = said[-1] if said else f"exit status {done.returncode}"
        raise ConversionFailed(f"pnnx could not convert it ({last})")
    return param, binf
