"""Per-user defaults (model, scale, noise level, format, language, previews), one-time hints,
and measured device speed.

A small SQLite file of its own (``BotConfig.prefs_path``); every call is one short
statement, safe to make from the event loop. Speed is kept per (model, device) in input
megapixels per second, as an exponential moving average, and feeds queue ETAs.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FIELDS", "Prefs", "UserPrefs"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id    INTEGER PRIMARY KEY,
    model      TEXT,
    scale      INTEGER,
    format     TEXT,
    photo_hint INTEGER NOT NULL DEFAULT 0,
    denoise    INTEGER,
    lang       TEXT,     -- /lang: 'en', 'ru'; NULL follows the Telegram app's language
    preview    INTEGER   -- /preview: 0 off; NULL (the default) or 1 on
);
CREATE TABLE IF NOT EXISTS speed (
    model   TEXT NOT NULL,
    device  TEXT NOT NULL,
    mpps    REAL NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (model, device)
);
"""
# Columns added after the first release, for files made before them.
_ADDED = {"denoise": "INTEGER", "lang": "TEXT", "preview": "INTEGER"}
FIELDS = ("model", "scale", "format", "denoise", "lang", "preview")


@dataclass(frozen=True)
class UserPrefs:
    """A user's defaults; None means "the bot's default" (for ``lang``: the Telegram app's)."""

    model: str | None = None
    scale: int | None = None
    format: str | None = None
    denoise: int | None = None
    lang: str | None = None
    preview: bool = True


class Prefs:
    """The preferences store in ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(users)")}
        for column, kind in _ADDED.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE users ADD COLUMN {column} {kind}")

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def get(self, user_id: int) -> UserPrefs:
        """The user's defaults (all None for a new user)."""
        with self._lock:
            row = self._db.execute(
                "SELECT model, scale, format, denoise, lang, preview FROM users WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        if not row:
            return UserPrefs()
        model, scale, fmt, denoise, lang, preview = row
        return UserPrefs(model, scale, fmt, denoise, lang, preview is None or bool(preview))

    def set(self, user_id: int, field: str, value: str | int | bool | None) -> None:
        """Set one of :data:`FIELDS` (None resets it to the bot default)."""
        self.update(user_id, **{field: value})

    def update(self, user_id: int, **values: str | int | bool | None) -> None:
        """Set several of :data:`FIELDS` at once (one statement)."""
        unknown = set(values) - set(FIELDS)
        if unknown or not values:
            raise ValueError(f"unknown preference(s) {sorted(unknown)!r}")
        names = list(values)
        assignments = ", ".join(f"{name} = ?" for name in names)
        args = [int(v) if isinstance(v, bool) else v for v in values.values()]
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO users (user_id) VALUES (?)", (user_id,))
            self._db.execute(f"UPDATE users SET {assignments} WHERE user_id = ?", (*args, user_id))

    def take_photo_hint(self, user_id: int) -> bool:
        """True exactly once per user: whether to tell them to send files, not photos."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO users (user_id) VALUES (?)", (user_id,))
            cur = self._db.execute(
                "UPDATE users SET photo_hint = 1 WHERE user_id = ? AND photo_hint = 0", (user_id,)
            )
        return cur.rowcount == 1

    def speed(self, model: str, device: str) -> float | None:
        """Measured input megapixels per second, or None before the first job."""
        with self._lock:
            row = self._db.execute(
                "SELECT mpps FROM speed WHERE model = ? AND device = ?", (model, device)
            ).fetchone()
            if row is None:  # any model on this device is a better guess than nothing
                row = self._db.execute(
                    "SELECT AVG(mpps) FROM speed WHERE device = ?", (device,)
                ).fetchone()
        return row[0] if row and row[0] else None

    def record_speed(self, model: str, device: str, megapixels: float, seconds: float) -> None:
        """Fold one finished job into the moving average (weight 0.3 for the new sample)."""
        if seconds <= 0 or megapixels <= 0:
            return
        sample = megapixels / seconds
        with self._lock:
            row = self._db.execute(
                "SELECT mpps, samples FROM speed WHERE model = ? AND device = ?", (model, device)
            ).fetchone()
            if row is None:
                self._db.execute("INSERT INTO speed VALUES (?, ?, ?, 1)", (model, device, sample))
            else:
                mpps = 0.7 * row[0] + 0.3 * sample
                self._db.execute(
                    "UPDATE speed SET mpps = ?, samples = ? WHERE model = ? AND device = ?",
                    (mpps, row[1] + 1, model, device),
                )
