from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from upscaler_edge.cli import main

FAST = ["-m", "realesr-animevideov3", "-s", "2", "-d", "cpu"]


def run(args, **kw):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_default_output_is_beside_the_input(photo_png):
    code, out, err = run([photo_png, *FAST])
    assert code == 0, err
    dst = photo_png.with_name("photo_x2.png")
    with Image.open(dst) as im:
        assert im.size == (128, 96)
    assert f"-> {dst}" in out
    assert "1 done, 0 failed" in err


def test_single_output_file_and_format_from_suffix(photo_png, tmp_path):
    dst = tmp_path / "res" / "big.jpg"
    code, _, err = run([photo_png, "-o", dst, *FAST, "-q"])
    assert code == 0, err
    assert err == ""
    with Image.open(dst) as im:
        assert im.format == "JPEG" and im.size == (128, 96)


def test_existing_output_is_kept_unless_overwrite(photo_png):
    dst = photo_png.with_name("photo_x2.png")
    dst.write_bytes(b"keep me")
    code, _, err = run([photo_png, *FAST, "-q"])
    assert code == 1 and "exists (use --overwrite)" in err
    assert dst.read_bytes() == b"keep me"
    assert run([photo_png, *FAST, "-q", "--skip-existing"])[0] == 0
    assert dst.read_bytes() == b"keep me"
    assert run([photo_png, *FAST, "-q", "--overwrite"])[0] == 0
    assert dst.read_bytes() != b"keep me"


def test_folder_recursion_mirrors_the_tree(photo, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo[:10, :12]).save(src / "a.png")
    Image.fromarray(photo[:8, :8]).save(src / "sub" / "b.jpg")
    (src / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    code, _, err = run([src, "-o", out, "-r", *FAST, "-q"])
    assert code == 0, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "in/a_x2.png",
        "in/sub/b_x2.png",
    ]


BAD_INPUTS = {
    "empty.png": (b"", "empty file"),
    "text.png": (b"hello, this is text\n" * 10, "not a supported image"),
    "huge.png": (png_header(60000, 60000), "limit"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_get_one_line_and_exit_1_and_no_output(tmp_path, name):
    data, expected = BAD_INPUTS[name]
    bad = tmp_path / name
    bad.write_bytes(data)
    code, _, err = run([bad, *FAST, "-q"])
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_truncated_jpeg_is_refused(photo, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG")
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    code, _, err = run([bad, *FAST, "-q"])
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cut.jpg" in err
    assert not (tmp_path / "cut_x2.png").exists()


def test_tiff_renamed_jpg_is_read_by_content(photo, tmp_path):
    src = tmp_path / "really-a-tiff.jpg"
    Image.fromarray(photo[:10, :10]).save(src, "TIFF")
    code, _, err = run([src, *FAST, "-q"])
    assert code == 0, err
    with Image.open(tmp_path / "really-a-tiff_x2.png") as im:
        assert im.size == (20, 20)


def test_one_bad_file_does_not_stop_the_others(photo_png, tmp_path):
    bad = tmp_path / "zero.png"
    bad.write_bytes(b"")
    code, _, err = run([bad, photo_png, tmp_path / "missing.png", *FAST])
    assert code == 1
    assert (tmp_path / "photo_x2.png").exists()
    assert "1 done, 2 failed" in err
    assert "missing.png: no such file or folder" in err


@pytest.mark.parametrize(
    "args,expected",
    [
        (["-m", "esrgan-9000"], "unknown model 'esrgan-9000'; valid models: realesrgan-x4plus"),
        (["-t", "7"], "tile size 7 is too small"),
        (["-d", "9"], "no Vulkan device 9"),
        (["-m", "realesr-animevideov3-x2", "-s", "4"], "upscales x2; scale 4 is larger"),
    ],
)
def test_usage_errors_exit_2(photo_png, args, expected):
    code, _, err = run([photo_png, *args])
    assert code == 2
    assert expected in err and "Traceback" not in err


def test_unwritable_output_folder(photo_png, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    code, _, err = run([photo_png, "-o", blocker / "out", *FAST, "-q"])
    assert code == 1 and "cannot" in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_list_models_and_devices():
    code, out, _ = run(["--list-models"])
    assert code == 0 and "realesrgan-x4plus " in out and "realesr-animevideov3-x3" in out
    code, out, _ = run(["--list-devices"])
    assert code == 0 and "cpu" in out and "<- auto" in out


def test_module_entry_point_runs_end_to_end(photo_png, tmp_path):
    dst = tmp_path / "via-module.webp"
    res = subprocess.run(
        [sys.executable, "-m", "upscaler_edge", str(photo_png), "-o", str(dst), *FAST],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    with Image.open(dst) as im:
        assert im.format == "WEBP" and im.size == (128, 96)
    res = subprocess.run(
        [sys.executable, "-m", "upscaler_edge", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and res.stdout.startswith("upscaler-edge 0.")


def test_all_frames_keeps_the_animation(photo, tmp_path):
    src = tmp_path / "anim.gif"
    frames = [Image.fromarray(photo[i * 8 : i * 8 + 16, :16]) for i in range(3)]
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    code, _, err = run([src, *FAST, "-q", "--all-frames", "-f", "webp"])
    assert code == 0, err
    with Image.open(tmp_path / "anim_x2.webp") as im:
        assert im.n_frames == 3 and im.size == (32, 32)
    code, _, err = run([src, *FAST, "-q", "-o", tmp_path / "first.png"])
    with Image.open(tmp_path / "first.png") as im:
        assert getattr(im, "n_frames", 1) == 1 and im.size == (32, 32)


def test_gui_without_pyside6_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "PySide6", None)  # what a missing package looks like
    code, _, err = run(["--gui"])
    assert code == 2
    assert 'pip install "upscaler-edge[gui]"' in err and "Traceback" not in err


def test_bot_without_config_prints_the_setup_message(tmp_path, monkeypatch):
    for var in (
        "UPSCALER_API_ID",
        "UPSCALER_API_HASH",
        "UPSCALER_BOT_TOKEN",
        "UPSCALER_ALLOWED_USERS",
    ):
        monkeypatch.delenv(var, raising=False)
    res = subprocess.run(
        [sys.executable, "-m", "upscaler_edge", "--bot", "--config", str(tmp_path / "none.toml")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "BotFather" in res.stderr and "Traceback" not in res.stderr


def test_running_twice_on_a_folder_does_not_upscale_the_results(photo, tmp_path):
    Image.fromarray(photo[:10, :12]).save(tmp_path / "a.png")
    Image.fromarray(photo[:8, :8]).save(tmp_path / "b_x2.png")  # a user's own file, no source
    assert run([tmp_path, *FAST, "-q"])[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.png",
        "a_x2.png",
        "b_x2.png",
        "b_x2_x2.png",
    ]
    code, _, err = run([tmp_path, *FAST, "-q", "--skip-existing"])
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.png",
        "a_x2.png",
        "b_x2.png",
        "b_x2_x2.png",
    ]


# --- issue 8: real-world batches -------------------------------------------------------------


def test_same_stem_inputs_get_distinct_stable_outputs(photo, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    crop = Image.fromarray(photo[:12, :16])
    for ext in ("bmp", "gif", "jpg", "png"):
        crop.save(src / f"hopper.{ext}")
    crop.save(src / "other.png")
    out = tmp_path / "out"
    code, _, err = run([src, "-o", out, *FAST, "-q"])
    assert code == 0, err
    names = sorted(p.name for p in (out / "in").iterdir())
    assert names == [
        "hopper_bmp_x2.png",
        "hopper_gif_x2.png",
        "hopper_jpg_x2.png",
        "hopper_png_x2.png",
        "other_x2.png",
    ]
    # a second run finds them again: nothing to do, nothing overwritten
    before = {p.name: p.stat().st_mtime_ns for p in (out / "in").iterdir()}
    code, _, err = run([src, "-o", out, *FAST, "--skip-existing"])
    assert code == 0 and "0 done, 0 failed, 5 skipped" in err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "in").iterdir()} == before
    # with --overwrite each output is written once, by its own input
    code, _, err = run([src, "-o", out, *FAST, "--overwrite"])
    assert code == 0 and "5 done, 0 failed" in err
    assert len(list((out / "in").iterdir())) == 5


def test_the_same_file_named_twice_is_one_job(photo_png):
    code, _, err = run([photo_png, photo_png, *FAST])
    assert code == 0 and "1 done, 0 failed" in err


def test_an_unexpected_exception_fails_one_file_not_the_batch(photo, tmp_path, monkeypatch):
    import struct as struct_mod

    from upscaler_edge.imageio import encode

    for name in ("a", "b", "c"):
        Image.fromarray(photo[:8, :8]).save(tmp_path / f"{name}.png")
    real = encode.write_atomic  # every write, streamed PNG or not, ends there

    def flaky(parts, dst, overwrite):
        if "b_x2" in str(dst):
            raise struct_mod.error("argument out of range")
        return real(parts, dst, overwrite)

    monkeypatch.setattr(encode, "write_atomic", flaky)
    code, _, err = run([tmp_path, *FAST, "-q"])
    assert code == 1
    lines = err.strip().splitlines()
    assert lines == [
        f"upscaler-edge: error: {tmp_path / 'b.png'}: internal error: error: argument out of range"
    ]
    assert sorted(p.name for p in tmp_path.glob("*_x2.png")) == ["a_x2.png", "c_x2.png"]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["-o", "out.xyz"], "cannot tell the output format from 'out.xyz'"),
        (["-o", "out.png", "-f", "jpg"], "-f jpg conflicts with the suffix of 'out.png'"),
        (["-f", "doc"], "unknown output format 'doc'"),
    ],
)
def test_output_format_problems_are_usage_errors_before_any_work(photo_png, args, expected):
    code, _, err = run([photo_png, *FAST, *args])
    assert code == 2 and expected in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in photo_png.parent.iterdir()) == ["photo.png"]


def test_unwritable_output_folder_is_found_before_the_model_runs(photo_png, tmp_path, monkeypatch):
    import os

    if os.geteuid() == 0:
        # root writes anywhere: make the folder a file instead, which no one can write into
        target = tmp_path / "locked"
        target.write_text("a file")
        out = target / "sub"
    else:  # pragma: no cover - CI runs as root
        target = tmp_path / "locked"
        target.mkdir(mode=0o500)
        out = target
    from upscaler_edge import pipeline

    def no_model(*a, **kw):
        raise AssertionError("the model ran")

    monkeypatch.setattr(pipeline.Upscaler, "_upscale_plane", no_model)
    code, _, err = run([photo_png, "-o", out, *FAST, "-q"])
    assert code == 1
    assert err.count("cannot write to") == 1 and len(err.strip().splitlines()) == 1


def test_memory_a_job_cannot_have_is_named(photo_png, monkeypatch):
    from upscaler_edge import preflight

    monkeypatch.setattr(preflight, "available_memory", lambda: 10_000)
    code, _, err = run([photo_png, *FAST, "-q"])
    assert code == 1
    assert "GiB of memory" in err and len(err.strip().splitlines()) == 1
    assert not photo_png.with_name("photo_x2.png").exists()


def test_max_megapixels_is_the_one_cap(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_header(10_000, 10_000))  # 100 MP claimed, truncated data
    code, _, err = run([big, *FAST, "-q", "--max-megapixels", "60"])
    assert code == 1 and "over the 60.0 MP limit" in err
    code, _, err = run([big, *FAST, "-q", "--max-megapixels", "200"])
    assert code == 1 and "decompression" not in err and "MP limit" not in err
