"""Turn a caption such as ``x2 anime`` or ``/upscale 4 realesrgan-x4plus`` into a choice.

Pure functions over plain data, so they are tested without Telegram or models.

Words understood (any order, case-insensitive): a scale (``2``, ``x2``, ``2x``, ``×2``), a model
or family name from :data:`Catalog.names`, a model kind (``photo``, ``anime``, ``fast``),
an output format (``png``, ``jpg``/``jpeg``, ``webp``). A caption that starts with ``/upscale``,
or that contains at least one of these words, must consist of them only; any other caption
(``my cat``) is ordinary text and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import ModelFamily, Registry

__all__ = ["CaptionError", "Catalog", "Choice", "command_of", "parse_caption"]

_SCALE = re.compile(r"^(?:x|×)?(\d{1,2})(?:x|×)?$")
_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}


class CaptionError(ValueError):
    """The caption asks for something unknown; ``str()`` is the reply."""


@dataclass(frozen=True)
class Choice:
    """What the caption asked for; None = not mentioned (the user's default applies)."""

    model: str | None = None
    scale: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class Catalog:
    """Model and family names a user may type, kind -> the first family of that kind, and the
    families that /models and /model offer."""

    names: Sequence[str]
    kinds: Mapping[str, str]
    families: Sequence[ModelFamily] = ()

    @classmethod
    def from_registry(cls, registry: Registry) -> Catalog:
        """What the core's model registry offers."""
        families = registry.families()
        kinds: dict[str, str] = {}
        for family in families:
            kinds.setdefault(family.kind, family.name)
        return cls(names=registry.names(), kinds=kinds, families=families)


def command_of(text: str | None) -> str | None:
    """``"/Scale@my_bot 2"`` -> ``"/scale"``; None when the text is not a command."""
    if not text or not text.startswith("/"):
        return None
    return text.split(maxsplit=1)[0].split("@", 1)[0].lower()


def parse_caption(text: str | None, catalog: Catalog) -> Choice:
    """The choice a caption makes. Raises :class:`CaptionError` for unknown words in a caption
    that is clearly a request (see module doc)."""
    if not text or not text.strip():
        return Choice()
    words = text.split()
    strict = command_of(text) == "/upscale"
    if strict:
        words = words[1:]
    by_lower = {n.lower(): n for n in catalog.names}
    model: str | None = None
    scale: int | None = None
    fmt: str | None = None
    unknown: list[str] = []
    for raw in words:
        word = raw.lower().strip(",;")
        if (m := _SCALE.match(word)) is not None:
            scale = int(m.group(1))
            if not 1 <= scale <= 16:
                raise CaptionError(f"scale {scale} is out of range: use 2, 3 or 4")
        elif word in by_lower:
            model = by_lower[word]
        elif word in catalog.kinds:
            model = catalog.kinds[word]
        elif word in _FORMATS:
            fmt = _FORMATS[word]
        else:
            unknown.append(raw)
    understood = model is not None or scale is not None or fmt is not None
    if unknown and (strict or understood):
        raise CaptionError(
            f"I don't understand {' '.join(unknown)!r}. Write a scale (x2), a model "
            "(see /models) and/or a format (png, jpg, webp), e.g. 'x2 anime'."
        )
    if unknown:
        return Choice()
    return Choice(model=model, scale=scale, format=fmt)
