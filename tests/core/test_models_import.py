"""--import-model: ONNX and PyTorch super-resolution models become ncnn models of the registry,
checked against the original framework; what cannot be imported is refused in one line and
nothing is added."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from upscaler_edge import convert, integrity, models
from upscaler_edge.cli import main
from upscaler_edge.convert.pnnx import find_pnnx
from upscaler_edge.engine import Engine, pick_device
from upscaler_edge.models import Registry, default_registry

onnx = pytest.importorskip("onnx", reason="the convert extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the convert extra is not installed")
if find_pnnx() is None:
    pytest.skip("no pnnx converter (the convert extra is not installed)", allow_module_level=True)

from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch):
    """A private user models folder and verification cache."""
    folder = tmp_path / "user-models"
    monkeypatch.setattr(models, "user_models_dir", lambda: folder)
    monkeypatch.setattr(convert, "user_models_dir", lambda: folder)
    monkeypatch.setattr(integrity, "_cache_file", lambda: tmp_path / "cache" / "verified.json")
    default_registry.cache_clear()
    yield folder
    default_registry.cache_clear()


def tiny_onnx(path, channels=3, scale=2, fixed=None, attention=False, seed=0, feat=8) -> np.ndarray:
    """Conv 3x3 -> PRelu -> Conv 3x3 -> DepthToSpace: a tiny SR net with random weights.
    ``fixed`` gives the input a fixed (H, W); ``attention`` adds a Softmax(MatMul) branch."""
    rng = np.random.default_rng(seed)
    c = channels
    w1 = (rng.standard_normal((feat, c, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((c * scale * scale, feat, 3, 3)) * 0.3).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(np.zeros(feat, np.float32), "b1"),
        numpy_helper.from_array(np.full((feat, 1, 1), 0.2, np.float32), "slope"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(np.full(c * scale * scale, 0.1, np.float32), "b2"),
    ]
    conv = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], **conv),
        helper.make_node("PRelu", ["c1", "slope"], ["p1"]),
    ]
    last = "p1"
    if attention:
        nodes += [
            helper.make_node("MatMul", ["p1", "p1"], ["qk"]),
            helper.make_node("Softmax", ["qk"], ["att"], axis=-1),
            helper.make_node("MatMul", ["att", "p1"], ["mixed"]),
        ]
        last = "mixed"
    nodes += [
        helper.make_node("Conv", [last, "w2", "b2"], ["c2"], **conv),
        helper.make_node("DepthToSpace", ["c2"], ["output"], blocksize=scale, mode="CRD"),
    ]
    h, w = fixed or ("h", "w")
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c, None, None])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w1


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x[None].astype(np.float32)})[0][0]


def psnr(a, b, peak=1.0):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(peak**2 / mse)


def test_onnx_model_imported_through_the_cli_matches_onnxruntime(tmp_path, user_dir, capsys, photo):
    src = tmp_path / "Tiny Net.onnx"
    tiny_onnx(src)
    assert main(["--import-model", str(src), "--name", "tiny"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "tiny" in out[0] and "x2" in out[0] and "-m tiny" in out[0]
    assert {p.name for p in user_dir.iterdir()} == {"tiny.param", "tiny.bin", "tiny.toml"}
    side = (user_dir / "tiny.toml").read_text()
    for key in ("scale = 2", "context = ", 'input_blob = "in0"', "source_sha256 = "):
        assert key in side

    spec = default_registry().resolve("tiny")
    assert spec.scale == 2 and spec.param_sha256 and spec.context >= 2
    x = np.random.default_rng(3).random((3, 40, 56), dtype=np.float32)
    with Engine(spec, pick_device("cpu")) as eng:
        assert psnr(eng.infer(x), run_onnx(src, x)) >= 45

    # -m works everywhere: the CLI upscales with it, --list-models shows it
    img, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.ascontiguousarray(photo[:40, :48])).save(img)
    assert main([str(img), "-m", "tiny", "-d", "cpu", "-q", "-t", "32", "-o", str(dst)]) == 0
    got = np.asarray(Image.open(dst)).astype(np.float32) / 255
    ref = run_onnx(src, np.asarray(photo[:40, :48], np.float32).transpose(2, 0, 1) / 255)
    ref = np.clip(ref, 0, 1).transpose(1, 2, 0)
    assert psnr(got[4:-4, 4:-4], ref[4:-4, 4:-4]) >= 40  # 8-bit output, mirrored edges aside
    capsys.readouterr()
    assert main(["--list-models"]) == 0
    assert any(line.startswith("tiny ") for line in capsys.readouterr().out.splitlines())


def test_a_corrupt_onnx_is_refused_in_one_line_and_nothing_is_added(tmp_path, user_dir, capsys):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    assert main(["--import-model", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.onnx" in err[0] and "ONNX" in err[0]
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_grayscale_and_fixed_size_onnx_models_are_handled(tmp_path, user_dir):
    gray, fixed = tmp_path / "gray.onnx", tmp_path / "fixed.onnx"
    tiny_onnx(gray, channels=1, scale=3)
    tiny_onnx(fixed, fixed=(32, 32), seed=1)
    g = convert.import_model(gray)
    assert g.channels == 1 and g.scale == 3
    f = convert.import_model(fixed)
    assert f.scale == 2
    spec = default_registry().resolve("gray")
    x = np.random.default_rng(4).random((3, 24, 40), dtype=np.float32)
    with Engine(spec, pick_device("cpu")) as eng:
        y = eng.infer(x)
    ref = np.concatenate([run_onnx(gray, x[c : c + 1]) for c in range(3)])
    assert y.shape == (3, 72, 120) and psnr(y, ref) >= 45


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: tiny_onnx(p, attention=True), "transformer"),
        (lambda p: p.write_text("hello"), "not a readable ONNX model"),
    ],
)
def test_unsupported_onnx_models_are_refused(tmp_path, user_dir, setup, message):
    src = tmp_path / "m.onnx"
    setup(src)
    with pytest.raises(convert.ImportRefused, match=message):
        convert.import_model(src)
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_names_of_existing_models_and_wrong_scales_are_refused(tmp_path, user_dir):
    src = tmp_path / "tiny.onnx"
    tiny_onnx(src)
    with pytest.raises(convert.ImportRefused, match="exists"):
        convert.import_model(src, name="realcugan-se")
    with pytest.raises(convert.ImportRefused, match="x2, not x4"):
        convert.import_model(src, scale=4)
    with pytest.raises(convert.ImportRefused, match="no such file"):
        convert.import_model(tmp_path / "missing.onnx")
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_an_unfaithful_conversion_is_refused(tmp_path, user_dir, monkeypatch):
    src = tmp_path / "tiny.onnx"
    tiny_onnx(src)
    monkeypatch.setattr(convert, "_parity", lambda spec, source, odd=True: 30.0)
    with pytest.raises(convert.ImportRefused, match=r"30\.0 dB < 45 dB"):
        convert.import_model(src)
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_no_converter_says_how_to_get_one(tmp_path, user_dir, monkeypatch):
    src = tmp_path / "tiny.onnx"
    tiny_onnx(src)
    monkeypatch.setattr("upscaler_edge.convert.pnnx.find_pnnx", lambda: None)
    with pytest.raises(convert.ImportRefused, match=r"upscaler-edge\[convert\]"):
        convert.import_model(src)


def test_the_registry_reads_an_imported_sidecar(tmp_path, user_dir):
    src = tmp_path / "tiny.onnx"
    tiny_onnx(src)
    done = convert.import_model(src, name="sidecar-check")
    spec = Registry.load().resolve("sidecar-check")
    assert (spec.scale, spec.context, spec.channels) == (2, done.context, 3)
    assert spec.bin_path == done.bin_path and len(spec.bin_sha256 or "") == 64


# -- PyTorch (spandrel + torch) -----------------------------------------------------------------


@pytest.fixture
def torch_stack():
    torch = pytest.importorskip("torch", reason="torch is not installed (the convert extra)")
    spandrel = pytest.importorskip("spandrel", reason="spandrel is not installed")
    safetensors = pytest.importorskip("safetensors.torch", reason="safetensors not installed")
    return torch, spandrel, safetensors


def test_pytorch_compact_safetensors_imports_and_matches_torch(tmp_path, user_dir, torch_stack):
    torch, _, safetensors = torch_stack
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=2)
    src = tmp_path / "compact.safetensors"
    safetensors.save_file(net.state_dict(), str(src))
    done = convert.import_model(src, name="compact")
    assert (done.scale, done.kind) == (2, "Compact") and done.parity_db >= 45
    spec = default_registry().resolve("compact")
    x = np.random.default_rng(5).random((3, 32, 40), dtype=np.float32)
    with torch.inference_mode():
        ref = net.eval()(torch.from_numpy(x[None])).numpy()[0]
    with Engine(spec, pick_device("cpu")) as eng:
        assert psnr(eng.infer(x), ref) >= 45


def test_pytorch_transformers_are_refused(tmp_path, user_dir, torch_stack):
    _, _, safetensors = torch_stack
    from spandrel.architectures.SwinIR import SwinIR

    net = SwinIR(
        embed_dim=12,
        depths=[1],
        num_heads=[2],
        window_size=4,
        upscale=2,
        upsampler="pixelshuffledirect",
        img_size=16,
    )
    src = tmp_path / "swinir.safetensors"
    safetensors.save_file(net.state_dict(), str(src))
    with pytest.raises(convert.ImportRefused, match="SwinIR is a transformer"):
        convert.import_model(src)
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_pytorch_pixel_unshuffle_rrdb_x2_imports(tmp_path, user_dir, torch_stack, photo):
    torch, _, safetensors = torch_stack
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(1)  # Real-ESRGAN x2plus's layout: pixel-unshuffle by 2, then x4
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2, shuffle_factor=2)
    src = tmp_path / "rrdb-x2.safetensors"
    safetensors.save_file(net.state_dict(), str(src))
    done = convert.import_model(src)
    assert done.name == "rrdb-x2" and done.scale == 2 and done.parity_db >= 45
    img, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.ascontiguousarray(photo[:37, :45])).save(img)  # odd sizes
    assert main([str(img), "-m", "rrdb-x2", "-d", "cpu", "-q", "-t", "32", "-o", str(dst)]) == 0
    assert Image.open(dst).size == (90, 74)
