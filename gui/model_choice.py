"""The model picker's rows, from the core's model registry.

One row per :class:`upscaler_edge.models.ModelFamily` (a family such as
``realesr-animevideov3`` offers its x2/x3/x4 members as one choice; the core picks the
member for the scale and denoise level). The scale buttons offer 2 up to the family's largest
scale (smaller scales than a model's own are a Lanczos resize of its output), and 1 where a
member works at x1; the denoise picker offers the levels shipped at the chosen scale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .panels import ModelEntry

if TYPE_CHECKING:
    from upscaler_edge.models import ModelFamily

__all__ = ["FALLBACK_MODEL", "KIND_ORDER", "load_model_entries", "model_entries"]

log = logging.getLogger(__name__)

#: What the picker offers when the core cannot list its models.
FALLBACK_MODEL = ModelEntry("realesrgan-x4plus", "realesrgan-x4plus", "", 4)


#: Picker order by purpose: photos first (the default model), user models last.
KIND_ORDER = ("photo", "anime", "fast", "custom")


def _kind_rank(family: ModelFamily) -> int:
    return KIND_ORDER.index(family.kind) if family.kind in KIND_ORDER else len(KIND_ORDER) - 1


def model_entries(families: Iterable[ModelFamily]) -> list[ModelEntry]:
    """Picker rows grouped by kind (:data:`KIND_ORDER`), the registry's order within a kind."""
    ordered = sorted(families, key=_kind_rank)
    return [
        ModelEntry(
            f.name,
            f.name,
            f.description,
            max(f.scales),
            combos=f.combos,
            default_denoise=f.default_denoise,
            denoise_labels=f.denoise_labels,
        )
        for f in ordered
    ]


def load_model_entries() -> tuple[list[ModelEntry], str | None]:
    """The picker's rows, and a one-line reason when the core could not list them (the rows
    are then just :data:`FALLBACK_MODEL`)."""
    try:
        from upscaler_edge.models import default_registry

        entries = model_entries(default_registry().families())
    except Exception as exc:
        log.exception("cannot list models")
        return [FALLBACK_MODEL], f"Cannot list models: {exc}"
    return entries or [FALLBACK_MODEL], None
