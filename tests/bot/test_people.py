"""The bot for the people who use it (issue 13), end to end through ``run_bot`` against the fake
Telegram: languages, albums, previews, quotas, the owner's administration, model families."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import pytest
from botkit import (
    FRIEND,
    OWNER,
    STRANGER,
    BotHarness,
    make_config,
    png_bytes,
    slowed,
    stub_core,
    wait_for,
)
from faketg import FakeTelegram
from PIL import Image
from telethon import functions, types

from upscaler_edge.bot.access import REFUSAL
from upscaler_edge.bot.admin import HIDDEN
from upscaler_edge.bot.app import Core
from upscaler_edge.bot.captions import Catalog
from upscaler_edge.errors import Cancelled
from upscaler_edge.jobs import DONE, FAILED, QUEUED, READY, JobQueue
from upscaler_edge.models import ModelSpec, Registry

pytestmark = pytest.mark.timeout(120)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def start(tmp_path: Path, fake: FakeTelegram, core: Core, **cfg: Any) -> BotHarness:
    return await BotHarness(fake, make_config(tmp_path, **cfg), core).start()


def status_messages(fake: FakeTelegram, chat: int) -> list[Any]:
    """The bot's text messages that were deleted: the status messages of finished jobs."""
    return [
        m for m in fake.messages_to(chat, include_deleted=True) if m.kind == "text" and m.deleted
    ]


def album_sends(fake: FakeTelegram, photos: bool) -> list[Any]:
    kind = types.InputMediaPhoto if photos else types.InputMediaDocument
    return [
        r
        for r in fake.requests
        if isinstance(r, functions.messages.SendMultiMediaRequest)
        and isinstance(r.multi_media[0].media, kind)
    ]


def downloads_of(fake: FakeTelegram, update: Any) -> int:
    """GetFileRequests made for the file of ``update``."""
    media_id = update.message.media.document.id
    return sum(
        isinstance(r, functions.upload.GetFileRequest) and r.location.id == media_id
        for r in fake.requests
    )


# -- languages ---------------------------------------------------------------------------------
def test_a_russian_user_gets_russian_and_a_portuguese_one_english(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    anya = fake.user(FRIEND, "Аня", lang_code="ru")
    joao = fake.user(OWNER, "João", lang_code="pt-br")

    async def main() -> None:
        h = await start(tmp_path, fake, slowed(real_core, 0.6))
        for user, name in ((anya, "кот.png"), (joao, "cat.png")):
            await h.send(fake.text(user, "/help"), user)
            update = fake.document(user, png_bytes(32, 24), name)
            await h.send(update, user)
            assert (await h.finished(update)).state == DONE
            await h.send(fake.text(user, "/cancel"), user)
        await h.close()

    run(main())
    # Russian, all of it: help, status and its progress, preview, result caption, /cancel
    help_ru, nothing_ru = fake.texts_to(FRIEND)
    assert help_ru.startswith("Пришлите фото или, лучше, картинку файлом")
    assert "/allow" not in help_ru  # not the owner
    assert nothing_ru == "У вас ничего нет в очереди."
    (status,) = status_messages(fake, FRIEND)
    assert status.text == "В очереди: №1."
    assert any(e.startswith("Увеличиваю… ") for e in status.edits)
    (preview,) = fake.photos_to(FRIEND)
    assert preview.text == "До и после."
    (doc,) = fake.documents_to(FRIEND)
    assert doc.file_name == "кот_x4.png"
    assert "×4: 32×24 → 128×96, " in doc.text and " с на CPU" in doc.text
    # pt-br has no catalogue: English; the owner's help has the admin part
    help_en, nothing_en = fake.texts_to(OWNER)
    assert help_en.startswith("Send me a photo or, better, a picture as a file")
    assert "/allow ID" in help_en
    assert nothing_en == "You have nothing queued or running."
    (status,) = status_messages(fake, OWNER)
    assert status.text.startswith("Queued: #1 in line")
    assert fake.photos_to(OWNER)[0].text == "Before and after."
    assert " s on CPU" in fake.documents_to(OWNER)[0].text


def test_lang_overrides_telegram_and_persists(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    anya = fake.user(FRIEND, "Аня", lang_code="ru")
    joao = fake.user(OWNER, "João", lang_code="pt")

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core))
        await h.send(fake.text(anya, "/lang en"), anya)
        await h.send(fake.text(anya, "/cancel"), anya)
        await h.send(fake.text(joao, "/lang"), joao)
        menu = fake.messages_to(OWNER)[-1]
        labels = [b.text for row in menu.buttons.rows for b in row.buttons]
        assert labels == ["Русский", "English", "As in Telegram"]
        await h.send(fake.button_press(joao, menu.id, b"set:lang:ru"), joao)
        await h.close()
        h2 = await start(tmp_path, fake, stub_core(real_core))  # kept across a restart
        await h2.send(fake.text(joao, "/cancel"), joao)
        await h2.send(fake.text(anya, "/lang auto"), anya)
        await h2.close()

    run(main())
    assert fake.texts_to(FRIEND) == [
        "Done: I answer in English.",
        "You have nothing queued or running.",
        "Готово: отвечаю на языке вашего Telegram.",
    ]
    menu, answer = fake.messages_to(OWNER)
    assert menu.text == "Language: as in Telegram. Choose:"
    assert menu.current_text == "Готово: теперь отвечаю по-русски."  # the menu, edited
    assert answer.text == "У вас ничего нет в очереди."


def test_menu_and_descriptions_are_set_per_language_at_start_up(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core))
        await h.close()

    run(main())
    default = dict(fake.bot_commands[("BotCommandScopeDefault", "")])
    russian = dict(fake.bot_commands[("BotCommandScopeDefault", "ru")])
    assert default.keys() == russian.keys() >= {"start", "model", "preview", "lang", "status"}
    assert default["model"] == "Model, scale and noise reduction"
    assert russian["model"] == "Модель, масштаб и шумоподавление"
    assert "users" not in default  # the admin commands are the owner's
    about, description = fake.bot_info["ru"]
    assert about is not None and about.startswith("Увеличивает картинки")
    assert description is not None and "«до и после»" in description
    assert fake.bot_info[""][0] is not None and fake.bot_info[""][0].startswith("Upscales")
    assert fake.count(functions.bots.SetBotInfoRequest) == 2


# -- albums and previews -------------------------------------------------------------------------
def test_an_album_of_three_is_one_request_and_comes_back_as_one_album(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER, lang_code="ru")
    calls: list[Path] = []
    updates = fake.album(user, [(png_bytes(32, 24), f"{n}.png") for n in "abc"], caption="x2")

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core, calls))
        await fake.deliver_together(updates, user)  # handled concurrently, like Telethon does
        for update in updates:
            assert (await h.finished(update)).state == DONE
        await wait_for(lambda: len(fake.documents_to(OWNER)) == 3, what="the album")
        jobs = [h.job_for(u) for u in updates]
        assert len({j.album_id for j in jobs}) == 1 and jobs[0].album_id is not None
        assert len({j.status_message_id for j in jobs}) == 1
        await h.close()

    run(main())
    assert len(calls) == 3
    docs = fake.documents_to(OWNER)
    assert sorted(d.file_name for d in docs) == ["a_x2.png", "b_x2.png", "c_x2.png"]
    assert len({d.grouped_id for d in docs}) == 1 and docs[0].grouped_id is not None
    assert all(Image.open(io.BytesIO(d.file_bytes)).size == (64, 48) for d in docs)
    previews = fake.photos_to(OWNER)
    assert len(previews) == 3 and len({p.grouped_id for p in previews}) == 1
    assert previews[0].text == "До и после." and previews[0].id < docs[0].id
    assert len(album_sends(fake, photos=True)) == 1 and len(album_sends(fake, photos=False)) == 1
    # one status message for the whole album, gone once the album is back
    texts = [m for m in fake.messages_to(OWNER, include_deleted=True) if m.kind == "text"]
    assert len(texts) == 1 and texts[0].deleted
    shown = [texts[0].text, *texts[0].edits]
    assert any(t.startswith("Альбом из 3 файлов в очереди: №1") for t in shown), shown


def test_restart_in_the_middle_of_an_album_does_no_file_twice(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    """The bot stops while the second of three files is being upscaled: the first is kept
    (ready), the second and third go back in line; after the restart each file is upscaled
    once in all and the album comes back once, whole."""
    user = fake.user(OWNER)
    finished: list[str] = []
    started = threading.Event()
    stub = stub_core(real_core)

    def first_run(src: Path, dst: Path, options: Any, *, cancel: Any, **kw: Any) -> Any:
        if dst.name.startswith("b_"):
            started.set()
            if cancel.wait(20):
                raise Cancelled("cancelled")
        result = stub.upscale(src, dst, options, cancel=cancel, **kw)
        finished.append(dst.name)
        return result

    def second_run(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        result = stub.upscale(src, dst, options, **kw)
        finished.append(dst.name)
        return result

    updates = fake.album(user, [(png_bytes(), f"{n}.png") for n in "abc"])

    async def main() -> None:
        h = await start(
            tmp_path, fake, Core(**{**vars(stub), "upscale": first_run}), stop_grace=0.3
        )
        for update in updates:
            await h.send(update, user)
        await wait_for(started.is_set, what="the second file to start")
        await h.close()
        with JobQueue(h.config.jobs_path, h.config.spool_dir) as queue:
            states = [queue.find(OWNER, u.message.id).state for u in updates]
        assert states == [READY, QUEUED, QUEUED]
        assert fake.documents_to(OWNER) == []
        h2 = await start(tmp_path, fake, Core(**{**vars(stub), "upscale": second_run}))
        for update in updates:
            assert (await h2.finished(update)).state == DONE
        await h2.close()

    run(main())
    assert sorted(finished) == ["a_x4.png", "b_x4.png", "c_x4.png"]  # each exactly once
    docs = fake.documents_to(OWNER)
    assert sorted(d.file_name for d in docs) == ["a_x4.png", "b_x4.png", "c_x4.png"]
    assert len({d.grouped_id for d in docs}) == 1


def test_lost_answer_to_an_album_never_sends_it_twice(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    fake.fail(
        functions.messages.SendMultiMediaRequest,
        lambda r: ConnectionError("lost on the way back"),
        after=True,
        when=lambda r: isinstance(r.multi_media[0].media, types.InputMediaDocument),
    )
    updates = fake.album(user, [(png_bytes(), f"{n}.png") for n in "ab"])

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core))
        for update in updates:
            await h.send(update, user)
        for update in updates:
            assert (await h.finished(update)).state == DONE
        await h.close()

    run(main())
    assert len(album_sends(fake, photos=False)) == 2  # the retry was refused as a repeat
    assert len(fake.documents_to(OWNER)) == 2 and len(fake.photos_to(OWNER)) == 2


def test_an_album_of_twelve_comes_back_as_ten_and_two(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    updates = fake.album(user, [(png_bytes(8, 8), f"p{n:02d}.png") for n in range(12)])

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core))
        await h.send(fake.text(user, "/preview off"), user)
        for update in updates:
            await h.send(update, user)
        for update in updates:
            assert (await h.finished(update)).state == DONE
        await h.close()

    run(main())
    docs = fake.documents_to(OWNER)
    assert len(docs) == 12 and fake.photos_to(OWNER) == []
    sizes = sorted(sum(d.grouped_id == g for d in docs) for g in {d.grouped_id for d in docs})
    assert sizes == [2, 10]
    assert [d.file_name for d in docs] == [f"p{n:02d}_x4.png" for n in range(12)]
    assert fake.texts_to(OWNER)[0].startswith("Previews are off.")


# -- limits ---------------------------------------------------------------------------------------
def test_daily_limit_refuses_the_third_for_a_friend_and_never_the_owner(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    owner, friend = fake.user(OWNER), fake.user(FRIEND, lang_code="ru")
    third = fake.user(333)

    async def main() -> None:
        h = await start(
            tmp_path,
            fake,
            stub_core(real_core),
            daily_limit=2,
            allowed_users=(OWNER, FRIEND, 333),
        )
        for user in (friend, owner):
            for n in range(3):
                update = fake.document(user, png_bytes(), f"{n}.png")
                await h.send(update, user)
                job = await h.finished(update)
                if user is friend and n == 2:
                    assert job.state == FAILED and downloads_of(fake, update) == 0
                else:
                    assert job.state == DONE
        await h.send(fake.text(friend, "/status"), friend)
        await h.send(fake.text(owner, "/status"), owner)
        # an album over what is left: the files within it are done, one reply for the rest
        await h.send(fake.document(third, png_bytes(), "solo.png"), third)
        album = fake.album(third, [(png_bytes(), f"{n}.png") for n in "abc"])
        for update in album:
            await h.send(update, third)
        for update in album:
            await h.finished(update)
        await wait_for(lambda: len(fake.documents_to(333)) == 2, what="the results")
        states = [h.job_for(u).state for u in album]
        assert states == [DONE, FAILED, FAILED]
        await h.close()

    run(main())
    assert len(fake.documents_to(FRIEND)) == 2 and len(fake.documents_to(OWNER)) == 3
    refusal = fake.texts_to(FRIEND)[0]
    assert refusal.startswith("На сегодня всё: лимит — 2 картинки в день.")
    assert "Счётчик обнулится в полночь (00:00 UTC" in refusal and "через " in refusal
    assert "Сегодняшний лимит исчерпан" in fake.texts_to(FRIEND)[1]
    assert "No daily limit for you" in fake.texts_to(OWNER)[0]
    (said,) = fake.texts_to(333)
    assert said.startswith("Sorry, that's all for today: the limit is 2 pictures a day.")


def test_pixel_budget_is_checked_before_the_download_when_telegram_gives_the_size(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER)
    calls: list[Path] = []

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core, calls), max_megapixels=0.5)
        told = fake.document(user, png_bytes(8, 8), "told.png", image_size=(1000, 1000))
        await h.send(told, user)
        assert (await h.finished(told)).state == FAILED
        assert downloads_of(fake, told) == 0
        untold = fake.document(user, png_bytes(800, 700), "untold.png")
        await h.send(untold, user)
        assert (await h.finished(untold)).state == FAILED
        assert downloads_of(fake, untold) > 0
        await h.close()

    run(main())
    assert calls == []  # never upscaled
    first, second = fake.texts_to(OWNER)
    assert first == ("Sorry: that picture is 1000×1000 (1 MP); the limit is 0.5 MP per picture.")
    assert second.startswith("Sorry: that picture is 800×700 (0.56 MP)")


# -- the owner's administration --------------------------------------------------------------------
def test_allow_and_deny_work_at_once_and_survive_a_restart(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    owner, friend = fake.user(OWNER), fake.user(FRIEND)
    stranger = fake.user(STRANGER, "Bob", lang_code="ru")

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core))
        await h.send(fake.document(stranger, png_bytes(), "x.png"), stranger)  # refused
        await h.send(fake.text(owner, f"/allow {STRANGER}"), owner)
        first = fake.document(stranger, png_bytes(), "y.png")
        await h.send(first, stranger)
        assert (await h.finished(first)).state == DONE
        await h.send(fake.text(owner, f"/deny {FRIEND}"), owner)
        await h.send(fake.document(friend, png_bytes(), "z.png"), friend)  # refused at once
        await h.send(fake.text(stranger, "/allow 555"), stranger)  # not the owner
        await h.send(fake.text(owner, f"/deny {OWNER}"), owner)
        await h.send(fake.text(owner, "/users"), owner)
        await h.send(fake.text(owner, "/stats"), owner)
        await h.close()
        h2 = await start(tmp_path, fake, stub_core(real_core))
        again = fake.document(stranger, png_bytes(), "again.png")
        await h2.send(again, stranger)
        assert (await h2.finished(again)).state == DONE
        await h2.send(fake.document(friend, png_bytes(), "still.png"), friend)
        assert [j.user_id for j in h2.queue.all_jobs()] == [STRANGER, STRANGER]
        await h2.close()

    run(main())
    owner_texts = fake.texts_to(OWNER)
    assert owner_texts[0] == f"Done: Bob (@u{STRANGER}, {STRANGER}) can use the bot now."
    assert owner_texts[1] == f"Done: {FRIEND} can no longer use the bot."  # never wrote
    assert owner_texts[2] == "You are the owner; you can't shut yourself out."
    users, stats = owner_texts[3], owner_texts[4]
    assert users.startswith("2 people may use the bot:")
    assert f"(@u{OWNER}, {OWNER}) (owner): 0 jobs today" in users
    assert f"Bob (@u{STRANGER}, {STRANGER}): 1 job today, last message today at " in users
    assert "Wrote to the bot but may not use it" in users and f"{FRIEND})" in users
    assert "Jobs: 1 done, 0 failed, 0 cancelled." in stats and "stub: " in stats
    bob = fake.texts_to(STRANGER)
    assert bob[0].startswith("Извините, это личный бот")  # a stranger's language too
    assert bob[1] == "Хорошие новости: владелец открыл вам доступ. Присылайте картинки!"
    assert bob[2] == "Это может только владелец бота."
    assert fake.texts_to(FRIEND) == [REFUSAL, REFUSAL]  # once per run


def test_allow_by_replying_to_a_forwarded_message(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    owner, newcomer = fake.user(OWNER), fake.user(555, "Eve")

    async def main() -> None:
        h = await start(tmp_path, fake, stub_core(real_core))
        forwarded = fake.forward(owner, newcomer, "hi, can I use your bot?")
        await h.send(forwarded, owner)
        await h.send(fake.text(owner, "/allow", reply_to=forwarded.message.id), owner)
        hidden = fake.forward(owner, None, "me too", from_name="Mallory")
        await h.send(hidden, owner)
        await h.send(fake.text(owner, "/allow", reply_to=hidden.message.id), owner)
        await h.send(fake.text(owner, "/allow"), owner)
        update = fake.document(newcomer, png_bytes(), "eve.png")
        await h.send(update, newcomer)
        assert (await h.finished(update)).state == DONE
        await h.close()

    run(main())
    assert fake.texts_to(OWNER) == [
        "From 555. Reply /allow to this message to let them in.",
        "Done: 555 can use the bot now.",  # never wrote: known by id only
        HIDDEN,
        HIDDEN,
        "Write the person's id after the command (they get it with /id), or reply with the "
        "command to a message of theirs forwarded here.",
    ]


# -- model families --------------------------------------------------------------------------------
def _spec(name: str, scale: int, denoise: int | None = None) -> ModelSpec:
    return ModelSpec(
        name=name,
        scale=scale,
        param_path=Path(f"/nonexistent/{name}.param"),
        bin_path=Path(f"/nonexistent/{name}.bin"),
        denoise=denoise,
        kind="anime",
        description="test model",
    )


def _family_core(real_core: Core, calls: list[Any]) -> Core:
    """Families as the models engineer adds them: one with noise levels, one without."""
    specs = [
        *(_spec(f"cugan-x2-n{d}", 2, d) for d in (0, 1, 2)),
        _spec("cugan-x4-n0", 4, 0),
        _spec("plain-x4", 4),
    ]
    registry = Registry(
        specs,
        [
            ("cugan", {"members": [s.name for s in specs[:4]], "default_denoise": 0}),
            ("plain", {"members": ["plain-x4"]}),
        ],
    )
    stub = stub_core(replace_core(real_core, registry))

    def upscale(src: Path, dst: Path, options: Any, **kw: Any) -> Any:
        calls.append(options)
        return stub.upscale(src, dst, options, **kw)

    return Core(**{**vars(stub), "upscale": upscale})


def replace_core(core: Core, registry: Registry) -> Core:
    return Core(
        **{
            **vars(core),
            "resolve": registry.resolve,
            "catalog": Catalog.from_registry(registry),
            "close": lambda: None,
        }
    )


def test_model_offers_only_valid_combinations_and_captions_pick_noise_levels(
    tmp_path: Path, fake: FakeTelegram, real_core: Core
) -> None:
    user = fake.user(OWNER, lang_code="ru")
    calls: list[Any] = []

    def labels(message: Any) -> list[str]:
        return [b.text for row in message.buttons.rows for b in row.buttons]

    async def main() -> None:
        h = await start(tmp_path, fake, _family_core(real_core, calls), model="plain")
        await h.send(fake.text(user, "/model"), user)
        menu = fake.messages_to(OWNER)[-1]
        assert labels(menu) == ["cugan · для аниме", "plain · для аниме"]
        await h.send(fake.button_press(user, menu.id, b"m:cugan"), user)
        assert labels(menu) == ["×2", "×3", "×4"]
        await h.send(fake.button_press(user, menu.id, b"m:cugan:2"), user)
        assert labels(menu) == ["n0", "n1", "n2"]  # the levels x2 has
        await h.send(fake.button_press(user, menu.id, b"m:cugan:2:1"), user)
        prefs = h.service.prefs.get(OWNER)
        assert (prefs.model, prefs.scale, prefs.denoise) == ("cugan", 2, 1)
        first = fake.document(user, png_bytes(), "a.png")  # the saved level
        await h.send(first, user)
        second = fake.document(user, png_bytes(), "b.png", caption="шум 2")
        await h.send(second, user)
        third = fake.document(user, png_bytes(), "c.png", caption="x4 n1")  # x4 has n0 only
        await h.send(third, user)
        for update in (first, second):
            assert (await h.finished(update)).state == DONE
        assert h.job_for(first).params["model"] == "cugan-x2-n1"
        assert h.job_for(second).params["denoise"] == 2
        assert h.job_for(second).params["model"] == "cugan-x2-n2"
        assert h.job_for(third) is None
        # a family without levels: scale, then done
        await h.send(fake.text(user, "/model"), user)
        menu2 = fake.messages_to(OWNER)[-1]
        await h.send(fake.button_press(user, menu2.id, b"m:plain"), user)
        await h.send(fake.button_press(user, menu2.id, b"m:plain:2"), user)
        await h.close()

    run(main())
    assert [o.model for o in calls] == ["cugan-x2-n1", "cugan-x2-n2"]
    texts = fake.texts_to(OWNER)
    assert "Готово: теперь модель «cugan», ×2, шумоподавление n1." in texts
    assert "У «cugan» на ×4 есть только уровни шумоподавления n0, а n1 нет." in texts
    assert texts[-1] == "Готово: теперь модель «plain», ×2."
