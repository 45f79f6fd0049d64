"""Videos, round videos and GIF animations: the real bot, the real worker process and the
real video library against the fake Telegram. A tiny 32x24, 6-frame H.264 MP4 is made with
PyAV; the fast model ``realesr-animevideov3`` runs x2 on the CPU."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from botkit import FRIEND, OWNER, BotHarness, make_config
from faketg import FakeTelegram
from telethon import functions, types

from upscaler_edge.bot.app import Core
from upscaler_edge.bot.eta import VIDEO_MPPS_GUESS, estimate_seconds
from upscaler_edge.bot.i18n import translator
from upscaler_edge.bot.images import media_kind
from upscaler_edge.bot.progress import frames_text
from upscaler_edge.bot.telegram import MediaInfo
from upscaler_edge.jobs import DONE, FAILED

pytestmark = pytest.mark.timeout(180)

FRAMES, W, H = 6, 32, 24


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def mp4_bytes(frames: int = FRAMES, width: int = W, height: int = H) -> bytes:
    """A tiny H.264 MP4 with a moving gradient (no audio), made with PyAV."""
    av = pytest.importorskip("av", reason="videos need the video extra (PyAV)")
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            x = np.arange(width, dtype=np.uint16)[None, :, None]
            y = np.arange(height, dtype=np.uint16)[:, None, None]
            img = np.concatenate(
                [(x * 8 + i * 10) % 256 + 0 * y, (y * 8) % 256 + 0 * x, np.full_like(x + y, 90)],
                axis=2,
            ).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def decoded(data: bytes) -> tuple[int, tuple[int, int]]:
    """(frame count, (width, height)) of an MP4, by decoding it."""
    import av

    with av.open(io.BytesIO(data)) as src:
        sizes = [(f.width, f.height) for f in src.decode(video=0)]
    assert len(set(sizes)) == 1, sizes
    return len(sizes), sizes[0]


async def start(tmp_path: Path, fake: FakeTelegram, core: Core, **cfg: Any) -> BotHarness:
    return await BotHarness(fake, make_config(tmp_path, **cfg), core).start()


def attr(msg: Any, kind: type) -> Any:
    return next((a for a in msg.attributes if isinstance(a, kind)), None)


# -- pure parts -----------------------------------------------------------------------------
def _info(video: str | None, image: bool = False) -> MediaInfo:
    return MediaInfo("f", 10, "video/mp4", W, H, False, image, 1.0, None, video)


def test_media_kind_knows_videos() -> None:
    assert media_kind(_info("animation")) == "animation"
    assert media_kind(_info("round")) == "round"
    assert media_kind(_info("video")) == "video"
    assert media_kind(_info(None, image=True)) == "image"
    assert media_kind(_info(None)) is None


def test_video_eta_uses_a_default_speed_before_any_measurement() -> None:
    params = {"width": 1000, "height": 1000, "frames": 30}
    assert estimate_seconds(params, None) == pytest.approx(30 / VIDEO_MPPS_GUESS)
    assert estimate_seconds(params, 3.0) == pytest.approx(10.0)
    assert estimate_seconds({"width": 1000, "height": 1000}, None) is None  # pictures: unknown


def test_frames_text_in_two_languages() -> None:
    assert frames_text(translator("en"), 3, 6, 65) == (
        "Upscaling… 50%: frame 3 of 6, about 1 min 5 s left"
    )
    ru = frames_text(translator("ru"), 3, 6, None)
    assert ru.startswith("Увеличиваю… 50%") and "кадр 3 из 6" in ru


# -- end to end ------------------------------------------------------------------------------
def test_animation_comes_back_as_an_animation_x2(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    data = mp4_bytes()
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        update = fake.video(user, data, "cat.mp4", duration=0.25, size=(W, H), animated=True)
        update.message.message = "x2"
        await h.send(update, user)
        job = await h.finished(update, timeout=150)
        assert job.state == DONE, job.error
        assert job.params["kind"] == "animation" and job.params["frames"] == FRAMES
        await h.close()

    run(main())
    (reply,) = fake.documents_to(OWNER)
    assert reply.file_name == "cat_x2.mp4" and reply.mime_type == "video/mp4"
    assert attr(reply, types.DocumentAttributeAnimated) is not None
    video = attr(reply, types.DocumentAttributeVideo)
    assert (video.w, video.h) == (2 * W, 2 * H) and video.supports_streaming
    assert decoded(reply.file_bytes) == (FRAMES, (2 * W, 2 * H))
    assert f"{W}×{H} → {2 * W}×{2 * H}, {FRAMES} frames" in reply.text
    assert not fake.photos_to(OWNER)  # no before/after preview for a video
    status = [m for m in fake.messages_to(OWNER, include_deleted=True) if m.deleted]
    assert status[0].text.startswith("Queued: #1 in line, ready in about ")
    assert any("frame" in e and " of 6" in e for e in status[0].edits), status[0].edits


def test_video_over_the_length_limit_is_refused_without_download(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core, max_video_seconds=60)
        update = fake.video(user, b"\0" * 1000, "long.mp4", duration=61.0, size=(W, H))
        await h.send(update, user)
        job = await h.finished(update)
        assert job.state == FAILED
        await h.close()

    run(main())
    (reply,) = fake.messages_to(OWNER)
    assert reply.text == "Sorry: that video is 1 min 1 s long; the limit is 1 min."
    assert fake.count(functions.upload.GetFileRequest) == 0


def test_russian_user_gets_russian_texts_for_a_round_video(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    data = mp4_bytes()
    anya = fake.user(FRIEND, "Аня", lang_code="ru")

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        long = fake.video(anya, b"\0" * 1000, "long.mp4", duration=3600.0, size=(W, H))
        await h.send(long, anya)
        assert (await h.finished(long)).state == FAILED
        update = fake.video(anya, data, "round.mp4", duration=0.25, size=(W, H), round_message=True)
        update.message.message = "x2"
        await h.send(update, anya)
        job = await h.finished(update, timeout=150)
        assert job.state == DONE, job.error
        await h.close()

    run(main())
    refusal = fake.messages_to(FRIEND)[0]
    assert refusal.text.startswith("Видео длится 1 ч")
    (reply,) = fake.documents_to(FRIEND)
    assert attr(reply, types.DocumentAttributeAnimated) is None
    assert attr(reply, types.DocumentAttributeVideo) is not None
    assert f"{W}×{H} → {2 * W}×{2 * H}, {FRAMES} кадров" in reply.text
    status = [m for m in fake.messages_to(FRIEND, include_deleted=True) if m.deleted]
    assert status and status[-1].text.startswith("В очереди")
    # a frame-progress edit comes only if the job outlasts the edit interval (0.2 s here): on a
    # fast machine this 6-frame clip does not; the Russian frame text has its unit test
    assert all("кадр" in e or "Увеличиваю" in e or "Скачиваю" in e for e in status[-1].edits)


# -- the worker's video job -------------------------------------------------------------------
def test_worker_video_job_resumes_from_its_segments_after_a_crash(tmp_path: Path) -> None:
    from videofaults import crash_after_four_frames

    from upscaler_edge.errors import JobFailed
    from upscaler_edge.options import Options
    from upscaler_edge.video import VideoOptions, job_folder
    from upscaler_edge.worker import Worker

    src = tmp_path / "in.mp4"
    src.write_bytes(mp4_bytes())
    dst = tmp_path / "out.mp4"
    opts = Options(model="realesr-animevideov3", scale=2, device="cpu", overwrite=True)
    video = VideoOptions(container="mp4", segment_seconds=0.05)  # a segment per frame or so
    marker = tmp_path / ".fault-abort-video"
    marker.touch()
    seen: list[tuple[int, int]] = []
    with Worker(timeout=120, child_entry=crash_after_four_frames) as worker:
        with pytest.raises(JobFailed, match="SIGABRT"):
            worker.run_video(src, dst, opts, video, progress=lambda d, t: seen.append((d, t)))
        assert seen and seen[0][1] == FRAMES  # progress counts frames of the total
        assert not dst.exists() and job_folder(dst).exists()  # the finished segments are kept
        marker.unlink()
        result = worker.run_video(src, dst, opts, video)
    assert result.frames == FRAMES and result.frames_resumed > 0
    assert decoded(dst.read_bytes()) == (FRAMES, (2 * W, 2 * H))
    assert not job_folder(dst).exists()


def test_without_pyav_a_video_gets_one_polite_reply(
    tmp_path: Path, fake: FakeTelegram, real_core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    from upscaler_edge.bot import images

    monkeypatch.setattr(images, "_video_available", lambda: False)
    user = fake.user(OWNER)
    anya = fake.user(FRIEND, "Аня", lang_code="ru")

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        for who in (user, anya):
            update = fake.video(who, b"\0" * 1000, "a.mp4", duration=1.0, size=(W, H))
            await h.send(update, who)
            assert (await h.finished(update)).state == FAILED
        await h.close()

    run(main())
    (en,) = fake.messages_to(OWNER)
    assert en.text.startswith("Sorry: videos and animations need the bot's video extra")
    (ru,) = fake.messages_to(FRIEND)
    assert ru.text.startswith("Видео и анимации требуют видеодополнения")
    assert fake.count(functions.upload.GetFileRequest) == 0


def test_a_worker_crash_mid_video_is_retried_and_resumes(
    tmp_path: Path, fake: FakeTelegram, real_core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from videofaults import ONCE_ENV, crash_after_four_frames

    from upscaler_edge.bot import attempt
    from upscaler_edge.worker import Worker

    monkeypatch.setattr(attempt, "VIDEO_SEGMENT_SECONDS", 0.05)  # about a segment per frame
    data = mp4_bytes()
    marker = tmp_path / "crash-once"
    marker.touch()
    monkeypatch.setenv(ONCE_ENV, str(marker))
    worker = Worker(timeout=120, child_entry=crash_after_four_frames)
    core = replace(real_core, upscale=worker.run, upscale_video=worker.run_video)
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, core)
        update = fake.video(user, data, "clip.mp4", duration=0.25, size=(W, H), caption="x2")
        await h.send(update, user)
        job = await h.finished(update, timeout=150)
        assert job.state == DONE, job.error
        assert job.attempts == 2 and job.params["frames_resumed"] > 0
        await h.close()

    try:
        run(main())
    finally:
        worker.close()
    assert not marker.exists()
    (reply,) = fake.documents_to(OWNER)
    assert decoded(reply.file_bytes) == (FRAMES, (2 * W, 2 * H))
    assert attr(reply, types.DocumentAttributeAnimated) is None


def test_describe_media_reads_the_video_attributes(fake: FakeTelegram) -> None:
    from upscaler_edge.bot.telegram import describe_media

    user = fake.user(OWNER)

    def described(update: Any) -> MediaInfo:
        info = describe_media(update.message)
        assert info is not None
        return info

    gif = described(fake.video(user, b"x", "a.mp4", duration=2.5, size=(320, 240), animated=True))
    assert (gif.video, gif.width, gif.height, gif.duration) == ("animation", 320, 240, 2.5)
    assert not gif.looks_like_image
    note = described(
        fake.video(user, b"x", "r.mp4", duration=3, size=(240, 240), round_message=True)
    )
    assert note.video == "round"
    plain = described(fake.document(user, b"x", "clip.webm", mime_type="video/webm"))
    assert plain.video == "video" and plain.duration is None
    assert described(fake.document(user, b"x", "cat.png")).video is None
