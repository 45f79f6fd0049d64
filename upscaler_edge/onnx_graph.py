"""Whole ONNX graphs from ncnn models, and cuts of them.

:func:`convert` turns an ncnn ``.param`` text and ``.bin`` weights into an ONNX model (NCHW,
batch 1, dynamic height and width, input and output named as the ncnn blobs are) with the
layer converters of :mod:`upscaler_edge.onnx_layers`; layer types outside
:data:`~upscaler_edge.onnx_layers.SUPPORTED` raise :class:`UnsupportedModelError` naming
them, so the caller can fall back to ncnn. :func:`subgraph` cuts such a graph: some values
become inputs instead of being computed (the shared squeeze-and-excitation averages of a
tiled run), and it ends at another value (the feature map a global pool averages), keeping
only the nodes it needs; :func:`split_aliases` maps ncnn blobs to the graph's values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .ncnn_files import NcnnLayer, UnsupportedModelError, _Weights, parse_param
from .onnx_layers import _CONVERTERS, SUPPORTED, _Builder

if TYPE_CHECKING:
    import onnx

__all__ = ["CONVERTER_VERSION", "OPSET", "convert", "split_aliases", "subgraph"]

log = logging.getLogger("upscaler_edge.ncnn2onnx")

#: Bumped whenever the converter's output changes, so cached graphs are rebuilt.
CONVERTER_VERSION = 1
OPSET = 17


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
