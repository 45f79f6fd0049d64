"""The model descriptions of ``models/manifest.toml``, marked so the catalogues translate them.

/models shows ``tr.gettext(family.description)``: a description listed here comes out in the
user's language, any other (a model added later, a user model) in English as written. A test
checks that each one here is still in the manifest, so none goes stale unseen.
"""

from __future__ import annotations

from .i18n import N_

__all__ = ["DESCRIPTIONS"]

DESCRIPTIONS = (
    N_("Photos: the most detail, the slowest (RRDB, 16.7 M params)"),
    N_("Anime and illustrations: clean lines and flat colour (6 RRDB blocks)"),
    N_("Fast: anime and video frames, x2 (small compact net)"),
    N_("Fast: anime and video frames, x3 (small compact net)"),
    N_("Fast: anime and video frames, x4 (small compact net)"),
    N_("Fast: anime, video frames, quick previews (x2/x3/x4 compact nets)"),
)
