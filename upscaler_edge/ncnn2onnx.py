"""ncnn ``.param`` + ``.bin`` -> an ONNX graph with the same weights, for other runtimes.

The ``.param`` file is ncnn's text graph: a magic line (7767517), "layers blobs", then one
line per layer: ``Type name n_in n_out in... out... key=value...``; a key of -23300-k holds
array parameter k as ``count,v1,v2,...``. The ``.bin`` file holds the weights of the layers
that have any, in layer order. A weight tensor that ncnn loads with "type 0" (convolution
kernels, inner product matrices) starts with a 4-byte tag: 0 for raw fp32, 0x01306B47 for
fp16, 0x000D4B38 for int8 (with scales elsewhere: refused), 0x0002C056 for fp32 with extra
scaling, any other non-zero tag for a 256-entry fp32 codebook followed by uint8 indices.
Biases, slopes and the like ("type 1") are raw fp32 with no tag.

ncnn blobs are (c, h, w) without a batch axis; the ONNX graph is NCHW with batch 1 and
dynamic height and width, input and output named as the ncnn blobs are. Layer types outside
:data:`SUPPORTED` raise :class:`UnsupportedModelError` naming them, so the caller can fall
back to ncnn.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelError

if TYPE_CHECKING:
    import onnx

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

#: Bumped whenever the converter's output changes, so cached graphs are rebuilt.
CONVERTER_VERSION = 1
OPSET = 17

_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
_TAG_FP32_SCALED = 0x0002C056
_SAME_UPPER, _SAME_LOWER = -233, -234


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


class _Builder:
    """Accumulates ONNX nodes and initialisers; maps ncnn blob names to ONNX value names."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.alias: dict[str, str] = {}
        self._n = 0

    def name(self, blob: str) -> str:
        return self.alias.get(blob, blob)

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def const(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], **attrs))
        return output


# -- layer converters ---------------------------------------------------------------------
# Each takes (builder, layer, weights, ins, out) where ins are ONNX names of the layer's
# inputs and out is the ONNX name its (single) output must get; a layer whose output is
# an alias (Split) records it in builder.alias instead.

_Conv = Callable[[_Builder, NcnnLayer, _Weights, list[str], str], None]


def _activation(b: _Builder, layer: NcnnLayer, x: str, out: str, key: int = 9) -> None:
    """ncnn's fused activation (param 9, its arguments in array 10) applied to ``x``."""
    kind = layer.get(key, 0)
    args = layer.get(key + 1, [])
    if kind == 0:
        b.node("Identity", [x], out)
    elif kind == 1:
        b.node("Relu", [x], out)
    elif kind == 2:
        b.node("LeakyRelu", [x], out, alpha=float(args[0]) if args else 0.0)
    elif kind == 3:
        lo = b.const("min", np.array(args[0] if args else -3.4e38, np.float32))
        hi = b.const("max", np.array(args[1] if len(args) > 1 else 3.4e38, np.float32))
        b.node("Clip", [x, lo, hi], out)
    elif kind == 4:
        b.node("Sigmoid", [x], out)
    elif kind == 5:
        b.node("Mish", [x], out)
    elif kind == 6:
        alpha = float(args[0]) if args else 0.2
        beta = float(args[1]) if len(args) > 1 else 0.5
        hs = b.node("HardSigmoid", [x], b.fresh("hsig"), alpha=alpha, beta=beta)
        b.node("Mul", [x, hs], out)
    else:
        raise UnsupportedModelError(f"layer {layer.name}: activation type {kind} is unknown")


def _pads(layer: NcnnLayer, base: int = 4) -> tuple[list[int], str | None]:
    """ONNX pads (top, left, bottom, right) or an auto_pad mode from ncnn's 4/14/15/16."""
    left = layer.get(base, 0)
    top = layer.get(base + 10, left)
    right = layer.get(base + 11, left)
    bottom = layer.get(base + 12, top)
    if left == _SAME_UPPER:
        return [], "SAME_UPPER"
    if left == _SAME_LOWER:
        return [], "SAME_LOWER"
    if min(left, top, right, bottom) < 0:
        raise UnsupportedModelError(f"layer {layer.name}: padding {left} is not supported")
    return [top, left, bottom, right], None


def _conv_common(layer: NcnnLayer) -> tuple[int, int, int, dict[str, Any]]:
    if layer.get(8, 0):
        raise UnsupportedModelError(f"layer {layer.name}: int8 convolution is not supported")
    if layer.get(19, 0):
        raise UnsupportedModelError(f"layer {layer.name}: dynamic weights are not supported")
    n_out = int(layer.get(0))
    kw = int(layer.get(1))
    kh = int(layer.get(11, kw))
    dw = int(layer.get(2, 1))
    sw = int(layer.get(3, 1))
    attrs = {
        "kernel_shape": [kh, kw],
        "dilations": [int(layer.get(12, dw)), dw],
        "strides": [int(layer.get(13, sw)), sw],
    }
    return n_out, kh, kw, attrs


def _convolution(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    n_out, kh, kw, attrs = _conv_common(layer)
    group = int(layer.get(7, 1)) if layer.type == "ConvolutionDepthWise" else 1
    size = int(layer.get(6))
    if layer.get(18, 0.0):
        raise UnsupportedModelError(f"layer {layer.name}: non-zero pad value is not supported")
    n_in_per_group = size // (n_out * kh * kw)
    weight = w.tagged(size, f"layer {layer.name}").reshape(n_out, n_in_per_group, kh, kw)
    inputs = [ins[0], b.const(f"{layer.name}_w", weight)]
    if layer.get(5, 0):
        inputs.append(b.const(f"{layer.name}_b", w.raw(n_out)))
    pads, auto = _pads(layer)
    if auto:
        attrs["auto_pad"] = auto
    else:
        attrs["pads"] = pads
    if group != 1:
        attrs["group"] = group
    act = layer.get(9, 0)
    y = b.node("Conv", inputs, b.fresh(layer.name) if act else out, **attrs)
    if act:
        _activation(b, layer, y, out)


def _deconvolution(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    n_out, kh, kw, attrs = _conv_common(layer)
    group = int(layer.get(7, 1)) if layer.type == "DeconvolutionDepthWise" else 1
    if layer.get(20, 0) or layer.get(21, 0):
        raise UnsupportedModelError(f"layer {layer.name}: fixed output size is not supported")
    size = int(layer.get(6))
    n_in_per_group = size // (n_out * kh * kw)
    out_per_group = n_out // group
    # ncnn keeps (group, out/group, in/group, kh, kw); ONNX wants (in, out/group, kh, kw)
    weight = w.tagged(size, f"layer {layer.name}")
    weight = weight.reshape(group, out_per_group, n_in_per_group, kh, kw).transpose(0, 2, 1, 3, 4)
    weight = weight.reshape(group * n_in_per_group, out_per_group, kh, kw)
    inputs = [ins[0], b.const(f"{layer.name}_w", weight)]
    if layer.get(5, 0):
        inputs.append(b.const(f"{layer.name}_b", w.raw(n_out)))
    pads, auto = _pads(layer)
    if auto:
        raise UnsupportedModelError(f"layer {layer.name}: SAME padding in a deconvolution")
    attrs["pads"] = pads
    opr = int(layer.get(18, 0))
    opb = int(layer.get(19, opr))
    if opr or opb:
        attrs["output_padding"] = [opb, opr]
    if group != 1:
        attrs["group"] = group
    act = layer.get(9, 0)
    y = b.node("ConvTranspose", inputs, b.fresh(layer.name) if act else out, **attrs)
    if act:
        _activation(b, layer, y, out)


def _relu(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    slope = float(layer.get(0, 0.0))
    if slope == 0.0:
        b.node("Relu", ins, out)
    else:
        b.node("LeakyRelu", ins, out, alpha=slope)


def _prelu(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    n = int(layer.get(0, 0))
    slope = w.raw(n)
    shape = (n, 1, 1) if n > 1 else (1,)
    b.node("PRelu", [ins[0], b.const(f"{layer.name}_slope", slope.reshape(shape))], out)


def _unary(op: str) -> _Conv:
    def convert(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
        b.node(op, ins, out)

    return convert


def _clip(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    lo = b.const("min", np.array(layer.get(0, -3.4e38), np.float32))
    hi = b.const("max", np.array(layer.get(1, 3.4e38), np.float32))
    b.node("Clip", [ins[0], lo, hi], out)


_BINARY = {0: "Add", 1: "Sub", 2: "Mul", 3: "Div", 4: "Max", 5: "Min", 6: "Pow"}
_REVERSED = {7: "Sub", 8: "Div", 9: "Pow"}


def _binary_op(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    kind = int(layer.get(0, 0))
    op = _BINARY.get(kind) or _REVERSED.get(kind)
    if op is None:
        raise UnsupportedModelError(f"layer {layer.name}: BinaryOp type {kind} is unknown")
    if layer.get(1, 0):  # with a scalar
        a, c = ins[0], b.const("scalar", np.array(layer.get(2, 0.0), np.float32))
    else:
        if len(ins) != 2:
            raise UnsupportedModelError(f"layer {layer.name}: BinaryOp needs two inputs")
        a, c = ins
    if kind in _REVERSED:
        a, c = c, a
    b.node(op, [a, c], out)


def _eltwise(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    kind = int(layer.get(0, 0))
    coeffs = [float(c) for c in layer.get(1, [])]
    if kind == 1 and coeffs and any(c != 1.0 for c in coeffs):
        terms = []
        for x, c in zip(ins, coeffs, strict=False):
            if c == 1.0:
                terms.append(x)
            else:
                k = b.const("coeff", np.array(c, np.float32))
                terms.append(b.node("Mul", [x, k], b.fresh(f"{layer.name}_scaled")))
        b.node("Sum", terms, out)
        return
    op = {0: "Mul", 1: "Sum", 2: "Max"}.get(kind)
    if op is None:
        raise UnsupportedModelError(f"layer {layer.name}: Eltwise type {kind} is unknown")
    if op == "Mul":
        acc = ins[0]
        for i, x in enumerate(ins[1:], 1):
            acc = b.node("Mul", [acc, x], out if i == len(ins) - 1 else b.fresh(layer.name))
        return
    b.node(op, ins, out)


def _onnx_axis(axis: int) -> int:
    # ncnn blobs have no batch axis: its axis 0 (channels) is ONNX's axis 1
    return axis if axis < 0 else axis + 1


def _concat(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    b.node("Concat", ins, out, axis=_onnx_axis(int(layer.get(0, 0))))


def _interp(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    mode = int(layer.get(0, 0))
    if layer.get(5, 0) or layer.get(3, 0) or layer.get(4, 0):
        raise UnsupportedModelError(f"layer {layer.name}: Interp to a fixed size")
    hs, ws = float(layer.get(1, 1.0)), float(layer.get(2, 1.0))
    align = bool(layer.get(6, 0))
    scales = b.const("scales", np.array([1.0, 1.0, hs, ws], np.float32))
    attrs: dict[str, Any]
    if mode == 1:  # ncnn: source x = floor(dst x / scale)
        attrs = {
            "mode": "nearest",
            "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor",
        }
    elif mode in (2, 3):
        attrs = {
            "mode": "linear" if mode == 2 else "cubic",
            "coordinate_transformation_mode": "align_corners" if align else "half_pixel",
        }
        if mode == 3:
            attrs["cubic_coeff_a"] = -0.75  # ncnn's bicubic, edges clamped (exclude_outside 0)
    else:
        raise UnsupportedModelError(f"layer {layer.name}: Interp type {mode} is unknown")
    b.node("Resize", [ins[0], "", scales], out, **attrs)


def _pixel_shuffle(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    mode = "CRD" if int(layer.get(1, 0)) == 0 else "DCR"
    b.node("DepthToSpace", ins, out, blocksize=int(layer.get(0, 1)), mode=mode)


def _pooling(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    kind = int(layer.get(0, 0))
    if kind not in (0, 1):
        raise UnsupportedModelError(f"layer {layer.name}: Pooling type {kind} is unknown")
    if layer.get(4, 0):
        b.node("GlobalMaxPool" if kind == 0 else "GlobalAveragePool", ins, out)
        return
    if layer.get(7, 0) or int(layer.get(5, 0)) not in (1,):
        # full padding (ncnn's default, caffe style) can add a row ONNX would not
        raise UnsupportedModelError(f"layer {layer.name}: this Pooling padding mode")
    kw = int(layer.get(1))
    sw = int(layer.get(2, 1))
    attrs: dict[str, Any] = {
        "kernel_shape": [int(layer.get(11, kw)), kw],
        "strides": [int(layer.get(12, sw)), sw],
    }
    if kind == 1:
        attrs["count_include_pad"] = int(layer.get(6, 0))
    left = int(layer.get(3, 0))
    top = int(layer.get(13, left))
    attrs["pads"] = [top, left, int(layer.get(15, top)), int(layer.get(14, left))]
    b.node("MaxPool" if kind == 0 else "AveragePool", ins, out, **attrs)


def _crop(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    big = np.iinfo(np.int64).max
    if 9 in layer.params or 10 in layer.params:  # starts / ends / axes arrays
        starts = [int(v) for v in layer.get(9, [])]
        ends = [int(v) for v in layer.get(10, [])]
        axes = [int(v) for v in layer.get(11, list(range(len(starts))))]
        ends = [big if e == -233 else e for e in ends]  # -233: to the end
        onnx_axes = [_onnx_axis(a) for a in axes]
    elif len(ins) == 2:  # crop to the size of the second blob, from the offsets given
        offsets = b.const("starts", np.array([layer.get(k, 0) for k in (2, 1, 0)], np.int64))
        ref_size = b.node("Shape", [ins[1]], b.fresh(f"{layer.name}_size"), start=1)
        stop = b.node("Add", [offsets, ref_size], b.fresh(f"{layer.name}_ends"))
        all_axes = b.const("axes", np.array([1, 2, 3], np.int64))
        b.node("Slice", [ins[0], offsets, stop, all_axes], out)
        return
    else:
        starts, ends, onnx_axes = [], [], []
        for axis, off, length, off2 in ((1, 2, 5, 8), (2, 1, 4, 7), (3, 0, 3, 6)):
            o, n, o2 = int(layer.get(off, 0)), int(layer.get(length, 0)), int(layer.get(off2, 0))
            if n == -233 or n < 0:
                raise UnsupportedModelError(f"layer {layer.name}: Crop size {n}")
            if o == 0 and n == 0 and o2 == 0:
                continue
            starts.append(o)
            ends.append(o + n if n > 0 else (-o2 if o2 else big))
            onnx_axes.append(axis)
    arrays = [np.array(v, np.int64) for v in (starts, ends, onnx_axes)]
    names = [b.const(h, a) for h, a in zip(("starts", "ends", "axes"), arrays, strict=True)]
    b.node("Slice", [ins[0], *names], out)


def _inner_product(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    # ncnn flattens its input (c, h, w) and gives a 1-D blob; here a 1-D blob of n values is
    # (1, n, 1, 1), which broadcasts against (1, n, h, w) as ncnn's per-channel rule does
    if layer.get(8, 0):
        raise UnsupportedModelError(f"layer {layer.name}: int8 inner product is not supported")
    n_out, size = int(layer.get(0)), int(layer.get(2))
    weight = w.tagged(size, f"layer {layer.name}").reshape(n_out, size // n_out)
    flat = b.node("Flatten", [ins[0]], b.fresh(layer.name), axis=1)
    inputs = [flat, b.const(f"{layer.name}_w", weight)]
    if layer.get(1, 0):
        inputs.append(b.const(f"{layer.name}_b", w.raw(n_out)))
    y = b.node("Gemm", inputs, b.fresh(layer.name), transB=1)
    shape = b.const("shape", np.array([1, n_out, 1, 1], np.int64))
    act = layer.get(9, 0)
    z = b.node("Reshape", [y, shape], b.fresh(layer.name) if act else out)
    if act:
        _activation(b, layer, z, out)


def _padding(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    top, bottom, left, right = (int(layer.get(k, 0)) for k in (0, 1, 2, 3))
    kind = int(layer.get(4, 0))
    if layer.get(6, 0) or layer.get(7, 0) or layer.get(8, 0):
        raise UnsupportedModelError(f"layer {layer.name}: per-channel or depth padding")
    mode = {0: "constant", 1: "edge", 2: "reflect"}.get(kind)
    if mode is None:
        raise UnsupportedModelError(f"layer {layer.name}: Padding type {kind} is unknown")
    pads = b.const("pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
    inputs = [ins[0], pads]
    if mode == "constant":
        inputs.append(b.const("value", np.array(layer.get(5, 0.0), np.float32)))
    b.node("Pad", inputs, out, mode=mode)


def _scale(b: _Builder, layer: NcnnLayer, w: _Weights, ins: list[str], out: str) -> None:
    n = int(layer.get(0, 0))
    if n == -233:
        b.node("Mul", ins, out)
        return
    s = b.const(f"{layer.name}_scale", w.raw(n).reshape(n, 1, 1))
    if not layer.get(1, 0):
        b.node("Mul", [ins[0], s], out)
        return
    y = b.node("Mul", [ins[0], s], b.fresh(layer.name))
    b.node("Add", [y, b.const(f"{layer.name}_bias", w.raw(n).reshape(n, 1, 1))], out)


_CONVERTERS: dict[str, _Conv] = {
    "Convolution": _convolution,
    "ConvolutionDepthWise": _convolution,
    "Deconvolution": _deconvolution,
    "DeconvolutionDepthWise": _deconvolution,
    "ReLU": _relu,
    "PReLU": _prelu,
    "Sigmoid": _unary("Sigmoid"),
    "TanH": _unary("Tanh"),
    "Clip": _clip,
    "BinaryOp": _binary_op,
    "Eltwise": _eltwise,
    "Concat": _concat,
    "Interp": _interp,
    "PixelShuffle": _pixel_shuffle,
    "Pooling": _pooling,
    "Crop": _crop,
    "Padding": _padding,
    "Scale": _scale,
    "InnerProduct": _inner_product,
    "Dropout": _unary("Identity"),
    "Noop": _unary("Identity"),
}

#: ncnn layer types the converter handles (Input and Split are structural).
SUPPORTED = frozenset({"Input", "Split", *_CONVERTERS})


def convert(
    param_text: str, bin_data: bytes, input_blob: str = "data", output_blob: str = "output"
) -> onnx.ModelProto:
    """The ONNX model (opset 17, NCHW, batch 1, dynamic height and width) equivalent to an
    ncnn model. Raises UnsupportedModelError naming every layer type it cannot convert."""
    import onnx
    from onnx import TensorProto, helper

    try:
        layers = parse_param(param_text)
    except (ValueError, IndexError) as exc:
        raise UnsupportedModelError(f"cannot read the .param file: {exc}") from exc
    unknown = sorted({layer.type for layer in layers} - SUPPORTED)
    if unknown:
        raise UnsupportedModelError(f"layer types the ONNX export lacks: {', '.join(unknown)}")
    b = _Builder()
    weights = _Weights(bin_data)
    channels = 3
    for layer in layers:
        if layer.type == "Input":
            channels = int(layer.get(2, 0)) or 3
            continue
        ins = [b.name(x) for x in layer.bottoms]
        if layer.type == "Split":
            for top in layer.tops:
                b.alias[top] = ins[0]
            continue
        if len(layer.tops) != 1:
            raise UnsupportedModelError(f"layer {layer.name}: {len(layer.tops)} outputs")
        _CONVERTERS[layer.type](b, layer, weights, ins, layer.tops[0])
    if weights.pos != len(bin_data):
        log.debug("%d bytes left over in the .bin file", len(bin_data) - weights.pos)
    out = b.name(output_blob)
    if out != output_blob:
        b.node("Identity", [out], output_blob)
    graph = helper.make_graph(
        b.nodes,
        "ncnn2onnx",
        [helper.make_tensor_value_info(input_blob, TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info(output_blob, TensorProto.FLOAT, [1, None, None, None])],
        b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="upscaler-edge ncnn2onnx",
        producer_version=str(CONVERTER_VERSION),
    )
    model.ir_version = min(model.ir_version, 8)  # readable by older runtimes too
    onnx.checker.check_model(model)
    return model


def onnx_cache_dir() -> Path:
    """Where converted graphs are kept: ``<user cache>/upscaler-edge/onnx``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("upscaler-edge", appauthor=False)) / "onnx"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_aliases(layers: Sequence[NcnnLayer]) -> dict[str, str]:
    """ncnn blob -> the ONNX value it is in the converted graph: the outputs of ncnn's Split
    layers are their input's value (the converter makes no node for them)."""
    alias: dict[str, str] = {}
    for layer in layers:
        if layer.type == "Split" and layer.bottoms:
            source = alias.get(layer.bottoms[0], layer.bottoms[0])
            for top in layer.tops:
                alias[top] = source
    return alias


def subgraph(model: onnx.ModelProto, fed: Sequence[str], output: str) -> onnx.ModelProto:
    """``model`` cut so that the values in ``fed`` are graph inputs (their producing nodes
    dropped, shapes from ONNX shape inference: a global pool's (1, C, 1, 1)) and ``output``
    is the only output; nodes, initialisers and fed inputs that ``output`` does not need are
    left out. ValueError when a name is not a value of the graph or ``output`` is fed."""
    import onnx
    from onnx import TensorProto, helper

    g = model.graph
    producers = {out: node for node in g.node for out in node.output}
    known = set(producers) | {i.name for i in g.input}
    for name in (*fed, output):
        if name not in known:
            raise ValueError(f"{name!r} is not a value of the graph")
    if output in fed:
        raise ValueError(f"{output!r} cannot be both fed and the output")
    stops = set(fed) | {i.name for i in g.input} | {i.name for i in g.initializer}
    keep: set[int] = set()
    used_fed: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name in stops:
            if name in fed:
                used_fed.add(name)
            continue
        node = producers.get(name)
        if node is None or id(node) in keep:
            continue
        keep.add(id(node))
        stack.extend(i for i in node.input if i)
    nodes = [n for n in g.node if id(n) in keep]
    needed = {i for n in nodes for i in n.input}
    inits = [t for t in g.initializer if t.name in needed]
    shapes: dict[str, Any] = {}
    if used_fed:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        shapes = {v.name: v for v in inferred.value_info}
    inputs = [i for i in g.input if i.name in needed]
    for name in fed:  # in the caller's order
        if name in used_fed:
            info = shapes.get(name)
            if info is None:
                raise ValueError(f"the shape of {name!r} is unknown")
            inputs.append(info)
    out_info = helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, None, None, None])
    graph = helper.make_graph(nodes, f"{g.name}-cut", inputs, [out_info], inits)
    cut = helper.make_model(graph, opset_imports=list(model.opset_import))
    cut.ir_version = model.ir_version
    cut.producer_name, cut.producer_version = model.producer_name, model.producer_version
    onnx.checker.check_model(cut)
    return cut


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
    param_sha = spec.param_sha256 or _sha256(spec.param_path)
    bin_sha = spec.bin_sha256 or _sha256(spec.bin_path)
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
