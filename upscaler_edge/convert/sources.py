"""What an imported model file is: its channels, scale and size rules, a file pnnx can convert,
and a reference runner (onnxruntime or torch) to check the conversion against.

ONNX needs ``onnx`` and ``onnxruntime``; PyTorch files (.pth, .pt, .safetensors, .ckpt) need
``spandrel`` and ``torch`` (the ``convert`` extra). Pickled files are opened only through
spandrel's restricted unpickler, which refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

__all__ = ["TRANSFORMER_ARCHS", "ImportRefused", "Source", "load_source"]

log = logging.getLogger(__name__)

#: spandrel architectures built on attention: ncnn's tiles would cut their windows, and pnnx
#: does not convert them faithfully. Refused by name.
TRANSFORMER_ARCHS = frozenset(
    {"ATD", "DAT", "DRCT", "FDAT", "GRL", "HAT", "IPT", "MoSR", "RGT", "SRFormer", "Swin2SR"}
    | {"SwinIR", "Uformer", "RestoreFormer", "FFTformer", "RetinexFormer", "MoESR", "SeemoRe"}
)
_EXTRA = 'pip install "upscaler-edge[convert]"'
_ALIGNS = (1, 2, 4, 8, 16)


class ImportRefused(ModelError):
    """The model cannot be imported; the message says why in one line. Nothing was added."""


@dataclass(frozen=True)
class Source:
    """A model file ready to convert. ``run`` maps (1, C, h, w) float32 in [0, 1] to (1, C,
    h*s, w*s) with the original framework; ``convertible`` is what pnnx reads."""

    kind: str  # "ONNX" or the spandrel architecture's name
    channels: int
    scale: int
    align: int
    convertible: Path
    run: Callable[[np.ndarray], np.ndarray]


def load_source(path: Path, workdir: Path, scale: int | None) -> Source:
    """Open ``path`` by its suffix; raises ImportRefused with the reason."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _onnx_source(path, workdir, scale)
    if suffix in (".pth", ".pt", ".safetensors", ".ckpt"):
        return _torch_source(path, workdir, scale)
    raise ImportRefused(
        f"{path.name}: not a model file this can import (.onnx, .pth, .pt, .safetensors, .ckpt)"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _probe(run: Callable[[np.ndarray], np.ndarray], channels: int, what: str) -> tuple[int, int]:
    """(scale, align) from running the model on small inputs: the scale from a 64x64 input,
    the alignment as the smallest step above 64 px that still gives that exact scale."""
    x = np.random.default_rng(1).random((1, channels, 64, 64), dtype=np.float32)
    try:
        y = run(x)
    except Exception as exc:
        raise ImportRefused(f"{what} does not run on a 64x64 image ({_first_line(exc)})") from exc
    if y.ndim != 4 or y.shape[1] != channels:
        raise ImportRefused(
            f"{what} gives {tuple(y.shape)} for (1, {channels}, 64, 64): not an image model "
            f"with {channels} channels in and out"
        )
    sh, sw = y.shape[2] / 64, y.shape[3] / 64
    if sh != sw or sh != int(sh) or sh < 1:
        raise ImportRefused(f"{what} does not upscale by a whole factor (x{sh:g} by x{sw:g})")
    scale = int(sh)
    for align in _ALIGNS:
        n = 64 + align
        try:
            y = run(np.zeros((1, channels, n, n + align), np.float32))
        except Exception:
            continue
        if y.shape[2:] == (n * scale, (n + align) * scale):
            return scale, align
    raise ImportRefused(f"{what} runs only at fixed sizes (tried steps up to 16 px)")


def _onnx_source(path: Path, workdir: Path, scale: int | None) -> Source:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportRefused(f"importing ONNX models needs onnx and onnxruntime: {_EXTRA}") from exc
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ImportRefused(f"{path.name}: not a readable ONNX model ({_first_line(exc)})") from exc
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ImportRefused(
            f"{path.name}: a super-resolution model has one input and one output "
            f"(this has {len(inputs)} and {len(graph.output)})"
        )
    ops = {node.op_type for node in graph.node}
    if ("Softmax" in ops and ops & {"MatMul", "Einsum"}) or ops & {
        "Attention",
        "LayerNormalization",
    }:
        raise ImportRefused(
            f"{path.name}: a transformer model (attention layers); those (SwinIR, HAT, DAT...) "
            "cannot run tiled through ncnn: use a convolutional model"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ImportRefused(f"{path.name}: its input is not an image batch (N, C, H, W)")
    channels = dims[1].dim_value
    if channels not in (1, 3):
        raise ImportRefused(
            f"{path.name}: takes {channels or 'an unknown number of'} channels; "
            "only RGB (3) and grayscale (1) models are supported"
        )
    fixed = [d.dim_value for d in dims[2:] if d.dim_value > 0]
    # let height and width vary: the tiles have every size
    for d, label in zip(dims[2:], ("height", "width"), strict=True):
        d.ClearField("dim_value")
        d.dim_param = label
    for d in graph.output[0].type.tensor_type.shape.dim:
        d.ClearField("dim_value")
    del graph.value_info[:]
    dynamic = workdir / "model.onnx"
    onnx.save(model, str(dynamic))
    try:
        session = ort.InferenceSession(str(dynamic), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ImportRefused(
            f"{path.name}: onnxruntime cannot load it ({_first_line(exc)})"
        ) from exc
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x.astype(np.float32)})[0])

    what = path.name
    try:
        found, align = _probe(run, channels, what)
    except ImportRefused as exc:
        if fixed:
            raise ImportRefused(
                f"{path.name}: fixed input size {'x'.join(map(str, fixed))} px; re-export it "
                "with dynamic height and width (torch.onnx.export dynamic_axes)"
            ) from exc
        raise
    _check_scale(found, scale, what)
    return Source("ONNX", channels, found, align, dynamic, run)


def _check_scale(found: int, asked: int | None, what: str) -> None:
    if asked is not None and asked != found:
        raise ImportRefused(f"{what} upscales x{found}, not x{asked} (leave out --scale)")


def _torch_source(path: Path, workdir: Path, scale: int | None) -> Source:
    try:
        import spandrel
        import torch
    except ImportError as exc:
        raise ImportRefused(f"importing PyTorch models needs spandrel and torch: {_EXTRA}") from exc
    try:
        desc: Any = spandrel.ModelLoader(device="cpu").load_from_file(path)
    except spandrel.UnsupportedModelError as exc:
        raise ImportRefused(f"{path.name}: spandrel does not recognise this architecture") from exc
    except Exception as exc:
        if path.suffix.lower() in (".pth", ".ckpt", ".pt"):
            raise ImportRefused(
                f"{path.name}: cannot be opened safely ({_first_line(exc)}); pickled files are "
                "read only through spandrel's restricted unpickler: prefer .safetensors"
            ) from exc
        raise ImportRefused(f"{path.name}: not a readable model ({_first_line(exc)})") from exc
    arch = desc.architecture.id
    if arch in TRANSFORMER_ARCHS:
        raise ImportRefused(
            f"{path.name}: {arch} is a transformer model; those cannot run tiled through ncnn: "
            "use a convolutional model (ESRGAN, Compact, SPAN, ...)"
        )
    if desc.purpose not in ("SR", "Restoration"):
        raise ImportRefused(f"{path.name}: a {desc.purpose} model ({arch}), not super-resolution")
    channels = desc.input_channels
    if channels not in (1, 3) or desc.output_channels != channels:
        raise ImportRefused(
            f"{path.name}: {desc.input_channels} channels in, {desc.output_channels} out; "
            "only RGB (3) and grayscale (1) models are supported"
        )
    req = desc.size_requirements
    if req.square:
        raise ImportRefused(f"{path.name}: {arch} needs square inputs, which tiles are not")
    module = desc.model.eval().float()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    align = max(1, req.multiple_of)
    side = max(64, req.minimum)
    side += (-side) % align
    example = torch.rand(1, channels, side, side)
    traced_path = workdir / "model.pt"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice
            traced = torch.jit.trace(module, example, check_trace=False)
        traced.save(str(traced_path))
    except Exception as exc:
        raise ImportRefused(f"{path.name}: {arch} cannot be traced ({_first_line(exc)})") from exc
    found = int(desc.scale)
    _check_scale(found, scale, path.name)
    return Source(arch, channels, found, align, traced_path, run)
