from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from upscaler_edge import engine as engine_mod
from upscaler_edge.errors import Cancelled, DeviceError, OutputError
from upscaler_edge.imageio import Frame, Picture, read_picture
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler, default_output_path, upscale_file

FAST = Options(model="realesr-animevideov3", scale=2, device="cpu")


def pic_of(rgb, alpha=None, **kw):
    return Picture(
        frames=[Frame(rgb=rgb, alpha=alpha, duration_ms=None)],
        source_format="PNG",
        grayscale=False,
        icc_profile=None,
        exif=None,
        dpi=kw.get("dpi"),
        loop=None,
    )


def psnr(a, b, peak=255.0):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.fixture(scope="module")
def up():
    with Upscaler(FAST) as u:
        yield u


@pytest.mark.parametrize("tile", [32, 48, 100])
def test_tiled_output_matches_whole_image_inference(up, photo, tile):
    src = pic_of(np.ascontiguousarray(photo[:112, :144]))
    whole = up.upscale_picture(src, FAST.replace(tile=1000)).frames[0].rgb
    tiled = up.upscale_picture(src, FAST.replace(tile=tile)).frames[0].rgb
    assert whole.shape == tiled.shape == (224, 288, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 2  # the seam target


@pytest.mark.parametrize("w,h", [(1, 1), (1, 37), (37, 1), (33, 65)])
def test_odd_sizes(up, photo, w, h):
    out = up.upscale_picture(pic_of(np.ascontiguousarray(photo[:h, :w])), FAST.replace(tile=32))
    assert out.frames[0].rgb.shape == (2 * h, 2 * w, 3)
    assert out.frames[0].rgb.dtype == np.uint8


def test_output_is_an_upscale_of_the_input(up, photo):
    src = np.ascontiguousarray(photo[:64, :64])
    out = up.upscale_picture(pic_of(src)).frames[0].rgb
    down = np.asarray(Image.fromarray(out).resize((64, 64), Image.BICUBIC))
    assert psnr(down, src) > 28


def test_progress_counts_every_tile_and_ends_at_total(up, photo):
    seen = []
    up.upscale_picture(
        pic_of(np.ascontiguousarray(photo[:96, :96])),
        FAST.replace(tile=32),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[0] == (0, 9) and seen[-1] == (9, 9)
    assert [d for d, _ in seen] == list(range(10))


def test_cancel_between_tiles_writes_nothing(up, photo_png, tmp_path):
    cancel = threading.Event()
    dst = tmp_path / "out.png"

    def progress(done, total):
        if done == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        up.upscale_file(photo_png, dst, FAST.replace(tile=32), progress, cancel)
    assert list(tmp_path.iterdir()) == [photo_png]


def test_scale_below_native_resizes_the_x4_result(up, photo):
    src = np.ascontiguousarray(photo[:40, :50])
    out = up.upscale_picture(pic_of(src), FAST.replace(model="realesr-animevideov3-x4", scale=2))
    rgb = out.frames[0].rgb
    assert rgb.shape == (80, 100, 3)
    two = up.upscale_picture(pic_of(src), FAST).frames[0].rgb
    assert psnr(rgb, two) > 25  # both are sensible x2 pictures, not garbled


def test_alpha_goes_through_the_model_as_gray_and_stays_sharp(up, photo):
    rgb = np.ascontiguousarray(photo[:32, :32])
    yy, xx = np.mgrid[:32, :32]
    disc = np.where((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 11**2, 255, 0).astype(np.uint8)
    out = up.upscale_picture(pic_of(rgb, disc)).frames[0]
    assert out.alpha.shape == (64, 64) and out.alpha.dtype == np.uint8
    nearest = np.asarray(Image.fromarray(disc).resize((64, 64), Image.NEAREST)).astype(int)
    bicubic = np.asarray(Image.fromarray(disc).resize((64, 64), Image.BICUBIC)).astype(int)
    model_err = np.abs(out.alpha.astype(int) - nearest).mean()
    assert model_err < np.abs(bicubic - nearest).mean()  # sharper edge than bicubic
    assert out.alpha[32, 32] > 240 and out.alpha[2, 2] < 15
    flat = up.upscale_picture(pic_of(rgb, np.full((32, 32), 200, np.uint8))).frames[0]
    assert (flat.alpha == 200).all()
    bic = up.upscale_picture(pic_of(rgb, disc), FAST.replace(alpha="bicubic")).frames[0]
    assert np.abs(bic.alpha.astype(int) - bicubic).max() <= 1


def test_tta_is_close_to_the_plain_result(up, photo):
    src = pic_of(np.ascontiguousarray(photo[:32, :40]))
    plain = up.upscale_picture(src).frames[0].rgb
    tta = up.upscale_picture(src, FAST.replace(tta=True)).frames[0].rgb
    assert tta.shape == plain.shape
    assert 30 < psnr(tta, plain) < 99


def test_sixteen_bit_stays_sixteen_bit(up, photo):
    src = np.ascontiguousarray(photo[:24, :24]).astype(np.uint16) * 257
    out = up.upscale_picture(pic_of(src)).frames[0].rgb
    out8 = up.upscale_picture(pic_of(np.ascontiguousarray(photo[:24, :24]))).frames[0].rgb
    assert out.dtype == np.uint16 and out.shape == (48, 48, 3)
    assert np.abs(out.astype(float) / 257 - out8).max() < 2


def test_dpi_is_scaled(up, photo):
    out = up.upscale_picture(pic_of(np.ascontiguousarray(photo[:8, :8]), dpi=(72.0, 96.0)))
    assert out.dpi == (144.0, 192.0)


def test_a_device_fault_is_retried_at_half_size(up, photo, monkeypatch):
    calls = []
    real = engine_mod.Engine.infer

    def flaky(self, x):
        calls.append(x.shape)
        if x.shape[1] > 60:  # "out of memory" above 60 px
            raise engine_mod.TileFault("vkAllocateMemory failed")
        return real(self, x)

    src = pic_of(np.ascontiguousarray(photo[:64, :64]))
    ncnn = FAST.replace(device="cpu-ncnn")  # the fault is injected into ncnn's engine
    whole = up.upscale_picture(src, ncnn.replace(tile=1000)).frames[0].rgb
    monkeypatch.setattr(engine_mod.Engine, "infer", flaky)
    out = up.upscale_picture(src, ncnn.replace(tile=64)).frames[0].rgb
    assert calls[0] == (3, 84, 84) and len(calls) == 5  # 64 + 2 x 10 mirrored edge pixels
    assert np.abs(out.astype(int) - whole).max() <= 2


def test_an_all_black_result_is_a_device_fault(up, photo, monkeypatch):
    monkeypatch.setattr(
        engine_mod.Engine,
        "infer",
        lambda self, x: np.zeros((3, x.shape[1] * 2, x.shape[2] * 2), np.float32),
    )
    with pytest.raises(DeviceError, match="constant tile"):
        up.upscale_picture(
            pic_of(np.ascontiguousarray(photo[:32, :32])), FAST.replace(tile=32, device="cpu-ncnn")
        )


def test_upscale_file_carries_metadata_and_refuses_the_input(photo, tmp_path):
    src = tmp_path / "p.png"
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo[:20, :30]).save(src, icc_profile=icc, dpi=(300, 300))
    res = upscale_file(src, None, FAST)
    assert res.dst == default_output_path(src, 2) == tmp_path / "p_x2.png"
    assert (res.in_size, res.out_size) == ((30, 20), (60, 40))
    with Image.open(res.dst) as im:
        assert im.size == (60, 40)
        assert im.info.get("icc_profile") == icc
        assert round(im.info["dpi"][0]) == 600
    with pytest.raises(OutputError, match="input"):
        upscale_file(src, src, FAST.replace(overwrite=True))
    with pytest.raises(OutputError, match="exists"):
        upscale_file(src, res.dst, FAST)


def test_batch_isolates_failures_and_keeps_order(up, photo, tmp_path):
    good1, bad, good2 = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.fromarray(photo[:16, :16]).save(good1)
    bad.write_bytes(b"not an image")
    Image.fromarray(photo[16:40, :16]).save(good2)
    items = list(up.upscale_many([(p, tmp_path / "out" / p.name) for p in (good1, bad, good2)]))
    assert [i.src for i in items] == [good1, bad, good2]
    assert items[1].error is not None and items[0].error is None and items[2].error is None
    assert read_picture(items[2].dst).width == 32
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


@pytest.mark.vulkan
def test_vulkan_pipeline_matches_cpu_and_falls_back_to_cpu(photo, software_vulkan, monkeypatch):
    monkeypatch.setattr(engine_mod, "openvino_installed", lambda: False)  # the CPU is ncnn's
    src = pic_of(np.ascontiguousarray(photo[:40, :40]))
    gpu_opts = FAST.replace(device=str(software_vulkan.index), tile=32)
    with Upscaler() as up:
        cpu = up.upscale_picture(src, FAST.replace(tile=32)).frames[0].rgb
        gpu = up.upscale_picture(src, gpu_opts).frames[0].rgb
        assert np.abs(cpu.astype(int) - gpu).max() <= 4  # fp16 on the device

        real = engine_mod.Engine.infer
        devices = []

        def gpu_breaks(self, x):
            devices.append(self.device.kind)
            if self.device.is_gpu:
                raise engine_mod.TileFault("VK_ERROR_DEVICE_LOST")
            return real(self, x)

        monkeypatch.setattr(engine_mod.Engine, "infer", gpu_breaks)
        out = up.upscale_picture(src, gpu_opts).frames[0].rgb
    assert "cpu" in devices and "software" in devices
    assert np.abs(out.astype(int) - cpu).max() <= 2


def test_tile_stages_overlap_and_give_the_same_pixels(up, photo, monkeypatch):
    """Cutting tile n+1 and pasting tile n-1 run on their own threads while tile n infers."""
    import threading

    from upscaler_edge import pipeline as pipeline_mod

    src = pic_of(np.ascontiguousarray(photo[:64, :64]))
    whole = up.upscale_picture(src, FAST.replace(tile=1000)).frames[0].rgb
    seen: dict[str, set[str]] = {"window": set(), "paste": set()}
    real_window, real_paste = pipeline_mod._window, pipeline_mod._paste

    def window(*a):
        seen["window"].add(threading.current_thread().name.split("_")[0])
        return real_window(*a)

    def paste(*a):
        seen["paste"].add(threading.current_thread().name.split("_")[0])
        return real_paste(*a)

    monkeypatch.setattr(pipeline_mod, "_window", window)
    monkeypatch.setattr(pipeline_mod, "_paste", paste)
    tiled = up.upscale_picture(src, FAST.replace(tile=32)).frames[0].rgb
    assert seen == {"window": {"tile-prep"}, "paste": {"tile-paste"}}
    assert np.abs(tiled.astype(int) - whole).max() <= 1


@pytest.mark.vulkan
def test_a_nan_tile_in_fp16_is_retried_in_fp32(photo, software_vulkan, monkeypatch, caplog):
    src = pic_of(np.ascontiguousarray(photo[:32, :32]))
    opts = FAST.replace(device=str(software_vulkan.index), tile=32)
    real = engine_mod.Engine.infer
    precisions = []

    def nan_in_fp16(self, x):
        precisions.append(self.precise)
        y = real(self, x)
        if self.device.is_gpu and not self.precise:
            y[:, :4, :4] = np.nan
        return y

    with Upscaler() as up:  # against ncnn's fp32 CPU path (OpenVINO's may run bf16)
        cpu = up.upscale_picture(src, FAST.replace(tile=32, device="cpu-ncnn")).frames[0].rgb
        monkeypatch.setattr(engine_mod.Engine, "infer", nan_in_fp16)
        out = up.upscale_picture(src, opts).frames[0].rgb
    assert precisions == [False, True]
    assert "retrying that tile in fp32" in caplog.text
    assert np.abs(out.astype(int) - cpu).max() <= 2


@pytest.mark.vulkan
def test_any_picture_and_tile_size_on_a_gpu_matches_the_cpu(photo, software_vulkan, monkeypatch):
    """Tiles of every shape a picture and a tile size give (odd sides, slivers, mirrored
    edges) come out of a Vulkan device as they do from the CPU: a window whose area was not a
    multiple of 4 used to arrive with its colour planes shifted."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    monkeypatch.setattr(engine_mod, "openvino_installed", lambda: False)
    up = Upscaler()

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        w=st.integers(17, 90),
        h=st.integers(17, 90),
        tile=st.integers(32, 64),
        x0=st.integers(0, 60),
        y0=st.integers(0, 60),
    )
    def run(w, h, tile, x0, y0):
        src = pic_of(np.ascontiguousarray(photo[y0 : y0 + h, x0 : x0 + w]))
        cpu = up.upscale_picture(src, FAST.replace(device="cpu-ncnn", tile=tile)).frames[0].rgb
        gpu_opts = FAST.replace(device=str(software_vulkan.index), tile=tile)
        gpu = up.upscale_picture(src, gpu_opts).frames[0].rgb
        assert gpu.shape == cpu.shape == (2 * h, 2 * w, 3)
        assert np.abs(gpu.astype(int) - cpu).max() <= 4  # fp16 on the device

    with up:
        run()


@pytest.mark.vulkan
@pytest.mark.parametrize(
    "model", ["realcugan-se", "waifu2x-cunet", "waifu2x-upconv7-photo", "realesrgan-x4plus-anime"]
)
def test_every_family_on_a_gpu_matches_the_cpu_on_odd_tiles(photo, software_vulkan, model):
    """Shared SE averages, stride alignment, valid convolutions and the RRDB net, tiled with
    odd sides on a Vulkan device, against ncnn's CPU path."""
    scale = 4 if model.startswith("realesrgan") else 2
    h, w = (23, 29) if scale == 4 else (37, 45)  # RRDB: one odd window; else 2x2 tiles of 32
    src = pic_of(np.ascontiguousarray(photo[10 : 10 + h, 20 : 20 + w]))
    opts = Options(model=model, scale=scale, tile=0 if scale == 4 else 32)
    with Upscaler() as up:
        cpu = up.upscale_picture(src, opts.replace(device="cpu-ncnn")).frames[0].rgb
        gpu = up.upscale_picture(src, opts.replace(device=str(software_vulkan.index))).frames[0]
    assert gpu.rgb.shape == cpu.shape == (h * scale, w * scale, 3)
    assert np.abs(gpu.rgb.astype(int) - cpu).max() <= 4  # fp16 on the device
