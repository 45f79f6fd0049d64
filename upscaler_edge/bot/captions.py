"""Turn a caption such as ``x2 anime`` or ``/upscale 4 realesrgan-x4plus`` into a choice.

Pure functions over plain data, so they are tested without Telegram or models.

Words understood (any order, case-insensitive): a scale (``2``, ``x2``, ``2x``, ``×2``, ``х2``),
a model or family name from :data:`Catalog.names`, a model kind (``photo``, ``anime``,
``fast``; ``фото``, ``аниме``, ``быстро``), a noise-reduction level (``n2``, ``n-1``,
``denoise 2``, ``noise 2``, ``шум 2``), an output format (``png``, ``jpg``/``jpeg``, ``webp``).
A caption that starts with ``/upscale``, or that contains at least one of these words, must
consist of them only; any other caption (``my cat``) is ordinary text and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UpscalerError
from .i18n import N_, Text

if TYPE_CHECKING:
    from ..models import ModelFamily, Registry

__all__ = ["CaptionError", "Catalog", "Choice", "command_of", "parse_caption"]

_SCALE = re.compile(r"^(?:x|×|х)?(\d{1,2})(?:x|×|х)?$")  # х: the Cyrillic letter, as typed
_DENOISE_WORDS = ("-n", "denoise", "noise", "шум", "шумоподавление")
_KIND_WORDS = {"фото": "photo", "аниме": "anime", "быстро": "fast", "быстрая": "fast"}
_DENOISE = re.compile(r"^(?:-?n|denoise|noise|шум|шумоподавление)=?(-?\d)$")
_LEVEL = re.compile(r"^-?\d$")
_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}
SCALES = (2, 3, 4)  # what /model and /scale offer, within a family's largest scale


class CaptionError(ValueError):
    """The caption asks for something unknown; ``text`` says what, in any language."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.msgid.format(**text.fields))
        self.text = text


@dataclass(frozen=True)
class Choice:
    """What the caption asked for; None = not mentioned (the user's default applies)."""

    model: str | None = None
    scale: int | None = None
    format: str | None = None
    denoise: int | None = None


@dataclass(frozen=True)
class Catalog:
    """Model and family names a user may type, kind -> the first family of that kind, the
    families that /models and /model offer, and for each family the scales it can give with
    the noise levels valid at each (``None`` in a list: the family's plain model)."""

    names: Sequence[str]
    kinds: Mapping[str, str]
    families: Sequence[ModelFamily] = ()
    combos: Mapping[str, Mapping[int, tuple[int | None, ...]]] = field(default_factory=dict)

    @classmethod
    def from_registry(cls, registry: Registry) -> Catalog:
        """What the core's model registry offers; valid combinations are found by asking
        ``registry.resolve`` (so families with denoise levels just appear)."""
        families = registry.families()
        kinds: dict[str, str] = {}
        combos: dict[str, dict[int, tuple[int | None, ...]]] = {}
        for family in families:
            kinds.setdefault(family.kind, family.name)
            combos[family.name] = _combos(registry, family)
        return cls(names=registry.names(), kinds=kinds, families=families, combos=combos)

    def family(self, name: str | None) -> ModelFamily | None:
        """The family called ``name``, or the one that has ``name`` as a member."""
        for fam in self.families:
            if name == fam.name or name in fam.members:
                return fam
        return None

    def scales(self, family: ModelFamily) -> tuple[int, ...]:
        """The scales /model offers for ``family``, ascending."""
        known = self.combos.get(family.name)
        if known:
            return tuple(sorted(known))
        top = max(family.scales)
        return tuple(sorted({s for s in SCALES if s <= top} | set(family.scales)))

    def levels(self, family: ModelFamily, scale: int | None) -> tuple[int, ...]:
        """The noise levels ``family`` has at ``scale`` (None: its default scale)."""
        want = family.default_scale if scale is None else scale
        known = self.combos.get(family.name)
        if known is not None and want in known:
            return tuple(d for d in known[want] if d is not None)
        return tuple(family.denoise)


def _combos(registry: Registry, family: ModelFamily) -> dict[int, tuple[int | None, ...]]:
    top = max(family.scales)
    out: dict[int, tuple[int | None, ...]] = {}
    for scale in sorted({s for s in SCALES if s <= top} | set(family.scales)):
        valid: list[int | None] = []
        for level in (None, *family.denoise):
            try:
                registry.resolve(family.name, scale, level)
            except UpscalerError:
                continue
            valid.append(level)
        if valid:
            out[scale] = tuple(valid)
    return out


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
    words = [w.lower().strip(",;") for w in text.split()]
    raw_words = text.split()
    strict = command_of(text) == "/upscale"
    if strict:
        words, raw_words = words[1:], raw_words[1:]
    by_lower = {n.lower(): n for n in catalog.names}
    model: str | None = None
    scale: int | None = None
    fmt: str | None = None
    denoise: int | None = None
    unknown: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if (m := _SCALE.match(word)) is not None:
            scale = int(m.group(1))
            if not 1 <= scale <= 16:
                raise CaptionError(
                    Text(N_("Scale {scale} is out of range: use 2, 3 or 4."), {"scale": scale})
                )
        elif (m := _DENOISE.match(word)) is not None:
            denoise = int(m.group(1))
        elif word in _DENOISE_WORDS and i + 1 < len(words) and _LEVEL.match(words[i + 1]):
            denoise = int(words[i + 1])
            i += 1
        elif word in by_lower:
            model = by_lower[word]
        elif _KIND_WORDS.get(word, word) in catalog.kinds:
            model = catalog.kinds[_KIND_WORDS.get(word, word)]
        elif word in _FORMATS:
            fmt = _FORMATS[word]
        else:
            unknown.append(raw_words[i])
        i += 1
    understood = any(v is not None for v in (model, scale, fmt, denoise))
    if unknown and (strict or understood):
        raise CaptionError(
            Text(
                N_(
                    "I don't understand «{words}». Write a scale (x2), a model (see /models), "
                    "a noise level (n2) and/or a format (png, jpg, webp), e.g. «x2 anime»."
                ),
                {"words": " ".join(unknown)},
            )
        )
    if unknown:
        return Choice()
    return Choice(model=model, scale=scale, format=fmt, denoise=denoise)
