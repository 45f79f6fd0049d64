"""The bot's catalogues: complete, compiled, shipped, and safe to format.

Every text the bot code marks for translation must be in the Russian catalogue, translated,
with the same ``{fields}`` as the English; the shipped ``.mo`` must be what the ``.po``
compiles to; the wheel's package-data must carry them. Babel (a maintainer's tool, not a
dependency of the bot) extracts and compiles here.
"""

from __future__ import annotations

import io
import re
import string
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from upscaler_edge.bot import modeltexts
from upscaler_edge.bot.i18n import LANGUAGES, LOCALE_DIR, pick, translator
from upscaler_edge.bot.menu import ABOUT, ADMIN_MENU, DESCRIPTION, MENU

babel = pytest.importorskip("babel")
from babel.messages.extract import extract_from_dir  # noqa: E402
from babel.messages.mofile import read_mo, write_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "upscaler_edge" / "bot"
KEYWORDS = {"gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}


def _key(message_id: object, context: str | None) -> tuple[str | None, str]:
    singular = message_id[0] if isinstance(message_id, tuple) else message_id
    return context, str(singular)


def _in_code() -> dict[tuple[str | None, str], object]:
    found: dict[tuple[str | None, str], object] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(BOT), keywords=KEYWORDS, comment_tags=()
    ):
        found[_key(message, context)] = message
    return found


def _po(lang: str):  # -> babel Catalog
    with open(LOCALE_DIR / lang / "LC_MESSAGES" / "bot.po", "rb") as fh:
        return read_po(fh)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_marked_text_is_translated_to_russian() -> None:
    code = _in_code()
    assert len(code) > 100  # the extraction found the bot's texts
    catalogue = {_key(m.id, m.context): m for m in _po("ru") if m.id}
    missing = [key for key in code if key not in catalogue]
    assert missing == [], "run pybabel extract/update (docs/BOT.md, Translations)"
    empty = [key for key, m in catalogue.items() if not all(m.string) or not m.string]
    fuzzy = [key for key, m in catalogue.items() if m.fuzzy]
    assert empty == [] and fuzzy == []
    stale = [key for key in catalogue if key not in code]
    assert stale == [], "texts no longer in the code: pybabel update drops them"


def test_translations_keep_the_fields_and_use_russian_quotes() -> None:
    for message in _po("ru"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set().union(*(_fields(i) for i in ids))
        for form in forms:
            assert _fields(form) <= wanted | {"n"}, (message.id, form)
            assert _fields(form) >= wanted - {"n"}, (message.id, form)
            assert '"' not in form, f"use «ёлочки»: {form}"
            assert not re.search(
                r"[A-Za-z]{4,} [a-z]{4,} [a-z]{4,}", form.replace("Telegram", "")
            ), f"English left in: {form}"


def test_shipped_mo_is_the_compiled_po() -> None:
    for lang in LANGUAGES:
        if lang == "en":
            continue
        compiled = io.BytesIO()
        write_mo(compiled, _po(lang))
        compiled.seek(0)
        with open(LOCALE_DIR / lang / "LC_MESSAGES" / "bot.mo", "rb") as fh:
            shipped = read_mo(fh)
        fresh = read_mo(compiled)
        assert _texts(shipped) == _texts(fresh), (
            "recompile: pybabel compile -d upscaler_edge/bot/locale -D bot"
        )


def _texts(catalogue: object) -> dict[object, object]:
    def frozen(value: object) -> object:
        return tuple(value) if isinstance(value, (list, tuple)) else value

    return {frozen(m.id): frozen(m.string) for m in catalogue if m.id}  # type: ignore[attr-defined]


def test_package_data_ships_the_catalogues() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["upscaler_edge.bot"]
    files = [p.relative_to(BOT).as_posix() for p in LOCALE_DIR.rglob("*") if p.is_file()]
    assert any(f.endswith(".mo") for f in files)
    unshipped = [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert unshipped == []


def test_russian_plural_forms() -> None:
    tr = translator("ru")
    forms = [
        tr.ngettext("Cancelled {n} job.", "Cancelled {n} jobs.", n) for n in (1, 2, 5, 11, 21, 22)
    ]
    assert forms == [
        "Отменено: 1 картинка.",
        "Отменено: 2 картинки.",
        "Отменено: 5 картинок.",
        "Отменено: 11 картинок.",
        "Отменено: 21 картинка.",
        "Отменено: 22 картинки.",
    ]
    album = [
        tr.ngettext(
            "Album of {n} file queued: #{pos} in line",
            "Album of {n} files queued: #{pos} in line",
            n,
            pos=1,
        )
        for n in (2, 5, 21)
    ]
    assert album == [
        "Альбом из 2 файлов в очереди: №1",
        "Альбом из 5 файлов в очереди: №1",
        "Альбом из 21 файла в очереди: №1",
    ]


@pytest.mark.parametrize(
    "choice, code, lang",
    [
        (None, "ru", "ru"),
        (None, "ru-RU", "ru"),
        (None, "pt-br", "en"),
        (None, None, "en"),
        ("en", "ru", "en"),
        ("ru", "pt", "ru"),
        ("de", "ru", "ru"),  # not a language we have: Telegram's next
    ],
)
def test_pick(choice: str | None, code: str | None, lang: str) -> None:
    assert pick(choice, code) == lang


def test_menu_fits_telegram() -> None:
    for lang in LANGUAGES:
        tr = translator(lang)
        for command, text in MENU + ADMIN_MENU:
            assert re.fullmatch(r"[a-z0-9_]{1,32}", command)
            assert 3 <= len(tr.gettext(text)) <= 256
        assert len(tr.gettext(ABOUT)) <= 120
        assert len(tr.gettext(DESCRIPTION)) <= 512


def test_model_descriptions_are_still_the_manifests() -> None:
    from upscaler_edge.models import default_registry

    known = {spec.description for spec in default_registry().specs()}
    known |= {family.description for family in default_registry().families()}
    assert set(modeltexts.DESCRIPTIONS) <= known
