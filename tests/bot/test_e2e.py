"""End to end: the real bot (connection loop, handlers, runner, queue, worker process) against
the fake Telegram, through Telethon's own upload and download code."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from botkit import (
    FRIEND,
    MODEL,
    OWNER,
    STRANGER,
    BotHarness,
    jpeg_bytes,
    make_config,
    png_bytes,
    slowed,
    wait_for,
)
from faketg import FakeTelegram, is_document_send
from PIL import Image
from telethon import errors, functions

from upscaler_edge.bot.access import REFUSAL
from upscaler_edge.bot.app import Core
from upscaler_edge.jobs import CANCELLED, DONE, FAILED

pytestmark = pytest.mark.timeout(120)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def spool_empty(h: BotHarness) -> bool:
    root = h.config.spool_dir
    return not root.exists() or not any(root.iterdir())


def png_header(width: int, height: int) -> bytes:
    """A PNG signature + IHDR claiming a huge image, and nothing else."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


async def start(tmp_path: Path, fake: FakeTelegram, core: Core, **cfg: Any) -> BotHarness:
    return await BotHarness(fake, make_config(tmp_path, **cfg), core).start()


def test_file_in_file_out_4x(tmp_path: Path, fake: FakeTelegram, real_core: Core) -> None:
    user = fake.user(OWNER)
    source = png_bytes(32, 24)

    async def main() -> None:
        h = await start(tmp_path, fake, slowed(real_core, 0.5))
        update = fake.document(user, source, "cat.png")
        await h.send(update, user)
        job = await h.finished(update)
        assert job.state == DONE, job.error
        (reply,) = fake.documents_to(OWNER)
        assert job.reply_message_id == reply.id
        assert spool_empty(h)
        await h.close()

    run(main())
    (reply,) = fake.documents_to(OWNER)
    assert reply.file_name == "cat_x4.png" and reply.force_file is True
    assert decode(reply.file_bytes).size == (128, 96)
    assert f"{MODEL} ×4: 32×24 → 128×96" in reply.text
    assert reply.reply_to is not None
    # the "queued" status message was replaced by the preview and the result
    (preview,) = fake.photos_to(OWNER)
    assert preview.text == "Before and after." and preview.reply_to == reply.reply_to
    before_after = decode(preview.file_bytes)
    assert before_after.format == "JPEG" and max(before_after.size) <= 1280
    assert before_after.size == (128 + 4 + 128, 96)  # small enough to show whole
    visible = fake.messages_to(OWNER)
    assert [m.id for m in visible] == [preview.id, reply.id]
    status = [m for m in fake.messages_to(OWNER, include_deleted=True) if m.deleted]
    assert len(status) == 1 and status[0].text.startswith("Queued: #1 in line")
    assert any(e.startswith("Upscaling… ") for e in status[0].edits)
    assert fake.count(functions.upload.SaveFilePartRequest) >= 1


def test_photo_with_caption_x2_gets_hint_once(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        first = fake.photo(user, jpeg_bytes(40, 30), 40, 30, caption="x2")
        await h.send(first, user)
        assert (await h.finished(first)).state == DONE
        second = fake.photo(user, jpeg_bytes(40, 30), 40, 30)
        await h.send(second, user)
        assert (await h.finished(second)).state == DONE
        await h.close()

    run(main())
    docs = fake.documents_to(OWNER)
    assert [decode(d.file_bytes).size for d in docs] == [(80, 60), (160, 120)]
    assert docs[0].file_name.endswith("_x2.png")
    statuses = [m for m in fake.messages_to(OWNER, include_deleted=True) if m.kind == "text"]
    hints = [m for m in statuses if "as a file" in m.text]
    assert len(hints) == 1
    # the second job's ETA comes from the speed measured on the first
    assert statuses[0].text.startswith("Queued: #1 in line.\nTip:")
    assert statuses[1].text.startswith("Queued: #1 in line, ready in about ")


def test_stranger_is_refused_once_and_leaves_no_trace(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    stranger = fake.user(STRANGER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        await h.send(fake.document(stranger, png_bytes(), "a.png"), stranger)
        await h.send(fake.document(stranger, png_bytes(), "b.png"), stranger)
        await h.send(fake.text(stranger, "/status"), stranger)
        await h.send(fake.text(stranger, "/id"), stranger)
        assert h.queue.all_jobs() == []
        assert spool_empty(h)
        await h.close()

    run(main())
    texts = [m.text for m in fake.messages_to(STRANGER)]
    assert texts == [REFUSAL, f"Your Telegram user id is {STRANGER}."]
    assert fake.count(functions.upload.GetFileRequest) == 0


@pytest.mark.parametrize("case", ["empty", "text_as_jpg", "oversized", "huge_header", "not_image"])
def test_bad_inputs_get_one_line_and_fail(
    case: str, tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    if case == "empty":
        update = fake.document(user, b"", "empty.jpg", mime_type="image/jpeg")
        expect = "empty"
    elif case == "text_as_jpg":
        update = fake.document(
            user, b"hello, this is not a picture\n" * 20, "note.jpg", mime_type="image/jpeg"
        )
        expect = ""
    elif case == "oversized":
        update = fake.document(user, png_bytes(), "big.png", declared_size=50 * 2**20)
        expect = "limit is 5 MiB"
    elif case == "huge_header":
        update = fake.document(user, png_header(60000, 60000), "huge.png")
        expect = "60000×60000"
    else:
        update = fake.document(user, b"PK\x03\x04zip", "a.zip", mime_type="application/zip")
        expect = "not an image"

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        await h.send(update, user)
        job = await h.finished(update)
        assert job.state == FAILED
        assert spool_empty(h)
        await h.close()

    run(main())
    visible = fake.messages_to(OWNER)
    assert len(visible) == 1, [m.current_text for m in visible]
    line = visible[0].current_text
    assert "\n" not in line and line.startswith("Sorry")
    assert expect.lower() in line.lower(), line
    assert fake.documents_to(OWNER) == []
    if case in ("empty", "oversized", "not_image"):  # refused before any download
        assert fake.count(functions.upload.GetFileRequest) == 0


def test_flood_wait_on_edit_does_not_fail_the_job(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    fake.fail(
        functions.messages.EditMessageRequest,
        lambda r: errors.FloodWaitError(r, capture=1),
        times=2,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, slowed(real_core, 3.0))
        update = fake.document(user, png_bytes(), "f.png")
        await h.send(update, user)
        job = await h.finished(update)
        assert job.state == DONE, job.error
        assert h.service.editor.flood_waits(OWNER) == 2
        await h.close()

    run(main())
    assert len(fake.documents_to(OWNER)) == 1
    (status,) = [m for m in fake.messages_to(OWNER, include_deleted=True) if m.deleted]
    assert status.edits, "the postponed edit was never made"


def test_flood_wait_on_send_reschedules_the_reply(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    fake.fail(
        functions.messages.SendMediaRequest,
        lambda r: errors.FloodWaitError(r, capture=1),
        when=is_document_send,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        update = fake.document(user, png_bytes(), "f.png")
        await h.send(update, user)
        assert (await h.finished(update)).state == DONE
        await h.close()

    run(main())
    assert fake.document_sends() == 2
    assert len(fake.documents_to(OWNER)) == 1


def test_connection_drop_mid_job_is_survived(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    slow = real_core.upscale

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        result = slow(src, dst, options, **kw)
        fake.drop()  # the link dies while the job is running
        fake.down = True  # ... and stays down for a few reconnect attempts
        return result

    core = Core(
        upscale=upscale,
        probe=real_core.probe,
        resolve=real_core.resolve,
        catalog=real_core.catalog,
        device_name=real_core.device_name,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, core)
        update = fake.document(user, png_bytes(), "d.png")
        await h.send(update, user)
        await wait_for(lambda: not fake.connections, what="the drop")
        await asyncio.sleep(0.5)  # several failed reconnects (backoff 0.05 -> 0.2 s)
        fake.down = False
        job = await h.finished(update)
        assert job.state == DONE, job.error
        await h.close()
        assert len(h.clients) >= 2  # a fresh client after the drop

    run(main())
    assert len(fake.documents_to(OWNER)) == 1


def test_lost_response_on_send_never_duplicates_the_reply(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    """Telegram got the document but the answer was lost: the retry must not post it again."""
    user = fake.user(OWNER)
    fake.fail(
        functions.messages.SendMediaRequest,
        lambda r: ConnectionError("lost on the way back"),
        after=True,
        when=is_document_send,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        update = fake.document(user, png_bytes(), "l.png")
        await h.send(update, user)
        assert (await h.finished(update)).state == DONE
        await h.close()

    run(main())
    assert fake.document_sends() == 2
    assert len(fake.documents_to(OWNER)) == 1
    assert len(fake.photos_to(OWNER)) == 1  # the preview, sent once before the document


def test_worker_abort_then_next_job_succeeds(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    from worker_faults import faulty_child

    from upscaler_edge.worker import Worker

    worker = Worker(timeout=60, child_entry=faulty_child)

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        if (src.parent / ".crash").exists():
            (src.parent / ".fault-abort").touch()
        else:
            (src.parent / ".fault-abort").unlink(missing_ok=True)
        return worker.run(src, dst, options, **kw)

    core = Core(
        upscale=upscale,
        probe=real_core.probe,
        resolve=real_core.resolve,
        catalog=real_core.catalog,
        device_name=real_core.device_name,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, core, max_attempts=2)
        bad = fake.document(user, png_bytes(48, 48), "bad.png")
        await h.send(bad, user)
        job = h.job_for(bad)
        h.queue.spool_dir(job.id).joinpath(".crash").touch()  # this job's child aborts
        failed = await h.finished(bad)
        assert failed.state == FAILED and failed.attempts == 2
        good = fake.document(user, png_bytes(), "good.png")
        await h.send(good, user)
        assert (await h.finished(good)).state == DONE
        await h.close()

    try:
        run(main())
    finally:
        worker.close()
    texts = fake.texts_to(OWNER)
    assert len(texts) == 1 and "failed 2 times" in texts[0] and "crashed" in texts[0]
    (doc,) = fake.documents_to(OWNER)
    assert doc.file_name == "good_x4.png"


def test_two_users_interleave(tmp_path: Path, fake: FakeTelegram, real_core: Core) -> None:
    owner, friend = fake.user(OWNER), fake.user(FRIEND)
    order: list[str] = []
    base = real_core.upscale

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        order.append(dst.name)
        return base(src, dst, options, **kw)

    core = Core(
        upscale=upscale,
        probe=real_core.probe,
        resolve=real_core.resolve,
        catalog=real_core.catalog,
        device_name=real_core.device_name,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, core)
        h.service.detach()  # hold the runner while both users send
        updates = [fake.document(owner, png_bytes(), f"o{i}.png") for i in range(4)]
        updates += [fake.document(friend, png_bytes(), f"f{i}.png") for i in range(2)]
        for up in updates:
            await h.send(up, owner if up.message.peer_id.user_id == OWNER else friend)
        h.service.attach(h.clients[-1])
        for up in updates:
            assert (await h.finished(up)).state == DONE
        await h.close()

    run(main())
    assert [n.split("_")[0] for n in order] == ["o0", "f0", "o1", "f1", "o2", "o3"]


def test_commands_and_buttons(tmp_path: Path, fake: FakeTelegram, real_core: Core) -> None:
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        for cmd in ("/start", "/help", "/models", "/status", "/cancel", "hello"):
            await h.send(fake.text(user, cmd), user)
        await h.send(fake.text(user, "/scale"), user)
        scale_msg = fake.messages_to(OWNER)[-1]
        assert scale_msg.buttons is not None
        await h.send(fake.button_press(user, scale_msg.id, b"set:scale:2"), user)
        await h.send(fake.text(user, "/format"), user)
        fmt_msg = fake.messages_to(OWNER)[-1]
        await h.send(fake.button_press(user, fmt_msg.id, b"set:format:jpg"), user)
        assert h.service.prefs.get(OWNER).scale == 2
        assert h.service.prefs.get(OWNER).format == "jpg"
        update = fake.document(user, png_bytes(), "p.png")
        await h.send(update, user)
        assert (await h.finished(update)).state == DONE
        await h.send(fake.document(user, png_bytes(), "q.png", caption="x9 banana"), user)
        await h.close()

    run(main())
    texts = fake.texts_to(OWNER)
    assert "2000 MiB" in texts[0] and texts[0] == texts[1]
    assert MODEL in texts[2]
    assert texts[3].startswith("Device: ") and "0 waiting" in texts[3]
    assert texts[4] == "You have nothing queued or running."
    assert texts[5].startswith("Send me a photo")
    assert texts[6] == "Done: your default scale is ×2."
    assert texts[7] == "Done: your default format is jpg."
    (doc,) = fake.documents_to(OWNER)
    assert doc.file_name == "p_x2.jpg" and decode(doc.file_bytes).format == "JPEG"
    assert "understand" in texts[-1]
    assert len(fake.callback_answers) == 2


def test_cancel_queued_job(tmp_path: Path, fake: FakeTelegram, real_core: Core) -> None:
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        h.service.detach()
        update = fake.document(user, png_bytes(), "c.png")
        await h.send(update, user)
        await h.send(fake.text(user, "/cancel"), user)
        h.service.attach(h.clients[-1])
        job = await h.finished(update)
        assert job.state == CANCELLED
        await h.close()

    run(main())
    assert fake.documents_to(OWNER) == []
    assert any(m.current_text == "Cancelled 1 job." for m in fake.messages_to(OWNER))


def test_handler_exception_still_replies(
    tmp_path: Path, fake: FakeTelegram, real_core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = fake.user(OWNER)
    from upscaler_edge.bot import handlers

    async def broken(ctx: Any, event: Any, who: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(handlers.COMMANDS, "/status", broken)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        await h.send(fake.text(user, "/status"), user)
        await h.close()

    run(main())
    (reply,) = fake.messages_to(OWNER)
    assert reply.text.startswith("Sorry, something went wrong")


def test_catch_up_and_restart_resume(tmp_path: Path, fake: FakeTelegram, real_core: Core) -> None:
    """Messages sent while the bot was off are processed when it starts; a job left queued by
    a stop is done after the restart, once."""
    user = fake.user(OWNER)

    async def main() -> None:
        early = fake.document(user, png_bytes(), "early.png")
        await fake.deliver(early, user)  # nobody is connected: kept for catch-up
        h = await start(tmp_path, fake, real_core)
        assert (await h.finished(early)).state == DONE
        h.service.detach()
        queued = fake.document(user, png_bytes(), "later.png")
        await h.send(queued, user)
        await h.close()  # stop with a queued job
        h2 = await start(tmp_path, fake, real_core)
        job = await h2.finished(queued)
        assert job.state == DONE
        await h2.close()

    run(main())
    names = sorted(d.file_name for d in fake.documents_to(OWNER))
    assert names == ["early_x4.png", "later_x4.png"]


@pytest.mark.parametrize("policy", ["jpeg", "refuse"])
def test_result_over_telegram_limit(
    policy: str,
    tmp_path: Path,
    fake: FakeTelegram,
    real_core: Core,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 2000 MiB rule, with the limit shrunk to 20 kB so a 32x24 image crosses it."""
    from upscaler_edge.bot import attempt

    monkeypatch.setattr(attempt, "TELEGRAM_FILE_LIMIT", 20_000)
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core, oversize=policy)
        update = fake.document(user, png_bytes(32, 24), "big.png")
        await h.send(update, user)
        job = await h.finished(update)
        assert job.state == (DONE if policy == "jpeg" else FAILED)
        await h.close()

    run(main())
    if policy == "jpeg":
        (doc,) = fake.documents_to(OWNER)
        assert doc.file_name == "big_x4.jpg" and decode(doc.file_bytes).format == "JPEG"
        assert "2000 MiB" in doc.text
    else:
        assert fake.documents_to(OWNER) == []
        (reply,) = fake.messages_to(OWNER)
        assert "2000 MiB" in reply.text and reply.text.startswith("Sorry")


def test_stop_mid_job_requeues_then_restart_finishes_once(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    """SIGTERM/Ctrl-C path: the running job does not finish within the grace period, so it is
    cancelled and put back in line; the next start does it and replies once."""
    from upscaler_edge.errors import Cancelled

    user = fake.user(OWNER)
    started = []

    def long_job(src: Path, dst: Path, options: Any, *, cancel: Any, **kw: Any) -> Any:
        started.append(src)
        if cancel.wait(20):
            raise Cancelled("cancelled")
        raise AssertionError("the stop never cancelled the job")

    hanging = Core(
        upscale=long_job,
        probe=real_core.probe,
        resolve=real_core.resolve,
        catalog=real_core.catalog,
        device_name=real_core.device_name,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, hanging, stop_grace=0.3)
        update = fake.document(user, png_bytes(), "s.png")
        await h.send(update, user)
        await wait_for(lambda: started, what="the job to start")
        began = asyncio.get_running_loop().time()
        await h.close()
        assert asyncio.get_running_loop().time() - began < 5
        h2 = await start(tmp_path, fake, real_core)
        job = await h2.finished(update)
        assert job.state == DONE and job.attempts == 2
        await h2.close()

    run(main())
    assert len(fake.documents_to(OWNER)) == 1
    assert [(m.kind, m.file_name) for m in fake.messages_to(OWNER)] == [
        ("photo", None),
        ("document", "s_x4.png"),
    ]


@pytest.mark.filterwarnings("ignore:the session already had an authorized user")
def test_session_of_another_account_is_refused(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    """The session file is authorised as bot 7000001; a token of another bot must not
    silently reuse it (Telethon would only warn)."""
    from upscaler_edge.bot.app import FatalBotError, run_bot

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        await h.close()
        other = make_config(tmp_path, bot_token="7000002:AnotherBotsToken")
        with pytest.raises(FatalBotError, match="belongs to another account"):
            await asyncio.wait_for(
                run_bot(other, stop=asyncio.Event(), core=real_core, client_factory=h._factory), 30
            )

    run(main())


def test_bad_token_is_fatal_not_retried(tmp_path: Path, real_core: Core) -> None:
    from upscaler_edge.bot.app import FatalBotError, run_bot

    fake = FakeTelegram(bot_id=4242)  # Telegram knows a different bot for this token

    async def main() -> None:
        h = BotHarness(fake, make_config(tmp_path), real_core)
        with pytest.raises(FatalBotError, match="refused the bot token"):
            await asyncio.wait_for(
                run_bot(h.config, stop=asyncio.Event(), core=real_core, client_factory=h._factory),
                30,
            )

    run(main())


def test_expired_file_reference_is_refetched(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    fake.fail(functions.upload.GetFileRequest, errors.FileReferenceExpiredError)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        update = fake.document(user, png_bytes(), "old.png")
        await h.send(update, user)
        assert (await h.finished(update)).state == DONE
        await h.close()

    run(main())
    assert fake.count(functions.messages.GetMessagesRequest) == 1
    (doc,) = fake.documents_to(OWNER)
    assert "on CPU" in doc.text


def test_cancel_running_job(tmp_path: Path, fake: FakeTelegram, real_core: Core) -> None:
    from upscaler_edge.errors import Cancelled

    user = fake.user(OWNER)
    started = []

    def long_job(src: Path, dst: Path, options: Any, *, cancel: Any, **kw: Any) -> Any:
        started.append(src)
        if cancel.wait(20):
            raise Cancelled("cancelled")
        raise AssertionError("/cancel never reached the worker")

    core = Core(
        upscale=long_job,
        probe=real_core.probe,
        resolve=real_core.resolve,
        catalog=real_core.catalog,
        device_name=real_core.device_name,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, core)
        update = fake.document(user, png_bytes(), "r.png")
        await h.send(update, user)
        await wait_for(lambda: started, what="the job to start")
        await h.send(fake.text(user, "/cancel"), user)
        job = await h.finished(update)
        assert job.state == CANCELLED and job.reply_message_id is None
        assert spool_empty(h)
        await h.close()

    run(main())
    assert fake.documents_to(OWNER) == []
    assert [m.current_text for m in fake.messages_to(OWNER)] == ["Cancelled 1 job."]


@pytest.mark.parametrize("where", ["probe", "upscale"])
def test_unexpected_error_fails_that_job_and_the_next_one_runs(
    where: str,
    tmp_path: Path,
    fake: FakeTelegram,
    real_core: Core,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug-shaped exception (not an UpscalerError) while handling one job: that job fails
    with an "internal error" reply and is not retried; the traceback is logged; the job
    queued behind it still completes."""
    user = fake.user(OWNER)
    base_probe, base_upscale = real_core.probe, real_core.upscale

    def probe(src: Path, **kw: Any) -> Any:
        if where == "probe" and (src.parent / ".bad").exists():
            raise struct.error("unpack requires a buffer of 4 bytes")
        return base_probe(src, **kw)

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        if where == "upscale" and (src.parent / ".bad").exists():
            raise struct.error("unpack requires a buffer of 4 bytes")
        return base_upscale(src, dst, options, **kw)

    core = Core(
        upscale=upscale,
        probe=probe,
        resolve=real_core.resolve,
        catalog=real_core.catalog,
        device_name=real_core.device_name,
    )

    async def main() -> None:
        h = await start(tmp_path, fake, core)
        h.service.detach()  # both jobs wait in line, so the failure is followed by work
        bad = fake.document(user, png_bytes(), "bad.png")
        good = fake.document(user, png_bytes(), "good.png")
        await h.send(bad, user)
        await h.send(good, user)
        h.queue.spool_dir(h.job_for(bad).id).joinpath(".bad").touch()
        h.service.attach(h.clients[-1])
        failed = await h.finished(bad)
        assert failed.state == FAILED and failed.attempts == 1
        assert (failed.error or "").startswith("Sorry: internal error: struct.error: unpack")
        assert failed.reply_message_id is not None
        assert (await h.finished(good)).state == DONE
        assert h.queue.recover() == [] and h.job_for(bad).state == FAILED  # never retried
        await h.close()

    run(main())
    (doc,) = fake.documents_to(OWNER)
    assert doc.file_name == "good_x4.png"
    (reply,) = [m for m in fake.messages_to(OWNER) if m.kind == "text"]
    assert reply.current_text.startswith("Sorry: internal error: struct.error")
    assert "\n" not in reply.current_text and "bot's log" in reply.current_text
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is struct.error]
    assert logged, "no traceback in the log"


def test_bot_keeps_sqlite_off_the_event_loop(
    tmp_path: Path, fake: FakeTelegram, real_core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every queue and preferences call the bot's own code makes runs in a worker thread, not
    on the event loop's (the test's own polling of the queue is not counted)."""
    import functools
    import inspect
    import threading

    from upscaler_edge.bot.members import Members
    from upscaler_edge.bot.prefs import Prefs
    from upscaler_edge.jobs import JobQueue

    on_loop: list[str] = []
    loop_thread = threading.get_ident()  # asyncio.run() runs the loop in this thread
    watched = {
        JobQueue: [n for n in vars(JobQueue) if not n.startswith("_") and n != "close"],
        Prefs: [n for n in vars(Prefs) if not n.startswith("_") and n != "close"],
        Members: [n for n in vars(Members) if not n.startswith("_") and n != "close"],
    }

    def watch(cls: type, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
            frame = inspect.currentframe()
            caller = frame.f_back.f_globals.get("__name__", "") if frame and frame.f_back else ""
            if threading.get_ident() == loop_thread and caller.startswith("upscaler_edge.bot"):
                on_loop.append(f"{cls.__name__}.{name} from {caller}")
            return original(self, *args, **kw)

        monkeypatch.setattr(cls, name, wrapper)

    for cls, names in watched.items():
        for name in names:
            watch(cls, name)
    user = fake.user(OWNER)

    async def main() -> None:
        h = await start(tmp_path, fake, real_core)
        for cmd in ("/help", "/models", "/model", "/status", "/cancel"):
            await h.send(fake.text(user, cmd), user)
        await h.send(fake.button_press(user, fake.messages_to(OWNER)[2].id, b"set:scale:2"), user)
        photo = fake.photo(user, jpeg_bytes(40, 30), 40, 30)
        await h.send(photo, user)
        assert (await h.finished(photo)).state == DONE
        h.service.detach()
        queued = fake.document(user, png_bytes(), "q.png")
        await h.send(queued, user)
        await h.send(fake.text(user, "/status"), user)
        await h.send(fake.text(user, "/cancel"), user)
        h.service.attach(h.clients[-1])
        assert (await h.finished(queued)).state == CANCELLED
        await h.send(fake.document(user, b"", "empty.png", mime_type="image/png"), user)
        await h.close()

    run(main())
    assert on_loop == []
    assert len(fake.documents_to(OWNER)) == 1
