"""The cluster end to end: a real NATS server, worker processes, the client."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cluster_fixtures import WORKER_DEVICE
from tests.conftest import FAST_MODEL
from upscaler_edge.cluster.client import ClusterClient
from upscaler_edge.cluster.connect import Address, close, connect
from upscaler_edge.cluster.protocol import JOB_SUBJECTS
from upscaler_edge.errors import Cancelled, JobFailed
from upscaler_edge.options import Options
from upscaler_edge.pipeline import upscale_file
from upscaler_edge.video import VideoOptions

OPTS = Options(model=FAST_MODEL, scale=2, device=WORKER_DEVICE)  # as the workers run it
SEG = VideoOptions(segment_seconds=8 / 30)


def _inputs(folder: Path, photo: np.ndarray, n: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(photo[i * 8 : i * 8 + 48, i * 4 : i * 4 + 64]).save(p)
        paths.append(p)
    return paths


def test_a_batch_spreads_over_two_workers(workers, tmp_path, photo):
    workers.start("alpha")
    workers.start("beta")
    workers.wait_joined("alpha", "beta")
    srcs = _inputs(tmp_path / "in", photo, 6)
    out = tmp_path / "out"
    out.mkdir()
    with ClusterClient(workers.address) as client:
        futures = [client.submit(s, out / f"{s.stem}_x2.png", OPTS) for s in srcs]
        results = [f.result(180) for f in futures]
        seen = {w.name for w in client.workers()}
    assert seen == {"alpha", "beta"}
    done_by = {r.device.split(":")[0] for r in results}
    assert done_by == {"alpha", "beta"}, done_by
    for src, r in zip(srcs, results, strict=True):
        assert r.out_size == (128, 96)
        local = upscale_file(src, tmp_path / f"local_{src.name}", OPTS)
        got = np.asarray(Image.open(r.dst))
        want = np.asarray(Image.open(local.dst))
        assert np.array_equal(got, want), src.name


def make_clip(path: Path, photo: np.ndarray) -> Path:
    """64x48 H.264, 30 frames at 30 fps: with SEG, 4 segments of 8, 8, 8, 6 frames."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            rgb = np.ascontiguousarray(photo[i : i + 48, i : i + 64])
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    return path


def _slow_input(tmp_path: Path, photo: np.ndarray) -> Path:
    """400x400 in 32-pixel tiles: 169 tiles, long enough to stop a worker in the middle."""
    src = tmp_path / "big.png"
    Image.fromarray(np.tile(photo, (3, 3, 1))[:400, :400]).save(src)
    return src


SLOW = OPTS.replace(tile=32)


def _wait_running(client, future, want: str | None = None, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (name := client.running_on(future)) is None or (want and name != want):
        assert not future.done(), future.result()
        assert time.monotonic() < deadline, "no worker reported progress"
        time.sleep(0.02)
    return name


def test_a_worker_killed_mid_job_loses_nothing(workers, tmp_path, photo):
    workers.start("alpha")
    workers.start("beta")
    workers.wait_joined("alpha", "beta")
    src = _slow_input(tmp_path, photo)
    dst = tmp_path / "big_x2.png"
    with ClusterClient(workers.address) as client:
        future = client.submit(src, dst, SLOW)
        victim = _wait_running(client, future)
        workers.procs[victim].send_signal(signal.SIGKILL)
        result = future.result(180)
        survivor = ({"alpha", "beta"} - {victim}).pop()
        assert result.device.startswith(f"{survivor}:")
        time.sleep(1)
        assert client.ignored == 0
    assert result.out_size == (800, 800)
    want = upscale_file(src, tmp_path / "local.png", SLOW)
    assert np.array_equal(np.asarray(Image.open(dst)), np.asarray(Image.open(want.dst)))
    assert [p.name for p in tmp_path.glob(".big_x2.png*")] == []


def test_a_late_result_from_a_sleeping_worker_is_ignored(workers, tmp_path, photo):
    workers.start("alpha")
    workers.start("beta")
    workers.wait_joined("alpha", "beta")
    src = _slow_input(tmp_path, photo)
    dst = tmp_path / "big_x2.png"
    with ClusterClient(workers.address) as client:
        future = client.submit(src, dst, SLOW)
        sleeper = _wait_running(client, future)
        workers.procs[sleeper].send_signal(signal.SIGSTOP)  # a laptop closing its lid
        try:
            result = future.result(180)  # the other worker, after the ack wait
        finally:
            workers.procs[sleeper].send_signal(signal.SIGCONT)
        assert not result.device.startswith(f"{sleeper}:")
        first = dst.read_bytes()
        deadline = time.monotonic() + 60
        while client.ignored == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the sleeper wakes up, finishes and answers too
        assert client.ignored == 1
        assert dst.read_bytes() == first


def test_a_job_whose_workers_keep_vanishing_fails_with_an_answer(workers, tmp_path, photo):
    src = _slow_input(tmp_path, photo)
    dst = tmp_path / "big_x2.png"
    with ClusterClient(workers.address) as client:
        future = client.submit(src, dst, SLOW)
        for name in ("alpha", "beta"):  # MAX_DELIVER = 2 deliveries, both workers die
            workers.start(name)
            _wait_running(client, future, name)
            workers.procs[name].send_signal(signal.SIGKILL)
            workers.procs[name].wait()
        workers.start("gamma")  # JetStream gives up when a live worker asks for work next
        with pytest.raises(JobFailed, match="no worker could finish it"):
            future.result(60)
    assert not dst.exists()
    assert "big.png" not in workers.log("gamma")


def test_malformed_messages_are_rejected_and_the_worker_goes_on(workers, tmp_path, photo):
    workers.start("alpha")
    workers.wait_joined("alpha")

    async def publish_garbage() -> None:
        nc = await connect(workers.address, "test")
        js = nc.jetstream()
        for body in (
            b"\xff\x00 not json",
            b"[1, 2]",
            json.dumps({"v": 1, "kind": "shell", "cmd": "rm -rf /"}).encode(),
            json.dumps({"v": 1, "kind": "image", "job": "../../etc", "index": 0}).encode(),
        ):
            await js.publish(JOB_SUBJECTS["small"], body)
            await js.publish(JOB_SUBJECTS["large"], body)
        await close(nc)

    asyncio.run(publish_garbage())
    (src,) = _inputs(tmp_path / "in", photo, 1)
    with ClusterClient(workers.address) as client:
        result = client.submit(src, tmp_path / "ok.png", OPTS).result(120)
    assert result.out_size == (128, 96)
    assert workers.procs["alpha"].poll() is None
    assert workers.log("alpha").count("rejected a malformed job message") == 8


def test_queued_jobs_survive_a_coordinator_restart(coordinator, workers, tmp_path, photo):
    server, _ = coordinator
    srcs = _inputs(tmp_path / "in", photo, 2)
    with ClusterClient(workers.address) as client:
        futures = [client.submit(s, tmp_path / f"{s.stem}_x2.png", OPTS) for s in srcs]
        server.stop()  # no worker has taken them yet
        server.start()
        workers.start("alpha")
        results = [f.result(180) for f in futures]
    assert [r.out_size for r in results] == [(128, 96), (128, 96)]
    assert all(r.dst.exists() for r in results)


def test_a_wrong_token_or_certificate_is_refused(coordinator, tmp_path):
    _, address = coordinator
    base = [sys.executable, "-m", "upscaler_edge", "--serve", address.url, "--name", "x"]
    save = ["--save-address", str(tmp_path / "a.json")]
    wrong_token = subprocess.run(
        [*base, "--token", "nope", "--tls-pin", address.tls_pin, *save],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong_token.returncode == 2
    assert wrong_token.stderr.strip().endswith("refused the token")
    wrong_pin = subprocess.run(
        [*base, "--token", address.token, "--tls-pin", "0" * 64, *save],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong_pin.returncode == 2
    assert "is not the coordinator you joined" in wrong_pin.stderr


def test_a_videos_segments_are_done_by_both_workers_and_joined(workers, tmp_path, photo):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    from upscaler_edge.video import upscale_video

    workers.start("alpha")
    workers.start("beta")
    workers.wait_joined("alpha", "beta")
    clip = make_clip(tmp_path / "clip.mp4", photo)
    dst = tmp_path / "clip_x2.mp4"
    seen: list[tuple[int, int]] = []
    with ClusterClient(workers.address) as client:
        result = client.run_video(
            clip, dst, OPTS, SEG, progress=lambda d, t: seen.append((d, t)), timeout=300
        )
    assert result.frames == 30
    assert result.out_size == (128, 96)
    assert {part.split(":")[0] for part in result.device.split(", ")} == {"alpha", "beta"}
    assert seen[-1] == (30, 30)
    alone = upscale_video(clip, tmp_path / "alone.mp4", OPTS, SEG)
    assert dst.read_bytes() == alone.dst.read_bytes()  # MP4 from x264: the same bytes
    done = [workers.log(n).count("done segment clip.mp4") for n in ("alpha", "beta")]
    assert sum(done) == 4 and all(done), done
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".clip_x2")] == []


def test_the_coordinator_prints_the_join_command_and_the_cli_batch_uses_it(
    tmp_path, photo, monkeypatch
):
    from tests.cluster_fixtures import Workers, free_port
    from upscaler_edge.cli import main
    from upscaler_edge.cluster import cli as cluster_cli

    port = free_port()
    saved = tmp_path / "cluster.json"
    coord = subprocess.Popen(
        [
            sys.executable, "-m", "upscaler_edge", "--coordinator", "--no-local-worker",
            "--port", str(port), "--listen", "127.0.0.1", "--advertise", "127.0.0.1",
            "--data-dir", str(tmp_path / "coord"), "--save-address", str(saved),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert coord.stdout is not None
        lines = []
        while not any("--serve" in line for line in lines):
            line = coord.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        join = next(line for line in lines if "--serve" in line).split()
        token = (tmp_path / "coord" / "token").read_text().strip()
        assert join[:4] == ["upscaler-edge", "--serve", f"nats://127.0.0.1:{port}", "--token"]
        assert join[4] == token and join[5] == "--tls-pin" and len(join[6]) == 64
        address = Address.load(saved)
        assert (address.token, address.tls_pin) == (token, join[6])

        workers = Workers(address, tmp_path)
        try:
            workers.start("alpha")
            workers.wait_joined("alpha")
            srcs = _inputs(tmp_path / "in", photo, 3)
            monkeypatch.setattr(cluster_cli, "address_file", lambda: saved)
            out, err = io.StringIO(), io.StringIO()
            rc = main(
                [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", FAST_MODEL,
                 "-s", "2", "--cluster"],
                stdout=out, stderr=err,
            )  # fmt: skip
        finally:
            workers.stop_all()
        assert rc == 0, err.getvalue() + out.getvalue()
        for src in srcs:
            with Image.open(tmp_path / "out" / "in" / f"{src.stem}_x2.png") as im:
                assert im.size == (128, 96)
        assert "on alpha:" in out.getvalue()
        assert "3 done, 0 failed" in err.getvalue()
    finally:
        coord.terminate()
        coord.wait(15)


def test_the_cli_says_when_no_cluster_is_set_up(tmp_path, photo, monkeypatch):
    from upscaler_edge.cli import main
    from upscaler_edge.cluster import cli as cluster_cli

    monkeypatch.setattr(cluster_cli, "address_file", lambda: tmp_path / "none.json")
    (src,) = _inputs(tmp_path / "in", photo, 1)
    err = io.StringIO()
    rc = main([str(src), "--cluster"], stdout=io.StringIO(), stderr=err)
    assert rc == 2
    assert "no cluster is set up on this PC" in err.getvalue()


def test_a_small_only_worker_leaves_videos_to_the_others(workers, tmp_path, photo):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    workers.start("little", "--small-only")
    workers.wait_joined("little")
    clip = make_clip(tmp_path / "clip.mp4", photo)
    (src,) = _inputs(tmp_path / "in", photo, 1)
    with ClusterClient(workers.address) as client:
        video = client.submit_video(clip, tmp_path / "clip_x2.mp4", OPTS, SEG)
        image = client.submit(src, tmp_path / "img_x2.png", OPTS).result(120)
        assert image.device.startswith("little:")
        time.sleep(3)
        assert not video.done()  # segments are large jobs: nobody takes them yet
        workers.start("big")
        result = video.result(180)
    assert result.frames == 30
    assert workers.log("big").count("done segment clip.mp4") == 4
    assert "segment" not in workers.log("little")


def test_plain_tcp_and_a_worker_in_this_process(tmp_path, photo):
    """--no-tls (a trusted network): no pin; the Node class driven directly."""
    from tests.cluster_fixtures import free_port
    from upscaler_edge.cluster.cli import _setup
    from upscaler_edge.cluster.node import Node
    from upscaler_edge.cluster.server import Coordinator

    server = Coordinator(tmp_path / "c", port=free_port(), listen="127.0.0.1",
                         advertise="127.0.0.1", tls=False)  # fmt: skip
    address = server.start()
    try:
        assert address.tls_pin is None and "--tls-pin" not in address.join_command()
        asyncio.run(_setup(address, 5.0, 2))
        node = Node(address, name="inproc", options=Options(device=WORKER_DEVICE))
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(target=loop.run_until_complete, args=(node.run(stop),))
        thread.start()
        try:
            (src,) = _inputs(tmp_path / "in", photo, 1)
            with ClusterClient(address) as client:
                result = client.run(src, tmp_path / "out.png", OPTS, timeout=120)
                deadline = time.monotonic() + 15
                while not any(w.jobs_done for w in client.workers()):
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                (info,) = client.workers()
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
        assert result.out_size == (128, 96) and result.device.startswith("inproc:")
        assert info.name == "inproc" and info.jobs_done == 1 and "CPU" in info.device
        assert info.mp_per_s and info.mp_per_s > 0
    finally:
        server.stop()


def test_a_worker_stopped_with_ctrl_c_hands_its_job_back(workers, tmp_path, photo):
    workers.start("alpha")
    workers.wait_joined("alpha")
    src = _slow_input(tmp_path, photo)
    with ClusterClient(workers.address) as client:
        future = client.submit(src, tmp_path / "big_x2.png", SLOW)
        _wait_running(client, future, "alpha")
        workers.procs["alpha"].send_signal(signal.SIGINT)
        workers.procs["alpha"].wait(30)  # stops its job at once, not after it
        workers.start("beta")
        result = future.result(180)
    assert result.device.startswith("beta:")
    assert "done image" not in workers.log("alpha")


def test_a_cluster_video_resumes_from_its_finished_segments(workers, tmp_path, photo):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    from upscaler_edge.video import upscale_video

    clip = make_clip(tmp_path / "clip.mp4", photo)
    dst = tmp_path / "clip_x2.mp4"
    parts = tmp_path / ".clip_x2.mp4.cluster"
    workers.start("alpha")
    with ClusterClient(workers.address) as client:
        video = client.submit_video(clip, dst, OPTS, SEG)
        deadline = time.monotonic() + 120
        while not list(parts.glob("seg-*.json")):
            assert time.monotonic() < deadline and not video.done()
            time.sleep(0.01)
        workers.procs["alpha"].send_signal(signal.SIGKILL)  # the only worker is gone
        workers.procs["alpha"].wait()
        client.cancel(video)  # and the client gives up (or its PC goes off)
        with pytest.raises(Cancelled):
            video.result(10)
    kept = sorted(p.name for p in parts.glob("seg-*.json"))
    assert 1 <= len(kept) < 4 and not dst.exists()

    workers.start("beta")
    with ClusterClient(workers.address) as client:  # a new client, the same request
        result = client.run_video(clip, dst, OPTS, SEG, timeout=300)
    frames = [8, 8, 8, 6]
    assert result.frames_resumed == sum(frames[int(k[4:10])] for k in kept)
    assert workers.log("beta").count("done segment clip.mp4") == 4 - len(kept)
    alone = upscale_video(clip, tmp_path / "alone.mp4", OPTS, SEG)
    assert dst.read_bytes() == alone.dst.read_bytes()
    assert not parts.exists()
