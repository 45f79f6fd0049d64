"""Videos end to end through the CLI and the library, on small real clips made here with
PyAV (the FFmpeg in its wheel): what a user would check (frame count, size, timestamps,
audio packets, colour tags, pixels) and what must never happen (partial output, lost work).

``ffprobe`` (Debian's ffmpeg package), where installed, checks the outputs independently.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason='video needs PyAV: pip install "upscaler-edge[video]"')

from upscaler_edge.cli import main  # noqa: E402
from upscaler_edge.errors import Cancelled, UsageError  # noqa: E402
from upscaler_edge.imageio import Frame, Picture  # noqa: E402
from upscaler_edge.options import Options  # noqa: E402
from upscaler_edge.pipeline import Upscaler  # noqa: E402
from upscaler_edge.video import (  # noqa: E402
    VideoOptions,
    discard_job,
    job_folder,
    probe_video,
    sniff,
    upscale_video,
)
from upscaler_edge.video.cli import split_inputs  # noqa: E402

FAST = ["-m", "realesr-animevideov3", "-s", "2", "-d", "cpu"]
FAST_OPTS = Options(model="realesr-animevideov3", scale=2, device="cpu")
FFPROBE = shutil.which("ffprobe")
FFMPEG = shutil.which("ffmpeg")
W, H = 32, 24


def run(args):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- making clips ------------------------------------------------------------------------------
def moving(photo: np.ndarray, i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame ``i`` of a pan across the photo: real texture with motion."""
    return np.ascontiguousarray(photo[30 + i : 30 + i + h, 40 + 2 * i : 40 + 2 * i + w])


def add_sine_audio(out, codec: str, rate: int, seconds: float):
    a = out.add_stream(codec, rate=rate)
    a.layout = "stereo"
    return a, seconds


def mux_audio(out, a, seconds: float, frame_size: int) -> None:
    t = 0
    total = int(seconds * a.rate)
    while t < total:
        n = np.arange(t, t + frame_size)
        wave = (0.2 * np.sin(2 * np.pi * 440 * n / a.rate)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        af.sample_rate, af.pts = a.rate, t
        out.mux(a.encode(af))
        t += frame_size
    out.mux(a.encode(None))


def make_mp4(path: Path, photo: np.ndarray, frames: int = 12, rotation: int = 0) -> Path:
    """H.264 + AAC at 30 fps, with a title; optionally a display-matrix rotation."""
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "a small test clip"
        v = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a, secs = add_sine_audio(out, "aac", 48000, frames / 30)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(moving(photo, i), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        mux_audio(out, a, secs, 1024)
    return path


VFR_PTS = [0, 33, 66, 150, 183, 300, 333, 366, 500, 533, 700, 733]  # milliseconds


def make_vfr_mkv(path: Path, photo: np.ndarray, tmp: Path) -> Path:
    """Variable frame rate H.264 + Opus + an SRT subtitle track + a font attachment."""
    srt = tmp / "subs.srt"
    srt.write_text(
        "1\n00:00:00,100 --> 00:00:00,300\nhello\n\n2\n00:00:00,400 --> 00:00:00,600\nworld\n"
    )
    with av.open(str(srt)) as subs, av.open(str(path), "w") as out:
        out.metadata["title"] = "vfr clip"
        v = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        a, secs = add_sine_audio(out, "libopus", 48000, 0.8)
        s = out.add_stream_from_template(subs.streams[0])
        s.metadata["language"] = "eng"
        out.add_attachment("font.ttf", "application/x-truetype-font", b"not really a font")
        for i, pts in enumerate(VFR_PTS):
            f = av.VideoFrame.from_ndarray(moving(photo, i), format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        mux_audio(out, a, secs, 960)
        for p in subs.demux(subs.streams[0]):
            if p.size:
                p.stream = s
                out.mux(p)
    return path


MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def ten_bit_encoder() -> str | None:
    """libx265 (HEVC Main10 with HDR metadata), else a 10-bit libx264, else None."""
    if "libx265" in av.codecs_available:
        return "libx265"
    formats = {f.name for f in av.Codec("libx264", "w").video_formats or ()}
    return "libx264" if "yuv420p10le" in formats else None


def make_hdr(path: Path, photo: np.ndarray, encoder: str) -> Path:
    """10-bit video with BT.2020 + PQ tags (and, with x265, mastering display and content
    light metadata)."""
    with av.open(str(path), "w") as out:
        options = {"crf": "18"}
        if encoder == "libx265":
            params = f"log-level=error:hdr10=1:master-display={MASTER}:max-cll=1000,400"
            options["x265-params"] = params
        v = out.add_stream(encoder, rate=24, options=options)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p10le"
        cc = v.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1
        for i in range(6):
            rgb16 = moving(photo, i).astype(np.uint16) * 257
            f = av.VideoFrame.from_ndarray(rgb16, format="rgb48le").reformat(
                format="yuv420p10le", dst_colorspace=9, dst_color_range=1
            )
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    return path


# -- reading them back -------------------------------------------------------------------------
def frames_of(path: Path, fmt: str = "rgb24") -> tuple[list[Fraction], list[np.ndarray]]:
    """Presentation times (exact, seconds) and pixels of every video frame."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        times, pixels = [], []
        for f in c.decode(vs):
            times.append(f.pts * vs.time_base)
            pixels.append(f.to_ndarray(format=fmt))
    return times, pixels


def packets_of(path: Path, kind: str) -> list[tuple[bytes, Fraction | None]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [
            (bytes(p), None if p.pts is None else p.pts * p.time_base)
            for p in c.demux(streams)
            if p.size
        ]


def ffprobe(path: Path) -> dict:
    done = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-count_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def image_upscale(rgb: np.ndarray) -> np.ndarray:
    """The image pipeline's result for one frame: what the video's frame should look like."""
    with Upscaler(FAST_OPTS) as up:
        pic = Picture(frames=[Frame(rgb=np.ascontiguousarray(rgb))], source_format="PNG")
        return up.upscale_picture(pic, FAST_OPTS).frames[0].rgb


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def nothing_left_beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith("."))


@pytest.fixture
def mp4(tmp_path, photo) -> Path:
    return make_mp4(tmp_path / "clip.mp4", photo)


# -- the formats -------------------------------------------------------------------------------
def test_mp4_h264_aac_keeps_frames_timestamps_audio_and_metadata(mp4):
    code, out, err = run([mp4, *FAST])
    assert code == 0, err
    dst = mp4.with_name("clip_x2.mp4")
    assert f"-> {dst}" in out and "12 frames" in out
    src_t, src_px = frames_of(mp4)
    t, px = frames_of(dst)
    assert len(px) == 12 and px[0].shape == (2 * H, 2 * W, 3)
    assert t == src_t  # every timestamp, exactly
    assert packets_of(dst, "audio") == packets_of(mp4, "audio")  # copied, not re-encoded
    with av.open(str(dst)) as c:
        assert c.metadata.get("title") == "a small test clip"
        assert c.streams.video[0].codec_context.name == "h264"
        duration = c.duration / 1e6
    with av.open(str(mp4)) as c:
        assert abs(duration - c.duration / 1e6) <= 1 / 30
    # each frame is the image pipeline's upscale of the source frame, up to the encoding
    for i in (0, 5, 11):
        assert mean_abs(px[i], image_upscale(src_px[i])) < 3.0
    assert nothing_left_beside(dst) == []


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed (apt-get install ffmpeg)")
def test_ffprobe_agrees(mp4):
    assert run([mp4, *FAST, "-q"])[0] == 0
    info = ffprobe(mp4.with_name("clip_x2.mp4"))
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(video) == 1 and len(audio) == 1
    assert (video[0]["width"], video[0]["height"]) == (2 * W, 2 * H)
    assert int(video[0]["nb_read_frames"]) == 12
    assert audio[0]["codec_name"] == "aac"


def test_vfr_mkv_with_opus_and_subtitles(tmp_path, photo):
    src = make_vfr_mkv(tmp_path / "vfr.mkv", photo, tmp_path)
    code, _, err = run([src, *FAST, "-q"])
    assert code == 0, err
    dst = tmp_path / "vfr_x2.mkv"
    t, px = frames_of(dst)
    assert t == frames_of(src)[0] == [Fraction(ms, 1000) for ms in VFR_PTS]  # still VFR
    assert len(px) == 12 and px[0].shape == (2 * H, 2 * W, 3)
    assert packets_of(dst, "audio") == packets_of(src, "audio")
    assert packets_of(dst, "subtitle") == packets_of(src, "subtitle")
    with av.open(str(dst)) as c:
        kinds = sorted(s.type for s in c.streams)
        assert kinds == ["attachment", "audio", "subtitle", "video"]
        sub = c.streams.subtitles[0]
        assert sub.metadata.get("language") == "eng"
        att = next(s for s in c.streams if s.type == "attachment")
        assert att.name == "font.ttf" and att.data == b"not really a font"
        assert c.metadata.get("title") == "vfr clip"


def test_subtitles_that_mp4_cannot_hold_are_left_out_with_a_warning(tmp_path, photo):
    src = make_vfr_mkv(tmp_path / "vfr.mkv", photo, tmp_path)
    dst = tmp_path / "out.mp4"
    code, _, err = run([src, "-o", dst, *FAST, "-q"])
    assert code == 0, err
    assert "subtitle stream 2 (srt) left out: mp4 cannot hold it" in err
    with av.open(str(dst)) as c:
        assert sorted(s.type for s in c.streams) == ["audio", "video"]
    assert frames_of(dst)[0] == [Fraction(ms, 1000) for ms in VFR_PTS]


def test_rotation_is_applied_to_the_pixels(tmp_path, photo):
    src = make_mp4(tmp_path / "rot.mp4", photo, frames=4, rotation=90)
    assert probe_video(src).rotation == 90
    code, _, err = run([src, *FAST, "-q"])
    assert code == 0, err
    dst = tmp_path / "rot_x2.mp4"
    _, px = frames_of(dst)
    assert px[0].shape == (2 * W, 2 * H, 3)  # displayed size: 24x32, doubled
    with av.open(str(dst)) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 0  # nothing left for a player to turn again
    # the stored frame turned as a player shows it (counter-clockwise for +90)
    expect = image_upscale(np.rot90(moving(photo, 0)))
    assert mean_abs(px[0], expect) < 4.0
    if FFMPEG:  # FFmpeg's own autorotation agrees about the direction
        raw = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-i",
                str(src),
                "-frames:v",
                "1",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ],
            capture_output=True,
            check=True,
        ).stdout
        turned = np.frombuffer(raw, np.uint8).reshape(W, H, 3)
        assert mean_abs(turned, np.rot90(moving(photo, 0))) < 4.0


def test_10bit_hdr_stays_10bit_with_its_tags(tmp_path, photo):
    encoder = ten_bit_encoder()
    if encoder is None:
        pytest.skip("this PyAV's FFmpeg has neither libx265 nor a 10-bit libx264")
    src = make_hdr(tmp_path / "hdr.mp4", photo, encoder)
    code, _, err = run([src, *FAST, "-q"])
    assert code == 0, err
    dst = tmp_path / "hdr_x2.mp4"
    with av.open(str(dst)) as c:
        vs = c.streams.video[0]
        cc = vs.codec_context
        assert cc.name == ("hevc" if encoder == "libx265" else "h264")
        assert cc.pix_fmt == "yuv420p10le"
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (9, 16, 9, 1)
        first = next(c.decode(vs))
        side = {sd.type.name for sd in first.side_data}
        if encoder == "libx265":
            assert {"MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"} <= side
    src_t, src_px = frames_of(src, "rgb48le")
    t, px = frames_of(dst, "rgb48le")
    assert t == src_t and len(px) == 6 and px[0].dtype == np.uint16
    # more than 8 bits of information survive: not every value is a multiple of 257
    assert np.count_nonzero(px[2] % 257) > px[2].size // 2
    assert mean_abs(px[2], image_upscale(src_px[2])) < 3.0 * 257
    if FFPROBE:
        s = ffprobe(dst)["streams"][0]
        assert s["pix_fmt"] == "yuv420p10le" and s["color_transfer"] == "smpte2084"
        assert s["color_primaries"] == "bt2020"


def test_animated_gif_to_mp4(tmp_path, photo):
    from PIL import Image

    durations = [100, 50, 200, 70, 100]
    ims = [Image.fromarray(moving(photo, 3 * i)) for i in range(5)]
    gif = tmp_path / "anim.gif"
    ims[0].save(gif, save_all=True, append_images=ims[1:], duration=durations, loop=0)
    videos, images = split_inputs([gif], None)
    assert videos == [] and images == [gif]  # without a video output it stays an image job
    dst = tmp_path / "anim.mp4"
    code, _, err = run([gif, "-o", dst, *FAST, "-q"])
    assert code == 0, err
    t, px = frames_of(dst)
    assert t == [Fraction(ms, 1000) for ms in (0, 100, 150, 350, 420)]
    assert len(px) == 5 and px[0].shape == (2 * H, 2 * W, 3)
    with av.open(str(dst)) as c:
        assert abs(c.duration / 1e6 - 0.52) <= 0.1


def test_webm_gets_vp9(tmp_path, mp4):
    dst = tmp_path / "out.webm"
    code, _, err = run([mp4, "-o", dst, *FAST, "-q"])
    assert code == 0, err
    assert "audio stream 1 (aac) left out: webm cannot hold it" in err
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    assert len(frames_of(dst)[1]) == 12


# -- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_one_line_exit_1_nothing_left(mp4, keep):
    data = mp4.read_bytes()
    bad = mp4.with_name("cut.mp4")
    bad.write_bytes(data[: int(len(data) * keep)])
    code, _, err = run([bad, *FAST, "-q"])
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"upscaler-edge: error: {bad}: ") and "cut.mp4" in err
    assert sorted(p.name for p in bad.parent.iterdir()) == ["clip.mp4", "cut.mp4"]


def test_existing_output_is_kept_unless_overwrite(mp4):
    dst = mp4.with_name("clip_x2.mp4")
    dst.write_bytes(b"keep me")
    code, _, err = run([mp4, *FAST, "-q"])
    assert code == 1 and "exists (use --overwrite)" in err
    assert dst.read_bytes() == b"keep me"
    assert run([mp4, *FAST, "-q", "--skip-existing"])[0] == 0
    assert dst.read_bytes() == b"keep me"
    assert run([mp4, *FAST, "-q", "--overwrite"])[0] == 0
    assert len(frames_of(dst)[1]) == 12


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--video-codec", "nosuch"], "no video encoder 'nosuch'"),
        (["-o", "{dir}/out.png"], "cannot write a video to 'out.png'"),
        (["--crf", "99"], "crf 99 is out of range"),
        (["-f", "png"], "-f png is an image format"),
    ],
)
def test_usage_errors_exit_2_before_any_work(mp4, extra, expected):
    extra = [a.replace("{dir}", str(mp4.parent)) for a in extra]
    code, _, err = run([mp4, *FAST, *extra])
    assert code == 2 and expected in err, err
    assert nothing_left_beside(mp4) == []
    assert sorted(p.name for p in mp4.parent.iterdir()) == ["clip.mp4"]


def test_sniffing_by_content(tmp_path, mp4, photo_png):
    renamed = tmp_path / "movie.bin"
    renamed.write_bytes(mp4.read_bytes())
    avif_like = tmp_path / "x.avif"
    avif_like.write_bytes(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 40)
    assert sniff(renamed) == "video" and sniff(avif_like) == "image"
    assert sniff(photo_png) == "image"
    videos, images = split_inputs([renamed, photo_png, tmp_path / "missing.mp4"], None)
    assert videos == [renamed] and images == [photo_png, tmp_path / "missing.mp4"]
    code, _, err = run([renamed, *FAST, "-q"])
    assert code == 0, err
    assert (tmp_path / "movie_x2.mp4").exists()


def test_images_ffmpeg_also_opens_stay_images(tmp_path, photo):
    from PIL import Image

    ico = tmp_path / "icon.ico"
    Image.fromarray(photo[:32, :32]).save(ico)
    tga = tmp_path / "pic.tga"
    Image.fromarray(photo[:16, :16]).save(tga)
    assert split_inputs([ico, tga], None) == ([], [ico, tga])


def test_without_pyav_a_video_says_what_to_install(mp4, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    code, _, err = run([mp4, *FAST])
    assert code == 2
    assert 'videos need PyAV: pip install "upscaler-edge[video]"' in err
    assert sorted(p.name for p in mp4.parent.iterdir()) == ["clip.mp4"]


# -- library: progress, cancel, resume -----------------------------------------------------------
def test_progress_reports_frames_fps_and_eta(mp4):
    seen = []
    result = upscale_video(mp4, None, FAST_OPTS, VideoOptions(segment_seconds=0.1), seen.append)
    assert result.frames == 12 and result.out_size == (2 * W, 2 * H)
    upscaling = [p for p in seen if p.phase == "upscaling" and p.frame_fraction == 0]
    assert [p.frames_done for p in upscaling] == list(range(1, 13))
    assert all(p.frames_total == 12 for p in upscaling)
    assert upscaling[-1].fps > 0 and upscaling[-1].eta_seconds == 0
    assert [p.phase for p in seen[-2:]] == ["joining", "done"]
    assert seen[-1].segments_done == 4


def test_cancel_leaves_no_output_and_keeps_finished_segments(mp4):
    cancel = threading.Event()
    dst = mp4.with_name("out.mp4")

    def stop_after_five(p):
        if p.frames_done >= 5:
            cancel.set()

    with pytest.raises(Cancelled):
        upscale_video(
            mp4, dst, FAST_OPTS, VideoOptions(segment_seconds=0.1), stop_after_five, cancel
        )
    assert not dst.exists()
    manifest = json.loads((job_folder(dst) / "job.json").read_text())
    assert 1 <= len(manifest["segments"]) <= 2
    assert not list(job_folder(dst).glob("*.tmp"))
    assert discard_job(dst) and not job_folder(dst).exists()
    assert nothing_left_beside(dst) == []


def test_changed_settings_start_over(mp4):
    dst = mp4.with_name("out.mp4")
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        upscale_video(
            mp4,
            dst,
            FAST_OPTS,
            VideoOptions(segment_seconds=0.1),
            lambda p: p.frames_done >= 7 and cancel.set(),
            cancel,
        )
    seen = []
    upscale_video(mp4, dst, FAST_OPTS, VideoOptions(segment_seconds=0.1, crf=30), seen.append)
    assert seen[0].frames_resumed == 0  # another crf: nothing reused
    assert not job_folder(dst).exists()


def test_usage_error_from_the_library_before_any_work(mp4):
    with pytest.raises(UsageError):
        upscale_video(mp4, mp4.with_name("x.mkv"), FAST_OPTS, VideoOptions(container="webm"))
    assert nothing_left_beside(mp4) == []


SLOW_CLI = """
import sys, time
from upscaler_edge.pipeline import Upscaler
real = Upscaler.upscale_picture
def slow(self, *a, **k):
    time.sleep(0.3)
    return real(self, *a, **k)
Upscaler.upscale_picture = slow
from upscaler_edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def wait_for_a_segment(proc: subprocess.Popen, manifest: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(manifest.read_text())["segments"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)


def test_ctrl_c_leaves_no_output_and_says_how_to_resume(tmp_path, photo):
    src = make_mp4(tmp_path / "clip.mp4", photo, frames=12)
    dst = tmp_path / "out.mp4"
    args = [str(src), "-o", str(dst), *FAST, "--segment", "0.1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *args], stderr=subprocess.PIPE, text=True
    )
    wait_for_a_segment(proc, job_folder(dst) / "job.json")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert "cancelled; no partial files were written" in err
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [job_folder(dst).name]
    assert not list(job_folder(dst).glob("*.tmp"))
    code, _, err = run([*args, "-q"])
    assert code == 0, err
    assert len(frames_of(dst)[1]) == 12 and not job_folder(dst).exists()


def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, photo):
    src = make_mp4(tmp_path / "long.mp4", photo, frames=12)
    dst = tmp_path / "out.mp4"
    args = [str(src), "-o", str(dst), *FAST, "--segment", "0.1", "-q"]  # 3 frames a segment
    manifest = job_folder(dst) / "job.json"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], stderr=subprocess.PIPE)
    try:
        wait_for_a_segment(proc, manifest)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    kept = json.loads(manifest.read_text())["segments"]
    assert 1 <= len(kept) < 4 and not dst.exists()

    code, _, err = run(args[:-1])  # the same command again (without -q, to see it resume)
    assert code == 0, err
    assert f"resuming after {3 * len(kept)} frames done earlier" in err
    assert not job_folder(dst).exists()

    ref = tmp_path / "ref.mp4"
    assert run([src, "-o", ref, *FAST, "--segment", "0.1", "-q"])[0] == 0
    t, px = frames_of(dst)
    ref_t, ref_px = frames_of(ref)
    assert t == ref_t and len(px) == 12

    assert all(np.array_equal(a, b) for a, b in zip(px, ref_px, strict=True))
    assert packets_of(dst, "audio") == packets_of(ref, "audio") == packets_of(src, "audio")
    assert nothing_left_beside(dst) == []
