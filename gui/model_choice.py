"""The model picker's rows, from the core's model list.

Qt-free apart from the row type the panel shows (:class:`~upscaler_edge_gui.panels.ModelEntry`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from .panels import ModelEntry

__all__ = ["FALLBACK_MODEL", "load_model_entries", "model_entries"]

log = logging.getLogger(__name__)

#: What the picker offers when the core cannot list its models.
FALLBACK_MODEL = ModelEntry("realesrgan-x4plus", "realesrgan-x4plus", "", 4)

_VARIANT = re.compile(r"-x(\d+)$")


def model_entries(specs: Iterable[object], names: Iterable[str]) -> list[ModelEntry]:
    """Picker rows from the core's ``list_models()`` and ``model_names()``.

    A family name (``realesr-animevideov3``) replaces its ``-x2/-x3/-x4`` variants: the scale
    buttons then pick the variant. Order follows the manifest.
    """
    specs = list(specs)
    spec_names = {s.name for s in specs}  # type: ignore[attr-defined]
    families = [n for n in names if n not in spec_names]
    entries: list[ModelEntry] = []
    emitted: set[str] = set()
    for spec in specs:
        name: str = spec.name  # type: ignore[attr-defined]
        m = _VARIANT.search(name)
        family = name[: m.start()] if m and name[: m.start()] in families else None
        if family is None:
            entries.append(ModelEntry(name, name, spec.description, int(spec.scale)))  # type: ignore[attr-defined]
            continue
        if family in emitted:
            continue
        emitted.add(family)
        variants = [s for s in specs if _VARIANT.sub("", s.name) == family]  # type: ignore[attr-defined]
        top = max(variants, key=lambda s: s.scale)  # type: ignore[attr-defined]
        description = re.sub(r",\s*x\d+\b", "", top.description)  # type: ignore[attr-defined]
        scales = "/".join(f"×{s.scale}" for s in sorted(variants, key=lambda s: s.scale))  # type: ignore[attr-defined]
        entries.append(ModelEntry(family, family, f"{description} — {scales}", int(top.scale)))  # type: ignore[attr-defined]
    return entries


def load_model_entries() -> tuple[list[ModelEntry], str | None]:
    """The picker's rows, and a one-line reason when the core could not list them (the rows
    are then just :data:`FALLBACK_MODEL`)."""
    try:
        from upscaler_edge.models import list_models, model_names

        return model_entries(list_models(), model_names()), None
    except Exception as exc:
        log.exception("cannot list models")
        return [FALLBACK_MODEL], f"Cannot list models: {exc}"
