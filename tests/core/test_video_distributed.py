"""Segments of one video made separately (in any order, as several machines would) and
joined: the result must be what ``upscale_video`` writes on one machine, and every way a
segment or plan can go wrong must be named, with no output written.

Clips are made here with PyAV (see test_video); the model is the fast one at scale 2.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason='video needs PyAV: pip install "upscaler-edge[video]"')

from test_video import (  # noqa: E402
    FAST_OPTS,
    add_sine_audio,
    frames_of,
    make_vfr_mkv,
    moving,
    mux_audio,
    nothing_left_beside,
    packets_of,
)

from upscaler_edge.errors import (  # noqa: E402
    Cancelled,
    InputError,
    OutputError,
    SegmentError,
    UsageError,
)
from upscaler_edge.integrity import sha256  # noqa: E402
from upscaler_edge.video import VideoOptions, job_folder, upscale_video  # noqa: E402
from upscaler_edge.video.distributed import (  # noqa: E402
    SegmentPlan,
    encode_segment,
    join_segments,
    plan_segments,
    segment_metadata_keys,
)

W, H, N = 64, 48, 30
SEG = VideoOptions(segment_seconds=8 / 30)  # 8 frames a segment at 30 fps: 8 + 8 + 8 + 6


def make_clip(path: Path, photo: np.ndarray, frames: int = N) -> Path:
    """64x48 H.264 + AAC at 30 fps with a title, as test_video's make_mp4."""
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "a small test clip"
        v = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a, secs = add_sine_audio(out, "aac", 48000, frames / 30)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(moving(photo, i, W, H), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        mux_audio(out, a, secs, 1024)
    return path


def make_raw_h264(path: Path, photo: np.ndarray, frames: int = 20) -> Path:
    """An Annex B H.264 stream: no container, so no timestamps at all."""
    with av.open(str(path), "w", format="h264") as out:
        v = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(moving(photo, i, W, H), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    return path


def encode_all(src: Path, plan: SegmentPlan, folder: Path, order=None) -> list:
    """Every segment, in ``order`` (default: last first), as workers would hand them back."""
    folder.mkdir(exist_ok=True)
    parts = []
    for i in order if order is not None else reversed(range(plan.count)):
        path = folder / f"seg-{i}.pkt"
        meta = encode_segment(src, plan, i, path, FAST_OPTS)
        json.dumps(meta)  # plain JSON types
        parts.append((meta, path))
    return parts


def assert_same_video(a: Path, b: Path) -> None:
    ta, pa = frames_of(a)
    tb, pb = frames_of(b)
    assert ta == tb
    assert len(pa) == len(pb)
    assert all(np.array_equal(x, y) for x, y in zip(pa, pb, strict=True))
    for kind in ("video", "audio", "subtitle"):
        assert packets_of(a, kind) == packets_of(b, kind), kind


@pytest.fixture
def clip(tmp_path, photo) -> Path:
    return make_clip(tmp_path / "clip.mp4", photo)


@pytest.fixture
def plan(clip) -> SegmentPlan:
    return plan_segments(clip, FAST_OPTS, SEG)


@pytest.fixture(scope="module")
def shared_plan(tmp_path_factory, photo) -> SegmentPlan:
    """A plan for the tests that only read it (planning loads the model)."""
    return plan_segments(
        make_clip(tmp_path_factory.mktemp("shared") / "clip.mp4", photo), FAST_OPTS, SEG
    )


@pytest.fixture
def parts(clip, plan, tmp_path) -> list:
    return encode_all(clip, plan, tmp_path / "parts")


# -- the same output as on one machine ---------------------------------------------------------
def test_segments_in_reverse_join_to_upscale_videos_exact_file(clip, plan, parts, tmp_path):
    assert (plan.frames, plan.segment_frames, plan.count) == (N, 8, 4)
    assert plan.cut_pts is not None  # MP4 timestamps: the workers seek
    assert [m["frames"] for m, _ in parts] == [6, 8, 8, 8]

    ref = upscale_video(clip, tmp_path / "ref.mp4", FAST_OPTS, SEG)
    got = join_segments(clip, plan, parts, tmp_path / "dist.mp4")

    # libx264 (pinned to AVX2 where AVX-512 exists) is deterministic: the very same bytes
    assert (tmp_path / "dist.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    assert_same_video(tmp_path / "dist.mp4", tmp_path / "ref.mp4")
    assert (got.frames, got.out_size, got.encoder, got.model) == (
        ref.frames,
        ref.out_size,
        ref.encoder,
        ref.model,
    )
    with av.open(str(tmp_path / "dist.mp4")) as c:
        assert c.metadata.get("title") == "a small test clip"
    assert nothing_left_beside(tmp_path / "dist.mp4") == []


def test_vfr_mkv_with_subtitles_and_attachment(tmp_path, photo):
    src = make_vfr_mkv(tmp_path / "vfr.mkv", photo, tmp_path)
    video = VideoOptions(segment_seconds=0.2)
    plan = plan_segments(src, FAST_OPTS, video)
    assert plan.count >= 2 and plan.frames == 12 and plan.cut_pts is not None
    parts = encode_all(src, plan, tmp_path / "parts")
    upscale_video(src, tmp_path / "ref.mkv", FAST_OPTS, video)
    join_segments(src, plan, parts, tmp_path / "dist.mkv")
    # Matroska writes random UIDs: the packets, not the bytes, are the same
    assert_same_video(tmp_path / "dist.mkv", tmp_path / "ref.mkv")
    with av.open(str(tmp_path / "dist.mkv")) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle", "attachment"]


def test_source_without_timestamps_is_decoded_and_skipped(tmp_path, photo):
    src = make_raw_h264(tmp_path / "raw.h264", photo)
    video = VideoOptions(segment_seconds=6 / 30)
    plan = plan_segments(src, FAST_OPTS, video)
    assert plan.cut_pts is None and plan.count == 4 and plan.container == "mp4"
    parts = encode_all(src, plan, tmp_path / "parts", order=[2, 0, 3, 1])
    upscale_video(src, tmp_path / "ref.mp4", FAST_OPTS, video)
    join_segments(src, plan, parts, tmp_path / "dist.mp4")
    assert (tmp_path / "dist.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()


def test_animated_gif(tmp_path, photo):
    from PIL import Image

    durations = [100, 50, 200, 70, 100]
    ims = [Image.fromarray(moving(photo, 3 * i, W, H)) for i in range(5)]
    gif = tmp_path / "anim.gif"
    ims[0].save(gif, save_all=True, append_images=ims[1:], duration=durations, loop=0)
    video = VideoOptions(segment_seconds=0.2, container="mp4")  # 2 frames a segment
    plan = plan_segments(gif, FAST_OPTS, video)
    assert (plan.frames, plan.count, plan.cut_pts) == (5, 3, None)
    parts = encode_all(gif, plan, tmp_path / "parts")
    upscale_video(gif, tmp_path / "ref.mp4", FAST_OPTS, video)
    join_segments(gif, plan, parts, tmp_path / "dist.mp4")
    assert (tmp_path / "dist.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()


@pytest.mark.parametrize(
    ("codec", "container", "suffix"),
    [("hevc", "mp4", "mp4"), ("av1", "mp4", "mp4"), ("vp9", "webm", "webm")],
)
def test_other_encoders_are_deterministic_too(clip, tmp_path, codec, container, suffix):
    video = SEG.replace(codec=codec, container=container)
    try:
        plan = plan_segments(clip, FAST_OPTS, video)
    except UsageError as exc:
        pytest.skip(f"{codec}: {exc}")
    parts = encode_all(clip, plan, tmp_path / "parts")
    ref, dist = tmp_path / f"ref.{suffix}", tmp_path / f"dist.{suffix}"
    upscale_video(clip, ref, FAST_OPTS, video)
    join_segments(clip, plan, parts, dist)
    assert_same_video(dist, ref)
    if container == "mp4":  # WebM, as Matroska, writes random UIDs
        assert dist.read_bytes() == ref.read_bytes()


def test_cancel_leaves_no_segment(clip, plan, tmp_path):
    cancel = threading.Event()

    def stop_after_two(p):
        if p.frames_done >= 2:
            cancel.set()

    with pytest.raises(Cancelled):
        encode_segment(
            clip, plan, 1, tmp_path / "s.pkt", FAST_OPTS, progress=stop_after_two, cancel=cancel
        )
    assert not (tmp_path / "s.pkt").exists() and not (tmp_path / "s.pkt.tmp").exists()


def test_a_plan_that_wrongly_allows_seeking_is_caught(tmp_path, photo, monkeypatch):
    import upscaler_edge.video.distributed as distributed

    src = make_raw_h264(tmp_path / "raw.h264", photo)
    # as if the packets had had timestamps that the decoded frames then lack
    monkeypatch.setattr(distributed, "_scan", lambda src, info: (20, list(range(20))))
    plan = plan_segments(src, FAST_OPTS, VideoOptions(segment_seconds=6 / 30))
    assert plan.cut_pts == (4, 9, 14)  # raw H.264 reads as 25 fps: 5 frames a segment
    with pytest.raises(InputError, match="timestamps are not the packets'"):
        encode_segment(src, plan, 0, tmp_path / "s.pkt", FAST_OPTS)
    assert not (tmp_path / "s.pkt").exists() and not (tmp_path / "s.pkt.tmp").exists()


def test_seeking_and_decoding_from_the_start_make_the_same_segment(clip, plan, tmp_path):
    unseekable = dataclasses.replace(plan, cut_pts=None)
    a = encode_segment(clip, plan, 2, tmp_path / "seek.pkt", FAST_OPTS)
    b = encode_segment(clip, unseekable, 2, tmp_path / "skip.pkt", FAST_OPTS)
    assert a["sha256"] == b["sha256"] == sha256(tmp_path / "skip.pkt")
    assert (a["first_frame"], a["frames"], a["first_pts"]) == (16, 8, b["first_pts"])


def test_progress_counts_the_segments_frames(clip, plan, tmp_path):
    seen = []
    encode_segment(clip, plan, 3, tmp_path / "s.pkt", FAST_OPTS, progress=seen.append)
    assert seen[-1].frames_done == 6 and seen[-1].frames_total == 6


# -- the plan ----------------------------------------------------------------------------------
def test_plan_json_round_trip(shared_plan):
    plan = shared_plan
    data = json.loads(json.dumps(plan.to_json()))
    again = SegmentPlan.from_json(data)
    assert again == plan and again.digest == plan.digest
    assert data["encoder"]["size"] == [2 * W, 2 * H] and data["tile"] >= 32
    assert data["source"]["hashed"] == "whole" and len(data["cut_pts"]) == 3


def _set(path: str, value):
    def change(d):
        *head, last = path.split(".")
        for k in head:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("frames", "30"), r"plan\.frames must be int, not str"),
        (_set("tta", 1), r"plan\.tta must be bool"),
        (_set("scale", True), r"plan\.scale must be int, not bool"),
        (_set("count", 5), "are not 5"),
        (_set("model", KeyError), "missing model"),
        (_set("extra", 1), "unknown extra"),
        (_set("version", 2), "version 2"),
        (_set("source.sha256", "abc"), "sha256 in lowercase hex"),
        (_set("source.hashed", "part"), "whole or ends"),
        (_set("time_base", "1/0"), "fraction"),
        (_set("encoder.rate", 30), r"plan\.encoder\.rate must be str"),
        (_set("encoder.options", {"crf": 18}), "text to text"),
        (_set("encoder.colors", [1, 1, 1]), "4 whole numbers"),
        (_set("encoder.depth", 10), "8 or 16"),
        (_set("cut_pts", [1, 2]), "3 whole numbers"),
        (_set("container", "avi"), "unknown container"),
        (_set("tile", 8), "at least 32"),
        (_set("encoder", []), r"plan\.encoder must be dict"),
    ],
)
def test_malformed_plan_is_an_input_error(shared_plan, change, message):
    data = copy.deepcopy(shared_plan.to_json())
    change(data)
    with pytest.raises(InputError, match=message):
        SegmentPlan.from_json(data)


def test_a_plan_that_is_not_an_object(shared_plan):
    with pytest.raises(InputError, match="JSON object"):
        SegmentPlan.from_json([shared_plan.to_json()])


# -- the worker's checks -----------------------------------------------------------------------
@pytest.mark.parametrize("index", [-1, 4, True, 1.0])
def test_index_out_of_range(clip, plan, tmp_path, index):
    with pytest.raises(InputError, match=r"out of range 0\.\.3"):
        encode_segment(clip, plan, index, tmp_path / "s.pkt", FAST_OPTS)
    assert not (tmp_path / "s.pkt").exists()


def test_a_source_changed_since_planning_is_refused(clip, plan, tmp_path, photo):
    make_clip(clip, photo, frames=N + 1)
    with pytest.raises(InputError, match="not the file the plan was made for"):
        encode_segment(clip, plan, 0, tmp_path / "s.pkt", FAST_OPTS)
    assert not (tmp_path / "s.pkt").exists() and not (tmp_path / "s.pkt.tmp").exists()


def test_a_plan_counting_too_many_frames_fails_the_last_segment(clip, plan, tmp_path):
    # as if the decoder gave fewer frames than the packets counted
    wrong = dataclasses.replace(plan, frames=N + 1)
    with pytest.raises(InputError, match="fewer frames than the plan counted"):
        encode_segment(clip, wrong, 3, tmp_path / "s.pkt", FAST_OPTS)
    fewer = dataclasses.replace(plan, frames=N - 1)
    with pytest.raises(InputError, match="more frames than the plan counted"):
        encode_segment(clip, fewer, 3, tmp_path / "s.pkt", FAST_OPTS)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".pkt", ".tmp")) == []


# -- the join's checks -------------------------------------------------------------------------
def refuses(clip, plan, parts, tmp_path, message, index):
    dst = tmp_path / "out.mp4"
    with pytest.raises(SegmentError, match=message) as caught:
        join_segments(clip, plan, parts, dst)
    assert caught.value.index == index
    assert not dst.exists() and nothing_left_beside(dst) == []
    assert not job_folder(dst).exists()


def test_a_missing_segment_is_named(clip, plan, parts, tmp_path):
    without_2 = [p for p in parts if p[0]["index"] != 2]
    refuses(clip, plan, without_2, tmp_path, "segment 2 of 4 is missing", 2)
    gone = parts[0][1]  # segment 3's file
    gone.unlink()
    refuses(clip, plan, parts, tmp_path, r"segment 3 \(.*seg-3.pkt\) is missing", 3)


def test_a_damaged_segment_is_named(clip, plan, parts, tmp_path):
    path = next(p for m, p in parts if m["index"] == 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    refuses(clip, plan, parts, tmp_path, r"segment 1 \(seg-1.pkt\) is damaged", 1)
    path.write_bytes(bytes(data[:-10]))
    refuses(clip, plan, parts, tmp_path, r"segment 1 \(seg-1.pkt\) is damaged", 1)


def test_metadata_that_does_not_fit_is_named(clip, plan, parts, tmp_path):
    def with_change(index, **change):
        return [(m | change if m["index"] == index else m, p) for m, p in parts]

    refuses(clip, plan, with_change(2, frames=7), tmp_path, "holds frames 16..22, not 16..23", 2)
    refuses(clip, plan, with_change(1, first_pts=1), tmp_path, "does not start where", 1)
    refuses(clip, plan, with_change(3, plan="0" * 64), tmp_path, "another plan", 3)
    refuses(clip, plan, with_change(2, extradata="AAAA"), tmp_path, "2's encoder header", 2)
    refuses(clip, plan, with_change(1, size="3"), tmp_path, "size must be int", 1)
    refuses(clip, plan, parts + parts[:1], tmp_path, "given twice", 3)
    bad = [({k: v for k, v in m.items() if k != "sha256"}, p) for m, p in parts]
    with pytest.raises(SegmentError, match="missing sha256"):
        join_segments(clip, plan, bad, tmp_path / "out.mp4")
    assert set(parts[0][0]) == segment_metadata_keys()


def test_segments_from_another_encoder_build_are_refused(clip, plan, parts, tmp_path):
    other = [(m | {"extradata": "AAAA"}, p) for m, p in parts]  # all alike, but not ours
    dst = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="another FFmpeg build"):
        join_segments(clip, plan, other, dst)
    assert not dst.exists() and nothing_left_beside(dst) == []


def test_a_segment_of_another_plan_is_refused(clip, plan, parts, tmp_path):
    other = plan_segments(clip, FAST_OPTS, SEG.replace(crf=30))
    assert other.digest != plan.digest
    mixed = [*parts[:3], encode_all(clip, other, tmp_path / "other", order=[0])[0]]
    refuses(clip, plan, mixed, tmp_path, "segment 0 was made for another plan", 0)


def test_join_refuses_a_changed_source_and_an_existing_output(clip, plan, parts, tmp_path, photo):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"keep me")
    from upscaler_edge.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        join_segments(clip, plan, parts, dst)
    assert dst.read_bytes() == b"keep me"
    join_segments(clip, plan, parts, dst, overwrite=True)
    assert len(frames_of(dst)[1]) == N
    make_clip(clip, photo, frames=N - 1)
    with pytest.raises(InputError, match="not the file the plan was made for"):
        join_segments(clip, plan, parts, tmp_path / "again.mp4")
    assert not (tmp_path / "again.mp4").exists()
