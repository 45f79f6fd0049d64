"""ncnn .param/.bin -> ONNX: every shipped model converts and matches ncnn on a real photo."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from upscaler_edge.engine import Engine, pick_device
from upscaler_edge.models import ModelSpec, default_registry
from upscaler_edge.ncnn_param import global_pools

pytest.importorskip("onnx", reason="the openvino extra (onnx) is not installed")
from upscaler_edge import ncnn2onnx
from upscaler_edge.ncnn2onnx import UnsupportedModelError, convert, onnx_for, parse_param

SHIPPED = [s.name for s in default_registry().specs() if s.kind != "custom"]  # not user models


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def onnx_run(model_bytes: bytes, name: str, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (test extra) is not installed")
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x[None]})[0][0]


def as_input(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255


def test_parse_param_reads_blobs_numbers_and_arrays():
    layers = parse_param(
        "7767517\n2 2\n"
        "Input in 0 1 data\n"
        "Convolution c 1 1 data out 0=8 1=3 5=1 6=216 9=2 -23310=1,1.000000e-01 18=0.5\n"
    )
    conv = layers[1]
    assert (conv.type, conv.bottoms, conv.tops) == ("Convolution", ["data"], ["out"])
    assert conv.params == {0: 8, 1: 3, 5: 1, 6: 216, 9: 2, 10: [0.1], 18: 0.5}
    with pytest.raises(ValueError, match="7767517"):
        parse_param("1 2\nInput in 0 1 data\n")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_converts(name, tmp_path):
    spec = default_registry().resolve(name)
    path = onnx_for(spec, tmp_path)
    import onnx

    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    real_esrgan = {"Conv", "PRelu", "LeakyRelu", "Add", "Sum", "Mul", "Concat", "Resize"}
    # Real-CUGAN and waifu2x: deconvolutions, crops and squeeze-and-excitation blocks
    others = {"ConvTranspose", "Slice", "Shape", "GlobalAveragePool", "Flatten", "Gemm", "Reshape"}
    assert ops <= real_esrgan | others | {"Sigmoid", "Relu", "DepthToSpace", "Identity"}
    assert ("GlobalAveragePool" in ops) == bool(spec.se_blobs)
    assert [i.name for i in model.graph.input] == [spec.input_blob]
    assert [o.name for o in model.graph.output] == [spec.output_blob]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_matches_ncnn_on_a_real_photo(name, photo, onnx_cache):
    """The bare net (before the residual and prepadding arithmetic, which the engines share):
    a window that leaves 16-24 output pixels of real photo per side after prepadding."""
    spec = default_registry().resolve(name)
    size = 32 if name.startswith("realesrgan-x4plus") else 48
    size = -(-(size + 2 * spec.prepadding) // (4 * spec.align)) * 4 * spec.align
    x = as_input(photo[30 : 30 + size, 40 : 40 + size])
    with Engine(spec, pick_device("cpu-ncnn")) as eng:
        want = eng.features(x, spec.output_blob)
    got = onnx_run(onnx_for(spec, onnx_cache).read_bytes(), spec.input_blob, x)
    out = (size - 2 * spec.prepadding) * spec.scale
    assert got.shape == want.shape == (3, out, out)
    assert psnr(got, want) >= 60  # measured 110-130 dB: the same arithmetic, other kernels


def test_a_cut_graph_takes_fed_averages_and_ends_at_a_feature_map(photo, onnx_cache):
    """What a tiled Real-CUGAN run asks for: the net up to its second pool's input with the
    first pool's average fed, and the whole net with every average fed, against ncnn given
    the same feeds; the cut keeps only the layers the output needs."""
    import onnx

    spec = default_registry().resolve("realcugan-se-x2")
    pools = dict((top, bottom) for bottom, top in global_pools(spec.param_path))
    x = as_input(photo[40:100, 30:90])
    rng = np.random.default_rng(3)
    with Engine(spec, pick_device("cpu-ncnn")) as eng:
        gap0 = eng.features(x, pools["gap0"]).mean(axis=(1, 2))
        feeds = {"gap0": gap0}
        want = eng.features(x, pools["gap1"], feeds)
        # made-up averages change the output: a graph that ignored them would fail
        all_feeds = {
            b: (eng.features(x, pools[b]).mean(axis=(1, 2)) * rng.uniform(0.5, 1.5)).astype(
                np.float32
            )
            for b in spec.se_blobs
        }
        want_out = eng.features(x, spec.output_blob, all_feeds)
        plain_out = eng.features(x, spec.output_blob)
    path = onnx_for(spec, onnx_cache, fed=("gap0",), output=pools["gap1"])
    cut = onnx.load(str(path))
    whole = onnx.load(str(onnx_for(spec, onnx_cache)))
    assert len(cut.graph.node) < len(whole.graph.node) / 2
    assert [i.name for i in cut.graph.input] == [spec.input_blob, "gap0"]
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (test extra) is not installed")
    sess = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {spec.input_blob: x[None], "gap0": gap0.reshape(1, -1, 1, 1)})[0][0]
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    path = onnx_for(spec, onnx_cache, fed=spec.se_blobs)
    sess = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    fed = {k: v.reshape(1, -1, 1, 1) for k, v in all_feeds.items()}
    got = sess.run(None, {spec.input_blob: x[None], **fed})[0][0]
    assert psnr(got, want_out) >= 60 and psnr(plain_out, want_out) < 50
    assert onnx_for(spec, onnx_cache, fed=spec.se_blobs) == path  # cached
    with pytest.raises(ValueError, match="not a value"):
        onnx_for(spec, onnx_cache, fed=("gap9",))


# -- hand-written graphs: the layer types Real-CUGAN and waifu2x use, and weight storage ----


class Graph:
    """Writes a .param text and its .bin bytes layer by layer, with random weights."""

    def __init__(self, seed: int = 0) -> None:
        self.lines: list[str] = []
        self.blobs: set[str] = set()
        self.bin = bytearray()
        self.rng = np.random.default_rng(seed)

    def layer(self, kind: str, name: str, ins: list[str], outs: list[str], params: str = ""):
        self.lines.append(f"{kind} {name} {len(ins)} {len(outs)} {' '.join(ins + outs)} {params}")
        self.blobs.update(outs)

    def weights(self, n: int, storage: str = "fp32") -> None:
        w = (self.rng.standard_normal(n) * 0.2).astype(np.float32)
        if storage == "fp16":
            data = w.astype("<f2").tobytes()
            self.bin += struct.pack("<I", 0x01306B47) + data + b"\0" * (-len(data) % 4)
        elif storage == "codebook":
            table = np.linspace(-0.5, 0.5, 256, dtype=np.float32)
            index = self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            self.bin += struct.pack("<I", 0x00010203) + table.tobytes()
            self.bin += index + b"\0" * (-len(index) % 4)
        elif storage == "int8":
            self.bin += struct.pack("<I", 0x000D4B38) + bytes(n + (-n % 4))
        else:
            self.bin += struct.pack("<I", 0) + w.tobytes()

    def raw(self, n: int, low: float = -0.3, high: float = 0.3) -> None:
        self.bin += self.rng.uniform(low, high, n).astype(np.float32).tobytes()

    def text(self) -> str:
        return f"7767517\n{len(self.lines)} {len(self.blobs)}\n" + "\n".join(self.lines) + "\n"

    def save(self, folder: Path, name: str) -> tuple[Path, Path]:
        param, weights = folder / f"{name}.param", folder / f"{name}.bin"
        param.write_text(self.text())
        weights.write_bytes(bytes(self.bin))
        return param, weights


def many_layers_graph() -> Graph:
    g = Graph()
    g.layer("Input", "in", [], ["data"], "0=20 1=16 2=3")
    g.layer("Split", "sp", ["data"], ["d0", "d1", "d2", "d3"])
    g.layer("Convolution", "c1", ["d0"], ["c1"], "0=8 1=3 4=1 5=1 6=216 9=2 -23310=1,1.0e-01")
    g.weights(216, "fp16")
    g.raw(8)
    g.layer(
        "ConvolutionDepthWise",
        "dw",
        ["c1"],
        ["dw"],
        "0=8 1=3 4=1 5=1 6=72 7=8 9=3 -23310=2,-2.0e-01,2.0e-01",
    )
    g.weights(72, "codebook")
    g.raw(8)
    g.layer("PReLU", "pr", ["dw"], ["pr"], "0=8")
    g.raw(8)
    g.layer("Split", "sp2", ["pr"], ["pa", "pb", "pc"])
    # squeeze and excitation, as Real-CUGAN and waifu2x cunet do it
    g.layer("Pooling", "gap", ["pa"], ["gap"], "0=1 4=1")
    g.layer("InnerProduct", "fc1", ["gap"], ["fc1"], "0=4 1=1 2=32 9=1")
    g.weights(32)
    g.raw(4)
    g.layer("InnerProduct", "fc2", ["fc1"], ["fc2"], "0=8 1=1 2=32 9=4")
    g.weights(32)
    g.raw(8)
    g.layer("Split", "sp5", ["fc2"], ["fa", "fb"])
    g.layer("BinaryOp", "se", ["pb", "fa"], ["se"], "0=2")
    g.layer("Scale", "sc", ["pc", "fb"], ["sc"], "0=-233")  # waifu2x's form of the same
    g.layer("Eltwise", "both", ["se", "sc"], ["both"], "0=1")
    g.layer("Deconvolution", "dc", ["both"], ["dc"], "0=4 1=4 3=2 4=1 5=1 6=512 9=1")
    g.weights(512)
    g.raw(4)
    g.layer("Interp", "bil", ["d1"], ["bil"], "0=2 1=2.0 2=2.0")
    g.layer("Convolution", "c2", ["bil"], ["c2"], "0=4 1=1 5=1 6=12 9=4")
    g.weights(12)
    g.raw(4)
    g.layer("Eltwise", "prod", ["dc", "c2"], ["prod"], "0=0")
    g.layer("BinaryOp", "rsub", ["prod"], ["rsub"], "0=7 1=1 2=5.0e-01")
    g.layer("Interp", "cub", ["d2"], ["cub"], "0=3 1=2.0 2=2.0")
    g.layer("Split", "sp4", ["cub"], ["cub_a", "cub_b"])
    g.layer("Interp", "near", ["d3"], ["near"], "0=1 1=2.0 2=2.0")
    g.layer("Eltwise", "mix", ["cub_a", "near"], ["mix"], "0=1 -23301=2,7.0e-01,3.0e-01")
    g.layer("Eltwise", "mixmax", ["mix", "cub_b"], ["mixmax"], "0=2")
    g.layer("Concat", "cat", ["rsub", "mixmax"], ["cat"], "0=0")
    g.layer("Split", "sp3", ["cat"], ["ca", "cb"])
    g.layer("Crop", "crop", ["ca"], ["crop"], "-23309=2,2,3 -23310=2,-2,-3 -23311=2,1,2")
    g.layer("Padding", "pad", ["crop"], ["pad"], "0=1 1=1 2=2 3=2 4=2")
    g.layer("Split", "sp6", ["pad"], ["pad_a", "pad_b"])  # ncnn: one reader per blob
    g.layer("Crop", "crop2", ["cb", "pad_a"], ["crop2"], "0=1 1=1")  # to pad's size
    g.layer("BinaryOp", "max", ["pad_b", "crop2"], ["max"], "0=4")
    g.layer("ReLU", "lrelu", ["max"], ["lrelu"], "0=2.0e-01")
    g.layer(
        "Convolution",
        "c3",
        ["lrelu"],
        ["c3"],
        "0=12 1=3 4=1 5=1 6=756 9=6 -23310=2,2.0e-01,5.0e-01",
    )
    g.weights(756)
    g.raw(12)
    g.layer("PixelShuffle", "ps", ["c3"], ["out"], "0=2")
    return g


def test_layer_types_beyond_real_esrgan_match_ncnn(tmp_path, photo):
    """Deconvolution, depthwise, squeeze-and-excitation (Pooling, InnerProduct, BinaryOp
    broadcast), Crop (arrays and to another blob), Padding, Scale, Eltwise with coefficients,
    every Interp mode and fused activation, fp16 and codebook weights: against ncnn itself."""
    import ncnn

    param, weights = many_layers_graph().save(tmp_path, "many")
    x = as_input(photo[10:26, 20:40])
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    with net.create_extractor() as ex:
        ex.input("data", ncnn.Mat(x))
        rc, mat = ex.extract("out")
        assert rc == 0
        want = np.array(mat)
    net.clear()
    model = convert(param.read_text(), weights.read_bytes(), "data", "out")
    got = onnx_run(model.SerializeToString(), "data", x)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4


def test_an_unknown_layer_type_is_refused_by_name():
    g = Graph()
    g.layer("Input", "in", [], ["data"])
    g.layer("Swish", "sw", ["data"], ["a"])
    g.layer("FancyWarp", "fw", ["a"], ["out"])
    with pytest.raises(UnsupportedModelError, match="FancyWarp, Swish"):
        convert(g.text(), bytes(g.bin))


def test_int8_weights_are_refused():
    g = Graph()
    g.layer("Input", "in", [], ["data"])
    g.layer("Convolution", "c", ["data"], ["out"], "0=4 1=1 6=12")
    g.weights(12, "int8")
    with pytest.raises(UnsupportedModelError, match="int8"):
        convert(g.text(), bytes(g.bin))


def test_a_bin_shorter_than_the_param_is_refused():
    g = Graph()
    g.layer("Input", "in", [], ["data"])
    g.layer("Convolution", "c", ["data"], ["out"], "0=4 1=3 6=108")
    g.bin += struct.pack("<I", 0) + bytes(40)
    with pytest.raises(UnsupportedModelError, match="ends before"):
        convert(g.text(), bytes(g.bin))


def test_conversion_is_cached_by_the_files_hashes(tmp_path, monkeypatch):
    g = Graph()
    g.layer("Input", "in", [], ["data"])
    g.layer("Convolution", "c", ["data"], ["output"], "0=12 1=3 4=1 5=1 6=324")
    g.weights(324)
    g.raw(12)
    param, weights = g.save(tmp_path, "tiny-x1")
    spec = ModelSpec("tiny-x1", 1, param, weights)
    cache = tmp_path / "cache"
    first = onnx_for(spec, cache)
    assert first.is_file() and first.parent == cache

    def no_conversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(ncnn2onnx, "convert", no_conversion)
    assert onnx_for(spec, cache) == first
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")  # the weights change
    monkeypatch.undo()
    second = onnx_for(spec, cache)
    assert second != first and second.is_file()
