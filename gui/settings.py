"""What the window remembers between runs, kept in QSettings.

:class:`GuiSettings` is a plain value; :func:`load_settings` and :func:`save_settings` move it
in and out of a ``QSettings`` the caller owns (the user's, or an ini file in tests), so nothing
here decides where settings live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from PySide6.QtCore import QByteArray, QSettings

__all__ = ["APPLICATION", "ORGANIZATION", "GuiSettings", "load_settings", "save_settings"]

log = logging.getLogger(__name__)

ORGANIZATION = "upscaler-edge"
APPLICATION = "upscaler-edge-gui"

FORMATS = ("png", "jpg", "webp")
SCALES = (2, 3, 4)


@dataclass
class GuiSettings:
    """The window's choices. ``output_dir`` empty means "beside each input"; ``tile`` 0 = auto."""

    model: str = "realesrgan-x4plus"
    scale: int = 4
    format: str = "png"
    quality: int = 95
    output_dir: str = ""
    device: str = "auto"
    tile: int = 0
    tta: bool = False
    overwrite: bool = False
    geometry: QByteArray = field(default_factory=QByteArray)
    window_state: QByteArray = field(default_factory=QByteArray)
    splitter: QByteArray = field(default_factory=QByteArray)


def _value(qs: QSettings, key: str, default: object, kind: type) -> object:
    """``qs.value`` coerced to ``kind``; the default when missing or unreadable."""
    raw = qs.value(key, None)
    if raw is None:
        return default
    try:
        if kind is bool:
            if isinstance(raw, str):
                return raw.strip().lower() in ("1", "true", "yes", "on")
            return bool(raw)
        if kind is QByteArray:
            return raw if isinstance(raw, QByteArray) else QByteArray(raw)
        return kind(raw)
    except (TypeError, ValueError):
        log.warning("ignoring unreadable setting %s=%r", key, raw)
        return default


def load_settings(qs: QSettings) -> GuiSettings:
    """Read settings, falling back to defaults for anything missing or out of range."""
    d = GuiSettings()
    s = GuiSettings(
        model=str(_value(qs, "model", d.model, str)),
        scale=int(_value(qs, "scale", d.scale, int)),  # type: ignore[arg-type]
        format=str(_value(qs, "format", d.format, str)),
        quality=int(_value(qs, "quality", d.quality, int)),  # type: ignore[arg-type]
        output_dir=str(_value(qs, "output_dir", d.output_dir, str)),
        device=str(_value(qs, "device", d.device, str)),
        tile=int(_value(qs, "advanced/tile", d.tile, int)),  # type: ignore[arg-type]
        tta=bool(_value(qs, "advanced/tta", d.tta, bool)),
        overwrite=bool(_value(qs, "advanced/overwrite", d.overwrite, bool)),
        geometry=_value(qs, "window/geometry", QByteArray(), QByteArray),  # type: ignore[arg-type]
        window_state=_value(qs, "window/state", QByteArray(), QByteArray),  # type: ignore[arg-type]
        splitter=_value(qs, "window/splitter", QByteArray(), QByteArray),  # type: ignore[arg-type]
    )
    if s.scale not in SCALES:
        s.scale = d.scale
    if s.format not in FORMATS:
        s.format = d.format
    s.quality = min(100, max(1, s.quality))
    s.tile = 0 if s.tile < 32 else s.tile
    return s


def save_settings(qs: QSettings, s: GuiSettings) -> None:
    """Write settings and flush them to storage."""
    qs.setValue("model", s.model)
    qs.setValue("scale", s.scale)
    qs.setValue("format", s.format)
    qs.setValue("quality", s.quality)
    qs.setValue("output_dir", s.output_dir)
    qs.setValue("device", s.device)
    qs.setValue("advanced/tile", s.tile)
    qs.setValue("advanced/tta", s.tta)
    qs.setValue("advanced/overwrite", s.overwrite)
    qs.setValue("window/geometry", s.geometry)
    qs.setValue("window/state", s.window_state)
    qs.setValue("window/splitter", s.splitter)
    qs.sync()
    if qs.status() != QSettings.Status.NoError:
        log.warning("could not save settings to %s: %s", qs.fileName(), qs.status())
