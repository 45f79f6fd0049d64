"""PNG encoding overlapped with inference: PngStream gives encode_png's bytes whatever the
order its rows come in, and upscale_file writes the same file as before while the bands of
finished tile rows are compressed during the tile loop."""

from __future__ import annotations

import io
import os
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from upscaler_edge import imageio, pipeline
from upscaler_edge.errors import Cancelled, OutputError
from upscaler_edge.imageio import Frame, Picture, png
from upscaler_edge.imageio.metadata import EXIF_PREFIX
from upscaler_edge.options import Options
from upscaler_edge.pipeline import Upscaler, _RowsDone
from upscaler_edge.tiling import plan_tiles

FAST = Options(model="realesr-animevideov3", scale=2, device="cpu", tile=32)


@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few rows, so small test pictures have several."""
    monkeypatch.setattr(png, "_BAND_BYTES", 8192)


@pytest.fixture(autouse=True)
def stream_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run on the CPU, where the overlap is off by default: on."""
    monkeypatch.setattr(pipeline, "STREAM_PNG_ON_CPU", True)


@pytest.fixture(scope="module")
def up():
    with Upscaler(FAST) as u:
        yield u


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    return exif.tobytes()


_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _icc() -> bytes:
    return _ICC  # one profile: each made carries its creation time


@pytest.mark.parametrize(
    ("dtype", "gray", "alpha"),
    [(np.uint8, False, False), (np.uint16, False, True), (np.uint8, True, False)],
)
def test_a_stream_fed_rows_in_steps_gives_encode_pngs_bytes(
    monkeypatch: pytest.MonkeyPatch, dtype: type, gray: bool, alpha: bool
) -> None:
    monkeypatch.setattr(png, "_BAND_BYTES", 1024)
    rng = np.random.default_rng(7)
    top = np.iinfo(dtype).max
    final = rng.integers(0, top, (90, 37, 3), endpoint=True).astype(dtype)
    final_alpha = rng.integers(0, top, (90, 37), endpoint=True).astype(dtype) if alpha else None
    meta = (_icc(), EXIF_PREFIX + _exif(), (300.0, 150.0))
    want = b"".join(png.encode_png(Frame(final, final_alpha), gray, *meta))
    # the rows arrive in steps, as tile rows do; the rows below are garbage until then
    rgb = np.full_like(final, top // 2)
    a = None if final_alpha is None else np.zeros_like(final_alpha)
    stream = png.PngStream(Frame(rgb, a), gray, *meta)
    assert stream.bands > 3
    for y in range(0, 90, 13):
        rgb[y : y + 13] = final[y : y + 13]
        if a is not None and final_alpha is not None:
            a[y : y + 13] = final_alpha[y : y + 13]
        stream.rows_done(min(y + 13, 90) if y + 13 < 90 else 77)
        stream.settle()  # each started band is compressed before more rows change
    assert 0 < stream.started < stream.bands  # the last rows were never announced
    got = b"".join(stream.finish())
    assert got == want
    with Image.open(io.BytesIO(got)) as im:
        im.load()
        assert im.info["icc_profile"] == meta[0]
        assert round(im.info["dpi"][0]) == 300
        if dtype == np.uint8:
            pixels = np.asarray(im)
            expect = final if not gray else ((final.astype(int).sum(axis=2) + 1) // 3)
            assert np.array_equal(pixels, expect)


def test_a_closed_stream_starts_nothing_more(small_bands: None) -> None:
    frame = Frame(np.zeros((64, 16, 3), np.uint8))
    stream = png.PngStream(frame, False, None, None, None)
    stream.rows_done(10)
    started = stream.started
    stream.close()
    stream.rows_done(64)
    assert stream.started == started
    with pytest.raises(RuntimeError):
        stream.finish()


def test_rows_done_tracks_tiles_finished_in_any_order() -> None:
    tiles = plan_tiles(100, 70, 32, 4, 2)  # 4 x 3 tiles, the last row and column narrower
    heard: list[int] = []
    rows = _RowsDone(tiles, 2, 140, heard.append)
    order = list(tiles)
    random.Random(3).shuffle(order)
    done: list = []
    for t in order:
        rows.done(t)
        done.append(t)
        # the true answer: rows above the top of the highest tile not yet done
        left = [u.y0 for u in tiles if u not in done]
        expect = min(left) * 2 if left else 140
        assert (heard[-1] if heard else 0) == expect
    assert heard == sorted(set(heard)) and heard[-1] == 140


def _capture_writers(monkeypatch: pytest.MonkeyPatch) -> list[imageio.StreamedWrite]:
    writers: list[imageio.StreamedWrite] = []
    real = imageio.stream_picture

    def capture(*args, **kwargs):
        writer = real(*args, **kwargs)
        if writer is not None:
            writers.append(writer)
        return writer

    monkeypatch.setattr(imageio, "stream_picture", capture)
    return writers


def _today(up: Upscaler, src: Path, opts: Options, dst: Path) -> bytes:
    """What upscale_file wrote before streaming: the whole picture upscaled, then written
    (to a folder of its own, which is removed)."""
    out = up.upscale_picture(imageio.read_picture(src), opts)
    folder = dst.parent / "today"
    written = imageio.write_picture(out, folder / dst.name, fmt=opts.format)
    assert written.name == dst.name
    data = written.read_bytes()
    written.unlink()
    folder.rmdir()
    return data


def _save(path: Path, arr: np.ndarray, **params: object) -> Path:
    Image.fromarray(arr).save(path, **params)
    return path


def test_upscale_file_compresses_finished_rows_during_the_tile_loop(
    up, photo, tmp_path, monkeypatch, small_bands
) -> None:
    src = _save(
        tmp_path / "in.png", photo[:96, :80], icc_profile=_icc(), exif=_exif(), dpi=(72, 72)
    )
    writers = _capture_writers(monkeypatch)
    at_last_tile: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == total:  # the last tile is inferred; earlier tile rows are pasted
            at_last_tile.append(writers[0].bands_started)

    res = up.upscale_file(src, tmp_path / "out.png", FAST, progress)
    assert len(writers) == 1 and writers[0].bands > 4
    assert at_last_tile and at_last_tile[0] >= 2  # compressed while tiles still ran
    want = _today(up, src, FAST, res.dst)
    assert res.dst.read_bytes() == want
    with Image.open(res.dst) as im:
        assert im.info["icc_profile"] == _icc()
        assert im.getexif()[0x010F] == "TestCam"
        assert round(im.info["dpi"][0]) == 144
        ours = np.asarray(im.convert("RGB"))
    with Image.open(io.BytesIO(want)) as im:
        assert np.array_equal(ours, np.asarray(im.convert("RGB")))
    assert imageio.leftovers(res.dst) == []


def test_sixteen_bit_and_gray_outputs_stream_the_same_bytes(
    up, photo, tmp_path, monkeypatch, small_bands
) -> None:
    writers = _capture_writers(monkeypatch)
    deep = photo[:64, :48].astype(np.uint16) * 257
    src16 = tmp_path / "deep.png"
    src16.write_bytes(
        b"".join(png.encode_png(Frame(np.ascontiguousarray(deep)), False, None, None, None))
    )
    gray = _save(tmp_path / "gray.png", np.asarray(Image.fromarray(photo[:64, :48]).convert("L")))
    for src in (src16, gray):
        res = up.upscale_file(src, tmp_path / f"{src.stem}_out.png", FAST)
        assert res.dst.read_bytes() == _today(up, src, FAST, res.dst)
    assert len(writers) == 2
    with Image.open(tmp_path / "gray_out.png") as im:
        assert im.mode == "L"
    assert imageio.read_picture(tmp_path / "deep_out.png").frames[0].rgb.dtype == np.uint16


@pytest.mark.parametrize(
    ("name", "opts", "streams"),
    [
        ("alpha.png", FAST, False),  # alpha: the planes run one after the other
        ("out.jpg", FAST, False),  # not PNG
        ("out.png", FAST.replace(model="realesr-animevideov3-x4", scale=2), False),  # resized
        ("out.jpg", FAST.replace(format="png"), True),  # PNG asked for: renamed .png
        ("out.apng", FAST, True),  # one frame of "apng" is our PNG
    ],
)
def test_other_outputs_are_written_as_before(
    up, photo, tmp_path, monkeypatch, name, opts, streams
) -> None:
    writers = _capture_writers(monkeypatch)
    rgb = np.ascontiguousarray(photo[:48, :40])
    if name == "alpha.png":
        rgba = np.dstack([rgb, np.linspace(0, 255, 48 * 40).reshape(48, 40).astype(np.uint8)])
        src = _save(tmp_path / "in.png", rgba)
    else:
        src = _save(tmp_path / "in.png", rgb)
    res = up.upscale_file(src, tmp_path / name, opts)
    assert bool(writers) == streams
    assert res.dst.suffix == (".png" if name == "out.jpg" and streams else Path(name).suffix)
    assert res.dst.read_bytes() == _today(up, src, opts, res.dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.png", res.dst.name])


def test_cancel_after_bands_were_compressed_writes_nothing(
    up, photo, tmp_path, monkeypatch, small_bands
) -> None:
    writers = _capture_writers(monkeypatch)
    src = _save(tmp_path / "in.png", photo[:96, :64])
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if writers and writers[0].bands_started:
            cancel.set()

    with pytest.raises(Cancelled):
        up.upscale_file(src, tmp_path / "out.png", FAST, progress, cancel)
    assert writers and writers[0].bands_started > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_a_band_that_fails_to_encode_is_an_output_error_and_no_file(
    up, photo, tmp_path, monkeypatch, small_bands
) -> None:
    writers = _capture_writers(monkeypatch)
    src = _save(tmp_path / "in.png", photo[:96, :64])
    real = png._filtered_rows

    def broken(frame, grayscale, depth, y0, y1):
        if y0 == 0:  # the first band: compressed during the tile loop
            raise MemoryError
        return real(frame, grayscale, depth, y0, y1)

    monkeypatch.setattr(png, "_filtered_rows", broken)
    with pytest.raises(OutputError, match="cannot encode the image as PNG"):
        up.upscale_file(src, tmp_path / "out.png", FAST)
    assert writers and writers[0].bands_started > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_the_pipeline_without_a_stream_is_unchanged(up, photo) -> None:
    pic = Picture([Frame(np.ascontiguousarray(photo[:40, :40]))], "PNG")
    assert pipeline.Upscaler.upscale_picture(up, pic, FAST).frames[0].rgb.shape == (80, 80, 3)


def test_a_batch_streams_each_png_and_writes_todays_bytes(
    up, photo, tmp_path, monkeypatch, small_bands
) -> None:
    writers = _capture_writers(monkeypatch)
    srcs = [_save(tmp_path / "a.png", photo[:96, :64]), _save(tmp_path / "b.png", photo[32:, :48])]
    items = list(up.upscale_many([(p, tmp_path / "out" / p.name) for p in srcs], FAST))
    assert [i.error for i in items] == [None, None] and len(writers) == 2
    assert all(w.bands_started > 0 for w in writers)
    for src, item in zip(srcs, items, strict=True):
        assert item.dst.read_bytes() == _today(up, src, FAST, item.dst)


@pytest.mark.skipif(png._IDLE_POLICY is None, reason="no idle scheduling policy here")
def test_finish_takes_back_queued_bands_from_the_idle_thread(monkeypatch) -> None:
    monkeypatch.setattr(png, "_BAND_BYTES", 1024)
    monkeypatch.setattr(png, "_encode_threads", lambda: 1)
    rng = np.random.default_rng(3)
    frame = Frame(rng.integers(0, 255, (120, 20, 3), endpoint=True).astype(np.uint8))
    want = b"".join(png.encode_png(frame, False, None, None, None))
    release = threading.Event()
    who: dict[int, tuple[str, int]] = {}
    real = png._filtered_rows

    def watched(frame, grayscale, depth, y0, y1):
        who[y0] = (threading.current_thread().name, os.sched_getscheduler(0))
        if y0 == 0:
            assert release.wait(10)  # the idle thread is busy with band 0 ...
        return real(frame, grayscale, depth, y0, y1)

    monkeypatch.setattr(png, "_filtered_rows", watched)
    stream = png.PngStream(frame, False, None, None, None)
    stream.rows_done(100)  # ... while the bands up to row 100 queue behind it
    queued = stream.started
    assert queued > 3
    got: list[bytes] = []
    finishing = threading.Thread(target=lambda: got.extend(stream.finish()))
    finishing.start()
    deadline = time.monotonic() + 10
    while not stream._done[-1].cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    finishing.join(10)
    assert b"".join(got) == want
    assert who[0] == ("png-early_0", os.SCHED_IDLE)
    late = [who[y0] for y0, _ in png._PngLayout(frame, False, None, None, None, 1).bands[1:]]
    assert all(not name.startswith("png-early") for name, _ in late)


def test_on_the_cpu_the_png_is_encoded_after_the_loop_by_default(
    up, photo, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(pipeline, "STREAM_PNG_ON_CPU", False)
    writers = _capture_writers(monkeypatch)
    src = _save(tmp_path / "in.png", photo[:64, :64])
    res = up.upscale_file(src, tmp_path / "out.png", FAST)
    assert writers == []
    assert res.dst.read_bytes() == _today(up, src, FAST, res.dst)


@pytest.mark.vulkan
def test_on_a_gpu_the_png_is_streamed(photo, tmp_path, monkeypatch, software_vulkan) -> None:
    monkeypatch.setattr(pipeline, "STREAM_PNG_ON_CPU", False)
    monkeypatch.setattr(png, "_BAND_BYTES", 8192)
    writers = _capture_writers(monkeypatch)
    src = _save(tmp_path / "in.png", photo[:96, :64])
    opts = FAST.replace(device=str(software_vulkan.index))
    with Upscaler(opts) as gpu:
        res = gpu.upscale_file(src, tmp_path / "out.png", opts)
        assert len(writers) == 1 and writers[0].bands_started > 0
        assert res.dst.read_bytes() == _today(gpu, src, opts, res.dst)
