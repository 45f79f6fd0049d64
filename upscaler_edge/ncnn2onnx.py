"""ncnn ``.param`` + ``.bin`` -> an ONNX graph with the same weights, for other runtimes.

The conversion is in three modules: :mod:`upscaler_edge.ncnn_files` reads the ncnn files
(:func:`parse_param`, the weights), :mod:`upscaler_edge.onnx_layers` turns each layer into
ONNX nodes (:data:`SUPPORTED` types), and :mod:`upscaler_edge.onnx_graph` builds the whole
graph (:func:`convert`) and cuts of it (:func:`subgraph`). ncnn blobs are (c, h, w) without
a batch axis; the ONNX graph is NCHW with batch 1 and dynamic height and width, input and
output named as the ncnn blobs are. Layer types outside :data:`SUPPORTED` raise
:class:`UnsupportedModelError` naming them, so the caller can fall back to ncnn. This module
re-exports their names.

:func:`onnx_for` converts a model once and keeps the result in the user cache folder, keyed
by the sha256 of both files (and this converter's version). With ``fed`` and ``output`` it
gives a cut of that graph (:func:`subgraph`): some blobs become inputs instead of being
computed (the shared squeeze-and-excitation averages of a tiled run), and the graph ends at
another blob (the feature map a global pool averages), keeping only the layers it needs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import user_cache
from .integrity import sha256
from .ncnn_files import NcnnLayer, UnsupportedModelError, parse_param
from .onnx_graph import CONVERTER_VERSION, convert, split_aliases, subgraph
from .onnx_graph import OPSET as OPSET
from .onnx_layers import SUPPORTED

if TYPE_CHECKING:
    from .models import ModelSpec

__all__ = [
    "SUPPORTED",
    "NcnnLayer",
    "UnsupportedModelError",
    "convert",
    "onnx_cache_dir",
    "onnx_for",
    "parse_param",
    "subgraph",
]

log = logging.getLogger(__name__)


def onnx_cache_dir() -> Path:
    """Where converted graphs are kept: ``<user cache>/upscaler-edge/onnx``."""
    return user_cache.folder() / "onnx"


def onnx_for(
    spec: ModelSpec,
    cache_dir: Path | None = None,
    *,
    fed: Sequence[str] = (),
    output: str | None = None,
) -> Path:
    """The ONNX file for ``spec``, converted on first use and cached by both files' sha256.

    ``fed`` (ncnn blobs given as inputs) and ``output`` (the ncnn blob to end at, by default
    the model's output) give a cut of the graph (:func:`subgraph`), cached beside it. Hashes
    the manifest states are trusted (``verify_model`` checks them before an engine loads); a
    user model's files are hashed here, so an edited one never reuses a stale graph. Raises
    UnsupportedModelError when it cannot convert, ValueError for a blob the graph lacks.
    """
    param_sha = spec.param_sha256 or sha256(spec.param_path)
    bin_sha = spec.bin_sha256 or sha256(spec.bin_path)
    key = hashlib.sha256(
        f"{param_sha}:{bin_sha}:{spec.input_blob}:{spec.output_blob}:v{CONVERTER_VERSION}".encode()
    ).hexdigest()[:32]
    folder = cache_dir or onnx_cache_dir()
    path = folder / f"{spec.name}-{key}.onnx"
    if not path.is_file():
        model = convert(
            spec.param_path.read_text(encoding="utf-8", errors="replace"),
            spec.bin_path.read_bytes(),
            spec.input_blob,
            spec.output_blob,
        )
        _write(path, model.SerializeToString())
        log.info("converted %s to ONNX (%s)", spec.name, path)
    output = output or spec.output_blob
    if not fed and output == spec.output_blob:
        return path
    cut_key = hashlib.sha256(f"{key}:{','.join(fed)}:{output}".encode()).hexdigest()[:16]
    cut_path = folder / f"{spec.name}-{key}-cut-{cut_key}.onnx"
    if cut_path.is_file():
        return cut_path
    import onnx

    alias = split_aliases(
        parse_param(spec.param_path.read_text(encoding="utf-8", errors="replace"))
    )
    whole = onnx.load(str(path))
    cut = subgraph(whole, [alias.get(b, b) for b in fed], alias.get(output, output))
    _write(cut_path, cut.SerializeToString())
    log.debug("cut %s's graph: %s fed, output %s (%s)", spec.name, list(fed), output, cut_path)
    return cut_path


def _write(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (another process may read the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
