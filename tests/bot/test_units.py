"""Pure parts: caption parsing, progress throttling, ETA text, access, prefs."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telethon import errors

from upscaler_edge.bot.access import Access
from upscaler_edge.bot.captions import CaptionError, Catalog, Choice, command_of, parse_caption
from upscaler_edge.bot.i18n import translator
from upscaler_edge.bot.prefs import Prefs
from upscaler_edge.bot.progress import StatusEditor, progress_text

CATALOG = Catalog(
    names=["realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3"],
    kinds={"photo": "realesrgan-x4plus", "anime": "realesrgan-x4plus-anime"},
)


@pytest.mark.parametrize(
    "text, choice",
    [
        ("x2 anime", Choice("realesrgan-x4plus-anime", 2)),
        ("/upscale 4 realesrgan-x4plus", Choice("realesrgan-x4plus", 4)),
        ("/upscale@my_bot 3x jpeg", Choice(None, 3, "jpg")),
        ("my cat on the sofa", Choice()),
        ("", Choice()),
        ("Realesr-AnimeVideoV3 webp", Choice("realesr-animevideov3", None, "webp")),
    ],
)
def test_parse_caption(text: str, choice: Choice) -> None:
    assert parse_caption(text, CATALOG) == choice


@pytest.mark.parametrize("text", ["x2 banana", "/upscale banana", "x99"])
def test_parse_caption_rejects(text: str) -> None:
    with pytest.raises(CaptionError):
        parse_caption(text, CATALOG)


@given(st.text(max_size=40))
def test_parse_caption_never_crashes(text: str) -> None:
    try:
        choice = parse_caption(text, CATALOG)
    except CaptionError as exc:
        assert str(exc)
    else:
        assert choice.scale is None or 1 <= choice.scale <= 16


def test_command_of() -> None:
    assert command_of("/Scale@bot 2") == "/scale"
    assert command_of("hello") is None and command_of(None) is None


def test_status_editor_throttles_and_coalesces() -> None:
    sent: list[tuple[float, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def edit(peer: str, mid: int, text: str) -> None:
            sent.append((loop.time() - start, text))

        editor = StatusEditor(edit, interval=0.3)
        for i in range(30):  # 30 updates over ~0.9 s
            editor.show(1, "user:1:1", 10, f"upscaling {i}%")
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.4)
        await editor.close(1)

    asyncio.run(main())
    times = [t for t, _ in sent]
    assert 3 <= len(sent) <= 5
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(times))
    assert sent[-1][1] == "upscaling 29%"  # the latest text wins


def test_status_editor_postpones_on_flood_wait_and_swallows_errors() -> None:
    calls: list[str] = []

    async def main() -> None:
        async def edit(peer: str, mid: int, text: str) -> None:
            calls.append(text)
            if len(calls) == 1:
                raise errors.FloodWaitError(None, capture=1)
            if len(calls) == 2:
                raise RuntimeError("network hiccup")

        editor = StatusEditor(edit, interval=0.05)
        editor.show(1, "user:1:1", 10, "a")
        await asyncio.sleep(0.2)
        assert calls == ["a"]  # waiting out the flood wait
        await asyncio.sleep(1.0)
        assert calls == ["a", "a"] and editor.flood_waits(1) == 1
        editor.show(1, "user:1:1", 10, "b")
        await asyncio.sleep(0.2)
        assert calls == ["a", "a", "b"]
        await editor.close(1)

    asyncio.run(main())


def test_durations_and_progress_text() -> None:
    en, ru = translator("en"), translator("ru")
    assert en.duration(0.2) == "1 s" and en.duration(75) == "1 min 15 s"
    assert en.duration(7260) == "2 h 1 min" and ru.duration(7260) == "2 ч 1 мин"
    assert en.number(1.5) == "1.5" and ru.number(1.5) == "1,5"
    assert progress_text(en, "upscaling", 1, 4) == "Upscaling… 25%"
    assert progress_text(en, "downloading") == "Downloading…"
    assert progress_text(ru, "upscaling", 2, 4, item=(2, 3)) == "Увеличиваю… 50% (файл 2 из 3)"


def test_access_refuses_strangers_once_and_follows_the_owner() -> None:
    access = Access(1, (2,))
    assert access.owner == 1 and access.allows(1) and access.allows(2)
    assert not access.allows(3)
    assert access.should_refuse(3) and not access.should_refuse(3)
    assert not access.should_refuse(1)
    access.set(3, True)
    assert access.allows(3) and access.allowed == (1, 2, 3)
    access.set(2, False)
    access.set(1, False)  # the owner stays
    assert access.allowed == (1, 3) and access.should_refuse(2)


def test_prefs(tmp_path: Path) -> None:
    prefs = Prefs(tmp_path / "p.sqlite3")
    assert prefs.get(1).model is None
    prefs.set(1, "model", "m")
    prefs.set(1, "scale", 2)
    assert (prefs.get(1).model, prefs.get(1).scale) == ("m", 2)
    assert prefs.take_photo_hint(1) and not prefs.take_photo_hint(1)
    assert prefs.speed("m", "cpu") is None
    prefs.record_speed("m", "cpu", 1.0, 2.0)
    prefs.record_speed("m", "cpu", 1.0, 1.0)
    assert prefs.speed("m", "cpu") == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert prefs.speed("other", "cpu") == pytest.approx(0.65)
    with pytest.raises(ValueError):
        prefs.set(1, "colour", "red")
    assert prefs.get(1).preview is True and prefs.get(1).lang is None
    prefs.update(1, lang="ru", preview=False, denoise=2)
    got = prefs.get(1)
    assert (got.lang, got.preview, got.denoise, got.model) == ("ru", False, 2, "m")
    prefs.close()


def test_prefs_file_from_before_the_new_columns_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE users (user_id INTEGER PRIMARY KEY, model TEXT, scale INTEGER,"
            " format TEXT, photo_hint INTEGER NOT NULL DEFAULT 0)"
        )
        db.execute("INSERT INTO users VALUES (5, 'm', 2, 'jpg', 1)")
    prefs = Prefs(path)
    assert prefs.get(5).model == "m" and prefs.get(5).preview is True
    prefs.set(5, "lang", "ru")
    assert prefs.get(5).lang == "ru"
    prefs.close()


def test_until_returns_on_completion_stop_or_timeout() -> None:
    from upscaler_edge.bot.waiting import until

    async def main() -> None:
        stop = asyncio.Event()
        assert await until(asyncio.sleep(0), stop) is False  # completed
        began = asyncio.get_running_loop().time()
        assert await until(asyncio.sleep(10), stop, timeout=0.05) is False  # timed out
        assert asyncio.get_running_loop().time() - began < 1

        cancelled = []

        async def long() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        asyncio.get_running_loop().call_later(0.05, stop.set)
        assert await until(long(), stop) is True  # stopped, and the wait was cancelled
        await asyncio.sleep(0)
        assert cancelled == [True]

        async def broken() -> None:
            raise ConnectionError("the link died")

        assert await until(broken(), asyncio.Event()) is False  # its exception is dropped

    asyncio.run(main())


def test_catalog_from_registry_offers_families() -> None:
    from upscaler_edge.models import default_registry

    registry = default_registry()
    catalog = Catalog.from_registry(registry)
    assert [f.name for f in catalog.families] == [f.name for f in registry.families()]
    assert "realesr-animevideov3" in catalog.names and "realesrgan-x4plus" in catalog.names
    assert catalog.kinds["fast"] == "realesr-animevideov3"  # the family, not its x2 member
    choice = parse_caption("x2 fast", catalog)
    assert choice == Choice("realesr-animevideov3", 2)
    assert registry.resolve(choice.model, choice.scale).scale == 2  # the native x2 member
