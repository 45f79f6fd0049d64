"""Reading ncnn's model files for the ONNX converter: the ``.param`` graph and the ``.bin``
weights.

The ``.param`` file is ncnn's text graph: a magic line (7767517), "layers blobs", then one
line per layer: ``Type name n_in n_out in... out... key=value...``; a key of -23300-k holds
array parameter k as ``count,v1,v2,...``. The ``.bin`` file holds the weights of the layers
that have any, in layer order. A weight tensor that ncnn loads with "type 0" (convolution
kernels, inner product matrices) starts with a 4-byte tag: 0 for raw fp32, 0x01306B47 for
fp16, 0x000D4B38 for int8 (with scales elsewhere: refused), 0x0002C056 for fp32 with extra
scaling, any other non-zero tag for a 256-entry fp32 codebook followed by uint8 indices.
Biases, slopes and the like ("type 1") are raw fp32 with no tag.

:func:`parse_param` is the strict reader (the magic line, every layer's parameters typed)
the conversion needs; :mod:`upscaler_edge.ncnn_param` is the lenient one the registry uses
for blob names and global pools. :class:`UnsupportedModelError` is the converter's refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ModelError

__all__ = ["NcnnLayer", "UnsupportedModelError", "parse_param"]

_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
_TAG_FP32_SCALED = 0x0002C056


class UnsupportedModelError(ModelError):
    """The model uses a layer (or a layer option) the converter cannot express in ONNX."""


@dataclass
class NcnnLayer:
    """One line of a ``.param`` file. ``params`` maps ncnn's parameter ids to an int, a
    float or (for arrays) a list of numbers."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, Any] = field(default_factory=dict)

    def get(self, key: int, default: Any = 0) -> Any:
        return self.params.get(key, default)


def _number(text: str) -> int | float:
    # ncnn reads a value as float when it has a '.' or an exponent, else as int
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def parse_param(text: str) -> list[NcnnLayer]:
    """The layers of a ``.param`` text, in file order. ValueError if it is not one."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or int(lines[0].split()[0]) != _MAGIC:
        raise ValueError("not an ncnn .param file (no 7767517 magic)")
    n_layers = int(lines[1].split()[0])
    layers = []
    for line in lines[2 : 2 + n_layers]:
        parts = line.split()
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        bottoms = parts[4 : 4 + n_in]
        tops = parts[4 + n_in : 4 + n_in + n_out]
        params: dict[int, Any] = {}
        for item in parts[4 + n_in + n_out :]:
            key_s, _, value = item.partition("=")
            key = int(key_s)
            if key <= -23300:
                values = value.split(",")
                params[-key - 23300] = [_number(v) for v in values[1 : 1 + int(values[0])]]
            else:
                params[key] = _number(value)
        layers.append(NcnnLayer(kind, name, bottoms, tops, params))
    if len(layers) != n_layers:
        raise ValueError(f"the .param file lists {n_layers} layers but has {len(layers)}")
    return layers


class _Weights:
    """Reads weight tensors from a ``.bin`` in the order the layers ask for them."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise UnsupportedModelError(
                "the .bin file ends before the .param file's weights do (mismatched pair?)"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def raw(self, count: int) -> np.ndarray:
        """``count`` raw fp32 values (ncnn's load type 1)."""
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``count`` values behind a storage tag (ncnn's load type 0), as fp32."""
        tag = int.from_bytes(self._take(4), "little")
        if tag == _TAG_FP16:
            data = self._take((2 * count + 3) // 4 * 4)
            return np.frombuffer(data[: 2 * count], dtype="<f2").astype(np.float32)
        if tag == _TAG_INT8:
            raise UnsupportedModelError(f"{what}: int8-quantised weights are not supported")
        if tag in (0, _TAG_FP32_SCALED):
            return self.raw(count)
        table = np.frombuffer(self._take(256 * 4), dtype="<f4")
        index = np.frombuffer(self._take((count + 3) // 4 * 4)[:count], dtype=np.uint8)
        return table[index].astype(np.float32)
