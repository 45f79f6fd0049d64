"""The bot's languages: English (the source texts) and Russian, from gettext catalogues.

Every text a user sees is written in English in the code, marked for translation
(``tr.gettext("...")``, ``tr.ngettext(...)`` for counts, ``N_("...")`` for constants translated
later), and looked up in ``locale/<lang>/LC_MESSAGES/bot.mo`` at run time with the standard
library's :mod:`gettext`. The ``.po`` sources are kept with Babel (``pybabel extract / update /
compile``, see docs/BOT.md); the compiled ``.mo`` files are shipped in the package.

Which language a user gets: their ``/lang`` choice if they made one, else the ``lang_code``
Telegram reports for them (``ru``, ``ru-RU`` -> Russian), else English. Any language without a
catalogue gets English.
"""

from __future__ import annotations

import functools
import gettext
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT",
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "Text",
    "Translator",
    "pick",
    "translator",
]

log = logging.getLogger(__name__)

DOMAIN = "bot"
LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT = "en"
LANGUAGES = ("en", "ru")  # what /lang offers; "en" needs no catalogue


def N_(message: str) -> str:  # the conventional gettext marker's name
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Text:
    """A text to show later, in a language not known yet: an English ``msgid`` (marked with
    :func:`N_` where it is written), its plural and count if it has one, and its fields.
    Exceptions carry one, so that code without a :class:`Translator` can still say why."""

    msgid: str
    fields: dict[str, Any] = field(default_factory=dict)
    plural: str | None = None
    n: int | None = None

    def render(self, tr: Translator) -> str:
        """The text in ``tr``'s language."""
        if self.plural is not None and self.n is not None:
            return tr.ngettext(self.msgid, self.plural, self.n, **self.fields)
        return tr.gettext(self.msgid, **self.fields)


def pick(choice: str | None, telegram_code: str | None) -> str:
    """The language to answer in: ``choice`` (from /lang) if it is one we have, else the
    Telegram ``lang_code`` reduced to its language (``pt-BR`` -> ``pt``) if we have it, else
    English."""
    for code in (choice, telegram_code):
        lang = (code or "").strip().lower().replace("_", "-").split("-", 1)[0]
        if lang in LANGUAGES:
            return lang
    return DEFAULT


class Translator:
    """Texts in one language. ``gettext``/``ngettext`` are named as gettext's so that Babel
    extracts their literal arguments; placeholders are ``str.format`` fields."""

    def __init__(self, lang: str, catalogue: gettext.NullTranslations) -> None:
        self.lang = lang
        self._catalogue = catalogue

    def gettext(self, message: str, **fields: Any) -> str:
        """``message`` translated, then formatted with ``fields`` (if any)."""
        text = self._catalogue.gettext(message)
        return text.format(**fields) if fields else text

    def ngettext(self, singular: str, plural: str, n: int, **fields: Any) -> str:
        """The form for ``n`` (Russian has three), formatted with ``n`` and ``fields``."""
        return self._catalogue.ngettext(singular, plural, n).format(n=n, **fields)

    def pgettext(self, context: str, message: str, **fields: Any) -> str:
        """``message`` in ``context`` (the same English word may need two translations)."""
        text = self._catalogue.pgettext(context, message)
        return text.format(**fields) if fields else text

    def number(self, value: float, digits: int = 1) -> str:
        """``value`` with ``digits`` decimals and this language's decimal mark (1.5, 1,5)."""
        text = f"{value:.{digits}f}"
        return text.replace(".", self.pgettext("decimal mark", "."))

    def duration(self, seconds: float) -> str:
        """A short duration: ``40 s``, ``1 min 15 s``, ``2 h 5 min`` (rounded, at least 1 s)."""
        total = max(1, round(seconds))
        if total < 60:
            return self.gettext("{s} s", s=total)
        minutes, sec = divmod(total, 60)
        if minutes < 60:
            if sec:
                return self.gettext("{m} min {s} s", m=minutes, s=sec)
            return self.gettext("{m} min", m=minutes)
        hours, minutes = divmod(minutes, 60)
        return self.gettext("{h} h {m} min", h=hours, m=minutes)

    def __repr__(self) -> str:
        return f"Translator({self.lang!r})"


@functools.cache
def translator(lang: str) -> Translator:
    """The translator for ``lang`` (English for a language without a catalogue)."""
    lang = pick(lang, None)
    if lang == DEFAULT:
        return Translator(lang, gettext.NullTranslations())
    try:
        catalogue = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])
    except FileNotFoundError:  # a broken install: say so once, answer in English
        log.warning("no %s catalogue under %s; answering in English", lang, LOCALE_DIR)
        return Translator(lang, gettext.NullTranslations())
    return Translator(lang, catalogue)
