from __future__ import annotations

import threading

import pytest
from PIL import Image
from worker_faults import faulty_child

from upscaler_edge.errors import Cancelled, InputError, JobFailed
from upscaler_edge.options import Options
from upscaler_edge.worker import Worker

FAST = Options(model="realesr-animevideov3", scale=2, device="cpu", tile=32)


@pytest.fixture
def worker():
    with Worker(timeout=60, child_entry=faulty_child) as w:
        yield w


def test_runs_a_job_and_streams_progress(worker, photo_png, tmp_path):
    seen = []
    res = worker.run(photo_png, tmp_path / "o.png", FAST, progress=lambda d, t: seen.append((d, t)))
    assert res.out_size == (128, 96)
    assert seen[-1] == (4, 4)
    with Image.open(tmp_path / "o.png") as im:
        assert im.size == (128, 96)


def test_a_crashing_child_fails_the_job_and_the_next_job_succeeds(worker, photo_png, tmp_path):
    worker.run(photo_png, tmp_path / "warm.png", FAST)
    first_pid = worker.pid
    (tmp_path / ".fault-abort").touch()
    with pytest.raises(JobFailed, match="SIGABRT"):
        worker.run(photo_png, tmp_path / "a.png", FAST)
    (tmp_path / ".fault-abort").unlink()
    assert not (tmp_path / "a.png").exists()
    res = worker.run(photo_png, tmp_path / "b.png", FAST)
    assert res.out_size == (128, 96)
    assert worker.pid != first_pid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "photo.png", "warm.png"]


def test_a_hung_child_is_stopped_at_the_timeout(worker, photo_png, tmp_path):
    (tmp_path / ".fault-hang").touch()
    with pytest.raises(JobFailed, match="time limit"):
        worker.run(photo_png, tmp_path / "h.png", FAST, timeout=3)
    (tmp_path / ".fault-hang").unlink()
    assert worker.run(photo_png, tmp_path / "ok.png", FAST).out_size == (128, 96)


def test_cancel_stops_between_tiles_and_leaves_no_output(worker, photo_png, tmp_path):
    cancel = threading.Event()

    def progress(done, total):
        if done >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        # the big model makes each tile slow enough that the cancel lands mid-job
        worker.run(
            photo_png,
            tmp_path / "c.png",
            FAST.replace(model="realesrgan-x4plus", scale=None),
            progress=progress,
            cancel=cancel,
        )
    assert not (tmp_path / "c.png").exists()
    assert worker.run(photo_png, tmp_path / "ok.png", FAST).out_size == (128, 96)


def test_errors_keep_their_class_and_message(worker, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        worker.run(bad, tmp_path / "o.png", FAST)


def test_cancel_lands_while_fast_progress_keeps_coming(worker, photo, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(photo).save(big)  # 160x160 at tile 32: 25 fast tiles, a message every few ms
    cancel = threading.Event()

    def progress(done, total):
        if done >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        worker.run(big, tmp_path / "c.png", FAST, progress=progress, cancel=cancel)
    assert not (tmp_path / "c.png").exists()


def test_the_child_does_not_rerun_the_parents_script(tmp_path, photo_png):
    import subprocess
    import sys

    script = tmp_path / "no_main_guard.py"
    script.write_text(
        "from upscaler_edge.worker import Worker\n"
        "from upscaler_edge.options import Options\n"
        "print('script body runs', flush=True)\n"
        "with Worker(timeout=60) as w:\n"
        f"    r = w.run({str(photo_png)!r}, {str(tmp_path / 'o.png')!r},\n"
        "              Options(model='realesr-animevideov3', scale=2, device='cpu'))\n"
        "print(r.out_size)\n"
    )
    res = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["script body runs", "(128, 96)"]


# -- video segments (video.distributed) --------------------------------------------------------
@pytest.fixture
def planned(tmp_path, photo):
    """A 30-frame clip in its own folder (fault markers go beside it) and its plan, as JSON."""
    pytest.importorskip("av", reason="video needs PyAV")
    from test_video_distributed import SEG, make_clip

    from upscaler_edge.video.distributed import plan_segments

    folder = tmp_path / "src"
    folder.mkdir()
    clip = make_clip(folder / "clip.mp4", photo)
    return clip, plan_segments(clip, FAST, SEG).to_json()


def test_runs_video_segments_that_join_to_the_one_machine_file(worker, planned, tmp_path):
    from test_video_distributed import SEG

    from upscaler_edge.video import upscale_video
    from upscaler_edge.video.distributed import SegmentPlan, join_segments

    clip, plan_json = planned
    seen: list[tuple[int, int]] = []
    parts = []
    for i in reversed(range(plan_json["count"])):
        dst = tmp_path / f"seg-{i}.pkt"
        meta = worker.run_segment(
            clip, plan_json, i, dst, FAST, progress=lambda d, t: seen.append((d, t))
        )
        parts.append((meta, dst))
    assert seen[-1] == (8, 8) and (6, 6) in seen

    plan = SegmentPlan.from_json(plan_json)
    join_segments(clip, plan, parts, tmp_path / "dist.mp4")
    upscale_video(clip, tmp_path / "ref.mp4", FAST, SEG)
    assert (tmp_path / "dist.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()


def test_a_segment_job_crash_or_timeout_leaves_nothing(worker, planned, tmp_path):
    clip, plan_json = planned
    dst = tmp_path / "seg-1.pkt"
    (clip.parent / ".fault-abort").touch()
    with pytest.raises(JobFailed, match="SIGABRT"):
        worker.run_segment(clip, plan_json, 1, dst, FAST)
    (clip.parent / ".fault-abort").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]

    (clip.parent / ".fault-hang").touch()
    with pytest.raises(JobFailed, match="time limit"):
        worker.run_segment(clip, plan_json, 1, dst, FAST, timeout=3)
    (clip.parent / ".fault-hang").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]

    meta = worker.run_segment(clip, plan_json, 1, dst, FAST)
    assert meta["frames"] == 8 and dst.stat().st_size == meta["size"]


def test_a_malformed_segment_job_is_refused_and_the_worker_goes_on(worker, planned, tmp_path):
    clip, plan_json = planned
    with pytest.raises(InputError, match=r"plan\.frames must be int"):
        worker.run_segment(clip, {**plan_json, "frames": "30"}, 0, tmp_path / "s.pkt", FAST)
    with pytest.raises(InputError, match="out of range"):  # checked in the child
        worker.run_segment(clip, plan_json, 9, tmp_path / "s.pkt", FAST)
    assert worker.run_segment(clip, plan_json, 3, tmp_path / "s.pkt", FAST)["frames"] == 6
