"""What the window remembers between runs, kept in QSettings.

:class:`GuiSettings` is a plain value; :func:`load_settings` and :func:`save_settings` move it
in and out of a ``QSettings`` the caller owns (the user's, or an ini file in tests), so nothing
here decides where settings live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from PySide6.QtCore import QByteArray, QSettings

__all__ = ["APPLICATION", "ORGANIZATION", "GuiSettings", "load_settings", "save_settings"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ORGANIZATION = "upscaler-edge"
APPLICATION = "upscaler-edge-gui"

FORMATS = ("png", "jpg", "webp")
SCALES = (1, 2, 3, 4)


@dataclass
class GuiSettings:
    """The window's choices. ``output_dir`` empty means "beside each input"; ``tile`` 0 = auto;
    ``denoise`` None = the model family's plain model (or a family without levels)."""

    model: str = "realesrgan-x4plus"
    scale: int = 4
    denoise: int | None = None
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


def _to_bool(raw: object) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return bool(raw)


def _to_bytes(raw: object) -> QByteArray:
    if isinstance(raw, QByteArray):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        return QByteArray(bytes(raw))
    raise TypeError(f"not bytes: {type(raw).__name__}")


def _to_int(raw: object) -> int:
    if isinstance(raw, (int, float, str)):
        return int(raw)
    raise TypeError(f"not a number: {type(raw).__name__}")


def _to_level(raw: object) -> int | None:
    """A denoise level; '' (or None) for none."""
    if raw is None or raw == "":
        return None
    return _to_int(raw)


def _value(qs: QSettings, key: str, default: T, convert: Callable[[object], T]) -> T:
    """``qs.value`` converted; the default when missing or unreadable."""
    raw = qs.value(key, None)
    if raw is None:
        return default
    try:
        return convert(raw)
    except (TypeError, ValueError):
        log.warning("ignoring unreadable setting %s=%r", key, raw)
        return default


def load_settings(qs: QSettings) -> GuiSettings:
    """Read settings, falling back to defaults for anything missing or out of range."""
    d = GuiSettings()
    s = GuiSettings(
        model=_value(qs, "model", d.model, str),
        scale=_value(qs, "scale", d.scale, _to_int),
        denoise=_value(qs, "denoise", d.denoise, _to_level),
        format=_value(qs, "format", d.format, str),
        quality=_value(qs, "quality", d.quality, _to_int),
        output_dir=_value(qs, "output_dir", d.output_dir, str),
        device=_value(qs, "device", d.device, str),
        tile=_value(qs, "advanced/tile", d.tile, _to_int),
        tta=_value(qs, "advanced/tta", d.tta, _to_bool),
        overwrite=_value(qs, "advanced/overwrite", d.overwrite, _to_bool),
        geometry=_value(qs, "window/geometry", QByteArray(), _to_bytes),
        window_state=_value(qs, "window/state", QByteArray(), _to_bytes),
        splitter=_value(qs, "window/splitter", QByteArray(), _to_bytes),
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
    qs.setValue("denoise", "" if s.denoise is None else s.denoise)
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
