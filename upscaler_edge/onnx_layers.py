"""ncnn layers -> ONNX nodes: one converter per ncnn layer type that our model families use.

:class:`_Builder` accumulates the nodes and initialisers of the graph being built; each
converter in :data:`_CONVERTERS` turns one ncnn layer (its parameters, its weights read from
the ``.bin`` in layer order) into ONNX nodes, with ncnn's fused activations, paddings and
axes (ncnn blobs are (c, h, w) without a batch axis) translated. A layer option ONNX cannot
express raises :class:`UnsupportedModelError` naming the layer. :data:`SUPPORTED` is the set
of types handled; :func:`upscaler_edge.onnx_graph.convert` walks the layers with these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .ncnn_files import NcnnLayer, UnsupportedModelError, _Weights

__all__ = ["SUPPORTED"]


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


_SAME_UPPER, _SAME_LOWER = -233, -234


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
