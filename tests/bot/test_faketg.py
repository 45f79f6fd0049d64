"""The fake Telegram itself: the private Telethon hooks it needs, and a byte-exact round trip."""

from __future__ import annotations

import asyncio
import inspect
import io
from pathlib import Path

import telethon
from botkit import OWNER, png_bytes
from faketg import BOT_TOKEN, HOOKS, FakeTelegram, attach
from telethon import TelegramClient, events
from telethon.client.updates import UpdateMethods
from telethon.client.users import UserMethods

# The fake was checked against Telethon 1.45 (TL layer with messages.Messages.topics, the
# MessageBox update loop, _mb_entity_cache). Pin the `bot` and `test` extras to this range.
SUPPORTED = ((1, 45), (1, 46))


def _version() -> tuple[int, int]:
    major, minor = telethon.__version__.split(".")[:2]
    return int(major), int(minor)


def test_telethon_version_in_tested_range() -> None:
    assert SUPPORTED[0] <= _version() < SUPPORTED[1], (
        f"Telethon {telethon.__version__} is outside the range the fake was checked against; "
        "re-check the private hooks in tests/bot/faketg.py and update the pin"
    )


def test_private_hooks_still_exist(tmp_path: Path) -> None:
    """Fails loudly when a Telethon release renames or reshapes what the fake relies on."""
    sig = inspect.signature(UserMethods._call)
    assert list(sig.parameters)[:5] == [
        "self",
        "sender",
        "request",
        "ordered",
        "flood_sleep_threshold",
    ], sig
    assert list(inspect.signature(UpdateMethods._preprocess_updates).parameters) == [
        "self",
        "updates",
        "users",
        "chats",
    ]
    assert list(inspect.signature(UpdateMethods._dispatch_update).parameters) == ["self", "update"]
    assert inspect.iscoroutinefunction(UpdateMethods._dispatch_update)
    assert inspect.iscoroutinefunction(UpdateMethods._preprocess_updates)
    client = TelegramClient(str(tmp_path / "s.session"), 1, "x")
    for name in HOOKS:
        assert hasattr(client, name), f"TelegramClient lost {name}"
    assert list(inspect.signature(client._mb_entity_cache.set_self_user).parameters) == [
        "id",
        "bot",
        "hash",
    ]
    # `disconnected` must still be read from the sender, which the fake replaces
    assert "_sender.disconnected" in inspect.getsource(type(client).disconnected.fget)
    # the client must still route __call__ through _call
    assert "self._call(" in inspect.getsource(UserMethods.__call__)
    client.session.close()


def test_download_and_upload_round_trip_through_telethon(tmp_path: Path) -> None:
    """A handler downloads a document via GetFileRequest parts and replies with a file via
    SaveFilePartRequest + SendMediaRequest; the reassembled upload matches byte for byte."""
    fake = FakeTelegram()
    user = fake.user(OWNER)
    data = png_bytes(40, 30) + bytes(300_000)  # > one 128 KiB part each way
    got: dict[str, bytes] = {}

    async def main() -> None:
        client = attach(TelegramClient(str(tmp_path / "bot.session"), 1, "hash"), fake)
        await client.start(bot_token=BOT_TOKEN)

        @client.on(events.NewMessage(incoming=True))
        async def echo(event: events.NewMessage.Event) -> None:
            buf = io.BytesIO()
            await event.download_media(file=buf)
            got["down"] = buf.getvalue()
            out = tmp_path / "echo.bin"
            out.write_bytes(buf.getvalue())
            await event.reply(file=str(out), force_document=True)

        await fake.deliver(fake.document(user, data, "big.png"), user)
        await client.disconnect()

    asyncio.run(main())
    assert got["down"] == data
    (sent,) = fake.documents_to(OWNER)
    assert sent.file_bytes == data and sent.file_name == "echo.bin"
    from telethon.tl.functions.upload import GetFileRequest, SaveFilePartRequest

    assert fake.count(GetFileRequest) >= 2 and fake.count(SaveFilePartRequest) >= 2


def test_repeated_random_id_is_refused_like_telegram(tmp_path: Path) -> None:
    from telethon import errors, functions, types

    fake = FakeTelegram()
    user = fake.user(OWNER)

    async def main() -> None:
        client = attach(TelegramClient(str(tmp_path / "bot.session"), 1, "hash"), fake)
        await client.start(bot_token=BOT_TOKEN)
        peer = types.InputPeerUser(user.id, user.access_hash)
        await client(functions.messages.SendMessageRequest(peer, "hi", random_id=42))
        try:
            await client(functions.messages.SendMessageRequest(peer, "hi", random_id=42))
        except errors.RandomIdDuplicateError:
            pass
        else:
            raise AssertionError("a repeated random_id was accepted")
        await client.disconnect()

    asyncio.run(main())
    assert len(fake.messages_to(OWNER)) == 1
