"""The OpenVINO engine: parity with ncnn, the precision rule, devices, CLI, worker, fallbacks."""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from upscaler_edge import engine as engine_mod
from upscaler_edge.cli import main
from upscaler_edge.engine import Engine, pick_device
from upscaler_edge.errors import UsageError
from upscaler_edge.models import default_registry
from upscaler_edge.ncnn_param import global_pools
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytest.importorskip("onnx", reason="the openvino extra (onnx) is not installed")
from upscaler_edge import ov_engine  # noqa: E402
from upscaler_edge.ov_engine import OpenVinoEngine, choose_precision  # noqa: E402

FAST = Options(model="realesr-animevideov3", scale=2, device="cpu-openvino")


def as_input(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def test_openvino_fp32_matches_ncnn_and_bf16_stays_close(photo):
    spec = default_registry().resolve("realesr-animevideov3-x2")
    x = as_input(photo[40:88, 50:98])
    dev = pick_device("cpu-openvino")
    with Engine(spec, pick_device("cpu-ncnn")) as ncnn_eng:
        want = ncnn_eng.infer(x)
    with OpenVinoEngine(spec, dev, precision="fp32") as eng:
        assert (eng.spec, eng.device, eng.precise, eng.precision) == (spec, dev, False, "f32")
        fp32 = eng.infer(x)
        again = eng.infer(x[:, :20, :36])  # another tile shape, same compiled model
    assert fp32.shape == want.shape == (3, 96, 96) and again.shape == (3, 40, 72)
    assert psnr(fp32, want) >= 60
    with OpenVinoEngine(spec, dev, precision="bf16") as eng:
        low = eng.infer(x)
    assert psnr(low, want) >= 45  # bf16 where the CPU has it, else fp32 again


#: one member per (family, scale); the other members are slow
FIRSTS = {
    "realesrgan-x4plus-anime",
    "realesr-animevideov3-x3",
    "realcugan-se-x2",
    "realcugan-se-x3",
    "realcugan-se-x4",
    "realcugan-pro-x2",
    "realcugan-pro-x3",
    "waifu2x-cunet-x2",
    "waifu2x-cunet-x1-denoise1",
    "waifu2x-upconv7-anime-x2",
    "waifu2x-upconv7-photo-x2",
}
PARITY = [
    n if n in FIRSTS else pytest.param(n, marks=pytest.mark.slow)
    for n in (s.name for s in default_registry().specs() if s.kind != "custom")
]


@pytest.mark.parametrize("name", PARITY)
def test_every_model_on_openvino_matches_ncnn_with_its_own_arithmetic(name, photo):
    """Prepadding, alignment, the residual, and for the squeeze-and-excitation models the fed
    averages and the feature maps se_sync sums: OpenVINO fp32 against ncnn on a real photo."""
    spec = default_registry().resolve(name)
    size = 32 if name.startswith("realesrgan-x4plus") else 40
    size = -(-(size + 2 * spec.prepadding) // (4 * spec.align)) * 4 * spec.align
    x = as_input(photo[30 : 30 + size, 44 : 44 + size])
    with (
        Engine(spec, pick_device("cpu-ncnn")) as ncnn_eng,
        OpenVinoEngine(spec, pick_device("cpu-openvino"), precision="fp32") as eng,
    ):
        want, got = ncnn_eng.infer(x), eng.infer(x)
        out = (size - 2 * spec.prepadding) * spec.scale
        assert got.shape == want.shape == (3, out, out)
        assert psnr(got, want) >= 60
        if not spec.se_blobs:
            return
        pools = {top: bottom for bottom, top in global_pools(spec.param_path)}
        feeds: dict[str, np.ndarray] = {}
        for blob in spec.se_blobs:  # se_sync's passes: each pool's input, earlier ones fed
            f_want = ncnn_eng.features(x, pools[blob], feeds)
            f_got = eng.features(x, pools[blob], feeds)
            assert f_got.shape == f_want.shape
            assert np.abs(f_got - f_want).max() <= 1e-3 * max(1.0, float(np.abs(f_want).max()))
            feeds[blob] = (f_want.mean(axis=(1, 2)) * 0.8).astype(np.float32)  # not its own
        want, got = ncnn_eng.infer(x, feeds), eng.infer(x, feeds)
        assert psnr(got, want) >= 60 and psnr(got, eng.infer(x)) < 60  # the feeds count


def test_a_tiled_se_job_compiles_one_graph_per_pass(photo):
    """A tiled Real-CUGAN job on OpenVINO: the whole net, then for each pool the net up to it
    with the earlier averages fed, then the whole net with all of them fed, and nothing else
    (se_sync's geometry probe reuses the passes' graphs); tiles equal the whole image."""
    from upscaler_edge.imageio import Frame, Picture

    pic = Picture(
        frames=[Frame(rgb=np.ascontiguousarray(photo[60:100, 40:88]))], source_format="PNG"
    )
    opts = Options(model="realcugan-se", scale=2, device="cpu-openvino", precision="fp32")
    with Upscaler() as up:
        whole = up.upscale_picture(pic, opts).frames[0].rgb
        tiled = up.upscale_picture(pic, opts.replace(tile=32)).frames[0].rgb
        plan = up.prepare(opts)
        eng = up.engine_for(plan.spec, plan.device, precision="fp32")
        assert isinstance(eng, OpenVinoEngine)
        compiled = eng.compiled
    spec = plan.spec
    pools = {top: bottom for bottom, top in global_pools(spec.param_path)}
    expected = [(spec.output_blob, ())]
    expected += [(pools[b], tuple(sorted(spec.se_blobs[:i]))) for i, b in enumerate(spec.se_blobs)]
    expected.append((spec.output_blob, tuple(sorted(spec.se_blobs))))
    assert sorted(compiled) == sorted(expected)
    assert np.abs(tiled.astype(int) - whole).max() <= 2


@pytest.mark.parametrize(
    ("model", "scale", "denoise"), [("realcugan-se", 2, 0), ("waifu2x-cunet", 2, 1)]
)
def test_cli_openvino_matches_ncnn_on_se_models(photo_png, tmp_path, model, scale, denoise):
    """-d cpu-openvino (default precision) against -d cpu-ncnn, tiled so that the shared
    averages are computed."""
    outs = {}
    for device in ("cpu-openvino", "cpu-ncnn"):
        dst = tmp_path / f"{device}.png"
        err = io.StringIO()
        argv = [str(photo_png), "-o", str(dst), "-m", model, "-s", str(scale)]
        code = main([*argv, "-n", str(denoise), "-d", device, "-t", "32", "-q"], stderr=err)
        assert code == 0, err.getvalue()
        outs[device] = np.asarray(Image.open(dst).convert("RGB"))
    assert outs["cpu-openvino"].shape == (96, 128, 3)
    mse = np.mean((outs["cpu-openvino"].astype(float) - outs["cpu-ncnn"]) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 50


def test_precision_rule(monkeypatch):
    reg = default_registry()
    rrdb, compact = reg.resolve("realesrgan-x4plus"), reg.resolve("realesr-animevideov3-x4")
    cpu = pick_device("cpu-openvino")
    gpu = engine_mod.DeviceInfo(-1, "Intel GPU", "integrated", backend="openvino", target="GPU.0")
    monkeypatch.setattr(ov_engine, "_cpu_has_bf16", lambda: True)
    assert choose_precision(compact, cpu, "auto", False) == "bf16"  # measured safe
    assert choose_precision(rrdb, cpu, "auto", False) == "f32"  # 7/255 steps in bf16
    assert choose_precision(rrdb, cpu, "bf16", False) == "bf16"  # asked for
    assert choose_precision(compact, cpu, "fp32", False) == "f32"
    assert choose_precision(compact, cpu, "auto", True) == "f32"  # precise
    assert choose_precision(compact, gpu, "auto", False) == "f16"
    assert choose_precision(compact, gpu, "fp32", False) == "f32"
    monkeypatch.setattr(ov_engine, "_cpu_has_bf16", lambda: False)
    assert choose_precision(compact, cpu, "auto", False) == "f32"
    assert choose_precision(compact, cpu, "bf16", False) == "f32"
    for name, verdict in ov_engine.BF16_VERDICTS.items():
        assert reg.resolve(name).name == name and verdict.measured
    # every shipped model is measured, and the table is the bench's latest measurement
    shipped = {s.name for s in reg.specs() if s.kind != "custom"}  # not user models
    assert set(ov_engine.BF16_VERDICTS) == shipped
    bench = Path(__file__).parents[2] / "docs" / "eval" / "openvino.json"
    if bench.is_file():
        import json

        measured = json.loads(bench.read_text())["verdicts"]
        assert set(measured) == set(ov_engine.BF16_VERDICTS)
        for name, v in measured.items():
            verdict = ov_engine.BF16_VERDICTS[name]
            assert (verdict.psnr_db, verdict.max_diff) == (
                round(v["bf16_psnr_db"], 1),
                v["bf16_max_diff"],
            ), name
            assert verdict.ok == v["bf16_ok"], name
    with pytest.raises(UsageError, match="precision"):
        Options(precision="int4")


def test_fp32_speedups_are_the_bench_measurement():
    """ov_engine.FP32_SPEEDUPS is the speed part of docs/eval/openvino.json (one model per
    family, each model given its family's), and the "cpu" rule is "OpenVINO fp32 only where
    measured faster than ncnn"."""
    import json
    import re

    reg = default_registry()
    shipped = {s.name for s in reg.specs() if s.kind != "custom"}
    assert set(ov_engine.FP32_SPEEDUPS) == shipped
    for name, measured in ov_engine.FP32_SPEEDUPS.items():
        assert measured.measured and measured.on in ov_engine.FP32_SPEEDUPS
        # the same net at another scale or noise level: the measured name without its scale
        assert name == measured.on or name.startswith(re.sub(r"-x\d+$", "-", measured.on))
        assert measured.faster == (measured.speedup > 1.0)
    bench = Path(__file__).parents[2] / "docs" / "eval" / "openvino.json"
    if not bench.is_file():
        pytest.skip("docs/eval/openvino.json is not in this checkout")
    results = json.loads(bench.read_text())
    speed = results["speed"]
    assert {m.on for m in ov_engine.FP32_SPEEDUPS.values()} == set(speed)
    for name, measured in ov_engine.FP32_SPEEDUPS.items():
        spm = speed[measured.on]["s_per_mp"]
        assert measured.speedup == round(spm["ncnn"] / spm["openvino fp32"], 2), name
        assert measured.measured == results["speed_date"].split()[0], name
    # what the rule decides from the data: upconv7 is ncnn's in fp32, the compact net is not
    assert not ov_engine.FP32_SPEEDUPS["waifu2x-upconv7-anime-x2-denoise1"].faster
    assert not ov_engine.FP32_SPEEDUPS["waifu2x-upconv7-photo-x2"].faster
    assert ov_engine.FP32_SPEEDUPS["realesr-animevideov3-x2"].faster


def _cpu_job(photo_png: Path, tmp_path: Path, model: str, **kw: object) -> str:
    opts = Options(model=model, device="cpu", tile=32, **kw)  # type: ignore[arg-type]
    with Upscaler(opts) as up:
        dst = tmp_path / f"{model}-{len(list(tmp_path.iterdir()))}.png"
        return up.upscale_file(photo_png, dst, opts).device


def test_cpu_runs_fp32_on_ncnn_where_openvino_fp32_was_measured_slower(
    photo_png, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(ov_engine, "_cpu_has_bf16", lambda: False)  # fp32 on every model
    slow = "waifu2x-upconv7-anime-x2"
    assert not ov_engine.FP32_SPEEDUPS[slow].faster
    with caplog.at_level(logging.INFO):
        device = _cpu_job(photo_png, tmp_path, slow)
    assert device.endswith(", ncnn") and "OpenVINO" not in device
    lines = [r for r in caplog.records if "measured slower" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and slow in lines[0].getMessage()
    assert "OpenVINO" in _cpu_job(photo_png, tmp_path, "realesr-animevideov3-x2")
    # cpu-openvino still forces OpenVINO
    opts = Options(model=slow, device="cpu-openvino", tile=32)
    with Upscaler(opts) as up:
        assert "OpenVINO" in up.upscale_file(photo_png, tmp_path / "ov.png", opts).device
    # a user model (not measured) runs on OpenVINO
    spec = default_registry().resolve(slow)
    assert ov_engine.openvino_is_faster(replace(spec, name="mine-x2"), "f32")


def test_cpu_with_bf16_runs_upconv7_on_openvino_unless_fp32_is_asked(
    photo_png, tmp_path, monkeypatch
):
    monkeypatch.setattr(ov_engine, "_cpu_has_bf16", lambda: True)
    slow = "waifu2x-upconv7-photo-x2"
    assert ov_engine.BF16_VERDICTS[slow].ok and not ov_engine.FP32_SPEEDUPS[slow].faster
    spec = default_registry().resolve(slow)
    eng = ov_engine.open_engine(spec, pick_device("cpu"))
    assert isinstance(eng, OpenVinoEngine) and eng.precision == "bf16"
    eng.close()
    assert "OpenVINO" in _cpu_job(photo_png, tmp_path, slow)
    assert _cpu_job(photo_png, tmp_path, slow, precision="fp32").endswith(", ncnn")
    eng = ov_engine.open_engine(spec, pick_device("cpu"), precision="fp32")
    assert isinstance(eng, Engine) and eng.device.backend == "ncnn"
    eng.close()


def test_devices_and_their_names():
    cpu = pick_device("cpu")
    assert cpu.backend == "best" and cpu.option == "cpu" and not cpu.is_gpu
    assert pick_device("cpu-ncnn").backend == "ncnn"
    ovc = pick_device("cpu-openvino")
    assert (ovc.backend, ovc.target, ovc.option) == ("openvino", "CPU", "cpu-openvino")
    options = [d.option for d in engine_mod.list_devices(backends=True)]
    assert {"cpu", "cpu-ncnn", "cpu-openvino"} <= set(options)
    assert [d.option for d in engine_mod.list_devices()][-1] == "cpu"  # the GUI's list
    missing = next(
        (n for n in ("openvino-npu", "openvino-gpu") if n not in options), "openvino-fpga"
    )
    with pytest.raises(UsageError, match="OpenVINO has no device"):
        pick_device(missing)
    out, err = io.StringIO(), io.StringIO()
    assert main(["--list-devices"], stdout=out, stderr=err) == 0
    assert "cpu-openvino" in out.getvalue() and "cpu-ncnn" in out.getvalue()


def test_cli_upscales_on_cpu_openvino(photo_png, tmp_path):
    outs = {}
    for device in ("cpu-openvino", "cpu-ncnn"):
        dst = tmp_path / f"{device}.png"
        err = io.StringIO()
        argv = [str(photo_png), "-o", str(dst), "-m", "realesr-animevideov3", "-s", "2"]
        code = main([*argv, "-d", device, "-t", "32", "--precision", "fp32"], stderr=err)
        assert code == 0, err.getvalue()
        outs[device] = np.asarray(Image.open(dst).convert("RGB")).astype(int)
    assert outs["cpu-openvino"].shape == (96, 128, 3)
    assert np.abs(outs["cpu-openvino"] - outs["cpu-ncnn"]).max() <= 1


def test_pipeline_tta_alpha_and_the_engine_it_keeps(photo):
    from upscaler_edge.imageio import Frame, Picture

    rgb = np.ascontiguousarray(photo[:24, :32])
    alpha = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    pic = Picture(frames=[Frame(rgb=rgb, alpha=alpha)], source_format="PNG")
    with Upscaler() as up:
        out = up.upscale_picture(pic, FAST.replace(tta=True, tile=32))
        plan = up.prepare(FAST)
        eng = up.engine_for(plan.spec, plan.device)
        assert isinstance(eng, OpenVinoEngine)
        with Upscaler() as other:
            ref = other.upscale_picture(pic, FAST.replace(tta=True, tile=32, device="cpu-ncnn"))
    assert out.frames[0].alpha is not None and out.frames[0].alpha.shape == (48, 64)
    diff = np.abs(out.frames[0].rgb.astype(int) - ref.frames[0].rgb)
    assert diff.max() <= 4  # bf16 within its verdict (fp32 on CPUs without bf16)


def test_worker_runs_cpu_openvino(photo_png, tmp_path):
    from upscaler_edge.worker import Worker

    with Worker(timeout=120) as worker:
        res = worker.run(photo_png, tmp_path / "w.png", FAST.replace(tile=32))
    assert res.out_size == (128, 96) and "OpenVINO" in res.device
    with Image.open(tmp_path / "w.png") as im:
        assert im.size == (128, 96)


def _tiny_model(folder: Path, layer: str = "Swish") -> Path:
    """A 2x model that ncnn runs and the ONNX export lacks a layer for."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        "7767517\n4 4\n"
        "Input in 0 1 data\n"
        "Convolution conv 1 1 data c 0=12 1=3 4=1 5=1 6=324\n"
        f"{layer} act 1 1 c a\n"
        "PixelShuffle ps 1 1 a output 0=2\n"
    )
    (folder / "tiny-x2.param").write_text(text)
    w = (rng.standard_normal(324) * 0.1).astype(np.float32)
    bias = np.full(12, 0.3, np.float32)
    (folder / "tiny-x2.bin").write_bytes(struct.pack("<I", 0) + w.tobytes() + bias.tobytes())
    return folder


def test_a_model_the_export_cannot_handle_runs_on_ncnn_with_one_log_line(tmp_path, photo, caplog):
    from upscaler_edge.imageio import Frame, Picture

    models = _tiny_model(tmp_path / "models")
    pic = Picture(frames=[Frame(rgb=np.ascontiguousarray(photo[:20, :20]))], source_format="PNG")
    opts = Options(model="tiny-x2", device="cpu", models_dirs=(models,), tile=32)
    with caplog.at_level(logging.INFO), Upscaler() as up:
        out = up.upscale_picture(pic, opts)
        up.upscale_picture(pic, opts)
        plan = up.prepare(opts)
        assert isinstance(up.engine_for(plan.spec, plan.device), Engine)
    assert out.frames[0].rgb.shape == (40, 40, 3)
    lines = [r.getMessage() for r in caplog.records if "OpenVINO cannot run" in r.getMessage()]
    assert len(lines) == 1 and "Swish" in lines[0] and "using ncnn" in lines[0]
    assert [r.levelno for r in caplog.records if "OpenVINO cannot" in r.getMessage()] == [
        logging.INFO
    ]


NO_OPENVINO = """
import sys
sys.modules["openvino"] = None
import logging
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "VK_ICD_FILENAMES": "/nonexistent.json"},
    )


def test_without_openvino_the_cpu_runs_ncnn_with_one_log_line(photo_png, tmp_path):
    code = NO_OPENVINO + (
        "from upscaler_edge.options import Options\n"
        "from upscaler_edge.pipeline import Upscaler\n"
        "from upscaler_edge.engine import pick_device\n"
        "assert pick_device('cpu').backend == 'ncnn'\n"
        "opts = Options(model='realesr-animevideov3', scale=2, device='cpu', tile=32)\n"
        "with Upscaler() as up:\n"
        "    for name in ('a.png', 'b.png'):\n"
        "        up.upscale_file(sys.argv[1], sys.argv[2] + '/' + name, opts)\n"
        "print(type(up.engine_for(up.prepare(opts).spec, pick_device('cpu'))).__name__)\n"
    )
    res = _python(code, str(photo_png), str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Engine"
    assert res.stderr.count("OpenVINO is not installed") == 1
    assert (tmp_path / "b.png").is_file()


def test_without_openvino_asking_for_it_is_a_usage_error(photo_png, tmp_path):
    code = NO_OPENVINO + (
        "from upscaler_edge.cli import main\n"
        "raise SystemExit(main([sys.argv[1], '-o', sys.argv[2], '-d', 'cpu-openvino']))\n"
    )
    res = _python(code, str(photo_png), str(tmp_path / "o.png"))
    assert res.returncode == 2
    assert 'pip install "upscaler-edge[openvino]"' in res.stderr
    assert "Traceback" not in res.stderr


def test_cpu_auto_tiles_are_sized_by_the_engine_memory():
    opts = Options(model="realesrgan-x4plus", device="cpu-openvino")
    with Upscaler() as up:
        plan = up.prepare(opts)
        spec = plan.spec

        class Ncnn:  # the figure ncnn's engine reports: the manifest's
            work_bytes_per_pixel = spec.work_bytes_per_pixel

        class OpenVino:
            work_bytes_per_pixel = spec.work_bytes_per_pixel // ov_engine.MEMORY_DIVISOR

        ncnn_tiles = up.tiles(512, 512, plan, opts, Ncnn())
        ov_tiles = up.tiles(512, 512, plan, opts, OpenVino())
        fixed = up.tiles(512, 512, plan, opts.replace(tile=128), OpenVino())
    assert len(ov_tiles) < len(ncnn_tiles)
    assert sum(t.window_pixels for t in ov_tiles) < sum(t.window_pixels for t in ncnn_tiles)
    assert len(fixed) == 16  # a tile size the user gives is honoured exactly


def test_compiled_models_are_cached_in_the_user_cache_folder(tmp_path, monkeypatch, photo):
    """A second engine (as in a later process) loads the compiled model from OpenVINO's
    cache in the user cache folder and computes the same output; where that folder cannot
    be made, the engine compiles without a cache."""
    from upscaler_edge import ncnn2onnx

    onnx_dir = tmp_path / "ue" / "onnx"
    monkeypatch.setattr(ncnn2onnx, "onnx_cache_dir", lambda: onnx_dir)
    monkeypatch.setattr(ov_engine, "onnx_cache_dir", lambda: onnx_dir)
    folder = ov_engine.compiled_cache_dir()
    assert folder == tmp_path / "ue" / "openvino"  # beside the ONNX cache
    spec = default_registry().resolve("waifu2x-upconv7-anime-x2")
    x = as_input(photo[:30, :30])
    dev = pick_device("cpu-openvino")
    with OpenVinoEngine(spec, dev, precision="fp32") as first:
        assert not first.loaded_from_cache
        want = first.infer(x)
    assert any(folder.iterdir())
    with OpenVinoEngine(spec, dev, precision="fp32") as second:
        assert second.loaded_from_cache
        assert np.array_equal(second.infer(x), want)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setattr(ov_engine, "onnx_cache_dir", lambda: blocker / "onnx")
    with OpenVinoEngine(spec, dev, precision="fp32") as third:
        assert not third.loaded_from_cache
        assert np.array_equal(third.infer(x), want)
