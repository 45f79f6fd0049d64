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


@pytest.mark.parametrize(
    "text, choice",
    [
        ("n2", Choice(denoise=2)),
        ("x2 n-1", Choice(scale=2, denoise=-1)),
        ("denoise 3 jpg", Choice(format="jpg", denoise=3)),
        ("шум 2", Choice(denoise=2)),
        ("/upscale -n 1 х3", Choice(scale=3, denoise=1)),  # a Cyrillic х, as typed in Russian
        ("аниме х2", Choice("realesrgan-x4plus-anime", 2)),
    ],
)
def test_parse_caption_noise_levels_and_russian_words(text: str, choice: Choice) -> None:
    assert parse_caption(text, CATALOG) == choice


def test_caption_error_speaks_the_users_language() -> None:
    with pytest.raises(CaptionError) as info:
        parse_caption("x2 banana", CATALOG)
    assert info.value.text.render(translator("ru")).startswith("Не понимаю «banana».")
    assert str(info.value).startswith("I don't understand «banana».")


def test_catalog_offers_the_noise_levels_each_scale_has() -> None:
    from upscaler_edge.models import ModelSpec, Registry

    def spec(name: str, scale: int, denoise: int | None) -> ModelSpec:
        return ModelSpec(name, scale, Path(name + ".param"), Path(name + ".bin"), denoise=denoise)

    specs = [spec("c2n0", 2, 0), spec("c2n3", 2, 3), spec("c4n0", 4, 0), spec("plain", 4, None)]
    catalog = Catalog.from_registry(
        Registry(specs, [("c", {"members": ["c2n0", "c2n3", "c4n0"], "default_denoise": 0})])
    )
    family, plain = catalog.family("c"), catalog.family("plain")
    assert family is not None and plain is not None and catalog.family("c4n0") is family
    assert catalog.scales(family) == (2, 3, 4) and catalog.scales(plain) == (2, 3, 4)
    assert catalog.levels(family, 2) == (0, 3)
    assert catalog.levels(family, 3) == (0,)  # x3 is the x4 model brought down
    assert catalog.levels(family, None) == (0,)  # the default scale, x4
    assert catalog.levels(plain, 4) == ()


def test_quota_and_reset_texts() -> None:
    import datetime as dt

    from upscaler_edge.bot.limits import day_start, next_midnight, quota_line, quota_refusal

    now = dt.datetime(2024, 3, 12, 21, 30).timestamp()  # local time
    assert dt.datetime.fromtimestamp(day_start(now)) == dt.datetime(2024, 3, 12)
    assert next_midnight(now).replace(tzinfo=None) == dt.datetime(2024, 3, 13)
    en = quota_refusal(translator("en"), 1, now)
    assert en.startswith("Sorry, that's all for today: the limit is 1 picture a day.")
    assert "It resets at midnight (00:00 UTC" in en and en.endswith("in 2 h 30 min.")
    ru = quota_refusal(translator("ru"), 5, now)
    assert ru.startswith("На сегодня всё: лимит — 5 картинок в день.")
    assert ru.endswith("через 2 ч 30 мин.")
    assert quota_line(translator("ru"), 2, 3, now).startswith("Сегодня можно ещё 1 картинку из 3;")
    assert quota_line(translator("en"), 3, 3, now).startswith("Today's limit is used up;")


def test_arrival_refusals(tmp_path: Path) -> None:
    from botkit import make_config

    from upscaler_edge.bot.limits import arrival_refusal
    from upscaler_edge.bot.telegram import MediaInfo

    cfg = make_config(tmp_path, max_megapixels=2, max_video_seconds=60)
    en = translator("en")

    def info(**kw: object) -> MediaInfo:
        base: dict[str, object] = dict(
            file_name="a.png",
            size=10,
            mime_type="image/png",
            width=None,
            height=None,
            compressed=False,
            looks_like_image=True,
        )
        return MediaInfo(**{**base, **kw})  # type: ignore[arg-type]

    assert arrival_refusal(en, info(), cfg) is None
    assert "empty" in (arrival_refusal(en, info(size=0), cfg) or "")
    assert "limit is 5 MiB" in (arrival_refusal(en, info(size=50 * 2**20), cfg) or "")
    assert arrival_refusal(en, info(width=2000, height=1000), cfg) is None  # exactly 2 MP
    assert arrival_refusal(en, info(width=2000, height=1001), cfg) == (
        "Sorry: that picture is 2000×1001 (2 MP); the limit is 2 MP per picture."
    )
    assert arrival_refusal(en, info(duration=90.0), cfg) == (
        "Sorry: that video is 1 min 30 s long; the limit is 1 min."
    )


@pytest.mark.parametrize("size, shows", [((40, 30), "whole"), ((900, 500), "detail")])
def test_preview_is_a_small_side_by_side_jpeg(
    size: tuple[int, int], shows: str, tmp_path: Path
) -> None:
    from PIL import Image

    from upscaler_edge.bot.preview import LONG_SIDE, make_preview

    src, out, dst = tmp_path / "in.png", tmp_path / "out.png", tmp_path / "p.jpg"
    Image.new("RGBA", size, (255, 0, 0, 128)).save(src)
    Image.new("RGB", (size[0] * 4, size[1] * 4), (0, 0, 255)).save(out)
    assert make_preview(src, out, dst) == shows
    with Image.open(dst) as img:
        assert img.format == "JPEG" and max(img.size) <= LONG_SIDE
        left, right = img.getpixel((2, 2)), img.getpixel((img.width - 3, 2))
    assert left[0] > 150 and left[2] < 100  # red over grey: the input
    assert right[2] > 200 and right[0] < 50  # the result
    if shows == "whole":
        assert img.size == (160 + 4 + 160, 120)


def test_preview_is_best_effort(tmp_path: Path) -> None:
    from upscaler_edge.bot.preview import make_preview

    (tmp_path / "bad.png").write_bytes(b"not a picture")
    assert make_preview(tmp_path / "bad.png", tmp_path / "bad.png", tmp_path / "p.jpg") is None


def test_members_seed_and_chat_decisions(tmp_path: Path) -> None:
    from upscaler_edge.bot.members import Members

    path = tmp_path / "m.sqlite3"
    members = Members(path)
    assert members.seed([1, 2]) == {1, 2}
    assert members.set_allowed(3, True, by=1) and not members.set_allowed(3, True, by=1)
    assert members.set_allowed(2, False, by=1)
    members.saw(4, first_name="Eve", username=None, lang_code="ru")
    members.close()
    members = Members(path)  # a restart with the same config: the chat's decisions stand
    assert members.seed([1, 2]) == {1, 3}
    members.close()
    members = Members(path)  # the owner adds 5 to the file; 2 is still denied
    assert members.seed([1, 2, 5]) == {1, 3, 5}
    members.set_allowed(1, False, by=None)
    assert 1 in members.seed([1, 2, 5])  # the owner cannot be shut out
    eve = members.get(4)
    assert eve is not None and not eve.allowed and eve.lang_code == "ru"
    assert [m.user_id for m in members.everyone()][:3] == [1, 3, 5]  # allowed first
    members.close()
