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
