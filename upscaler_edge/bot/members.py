"""Who may use the bot, as the owner left it, and who was seen when: ``members.sqlite3``.

The config's ``allowed_users`` seeds the list; after that the owner edits it from the chat
(``/allow``, ``/deny``) and the edits persist here. On each start :meth:`Members.seed` folds in
the config: an id that is new in ``allowed_users`` since the last start is allowed (editing the
file wins over an older ``/deny``), an id that was already there keeps what the chat decided.
The owner (the config's first id) is always allowed.

``seen`` keeps each user's name, Telegram language and last message time, for ``/users`` (the
people the owner allowed, and strangers the bot refused, so the owner can ``/allow`` them).

Blocking calls, each one short statement; the bot makes them off the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Member", "Members"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    user_id    INTEGER PRIMARY KEY,
    allowed    INTEGER NOT NULL,  -- 1 allowed, 0 denied
    changed_at REAL    NOT NULL,
    changed_by INTEGER            -- who decided (NULL: the config file)
);
CREATE TABLE IF NOT EXISTS seed (  -- the config's allowed_users at the last start
    user_id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS seen (
    user_id    INTEGER PRIMARY KEY,
    first_name TEXT,
    username   TEXT,
    lang_code  TEXT,
    last_seen  REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Member:
    """A user the bot knows: allowed or not, and what Telegram last told about them."""

    user_id: int
    allowed: bool
    first_name: str | None = None
    username: str | None = None
    lang_code: str | None = None
    last_seen: float | None = None


class Members:
    """The allowlist store in ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def seed(self, config_ids: Iterable[int]) -> frozenset[int]:
        """Fold the config's allowlist in (see the module doc); returns who is allowed now."""
        ids = list(config_ids)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = {r[0] for r in self._db.execute("SELECT user_id FROM seed")}
                for uid in ids:
                    if uid not in before:
                        self._db.execute(
                            "INSERT INTO members VALUES (?, 1, ?, NULL) ON CONFLICT (user_id)"
                            " DO UPDATE SET allowed = 1, changed_at = ?, changed_by = NULL",
                            (uid, now, now),
                        )
                if ids:  # the owner cannot be shut out, whatever the chat said
                    self._db.execute("UPDATE members SET allowed = 1 WHERE user_id = ?", (ids[0],))
                self._db.execute("DELETE FROM seed")
                self._db.executemany("INSERT INTO seed VALUES (?)", [(uid,) for uid in ids])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            rows = self._db.execute("SELECT user_id FROM members WHERE allowed = 1").fetchall()
        return frozenset(r[0] for r in rows)

    def set_allowed(self, user_id: int, allowed: bool, by: int | None) -> bool:
        """Allow or deny ``user_id``; returns False when that was already so."""
        with self._lock:
            row = self._db.execute(
                "SELECT allowed FROM members WHERE user_id = ?", (user_id,)
            ).fetchone()
            if row is not None and bool(row[0]) == allowed:
                return False
            self._db.execute(
                "INSERT INTO members VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " allowed = excluded.allowed, changed_at = excluded.changed_at,"
                " changed_by = excluded.changed_by",
                (user_id, int(allowed), time.time(), by),
            )
        return True

    def saw(
        self,
        user_id: int,
        *,
        first_name: str | None,
        username: str | None,
        lang_code: str | None,
        at: float | None = None,
    ) -> None:
        """Record that ``user_id`` wrote (name, language, time)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO seen VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " first_name = excluded.first_name, username = excluded.username,"
                " lang_code = COALESCE(excluded.lang_code, lang_code),"
                " last_seen = excluded.last_seen",
                (user_id, first_name, username, lang_code, time.time() if at is None else at),
            )

    def get(self, user_id: int) -> Member | None:
        """What is known about ``user_id`` (None: never allowed and never seen)."""
        found = [m for m in self.everyone() if m.user_id == user_id]
        return found[0] if found else None

    def everyone(self) -> list[Member]:
        """Everyone allowed, denied or seen: allowed first, then by most recently seen."""
        with self._lock:
            rows = self._db.execute(
                "SELECT u.user_id, COALESCE(m.allowed, 0), s.first_name, s.username,"
                " s.lang_code, s.last_seen FROM"
                " (SELECT user_id FROM members UNION SELECT user_id FROM seen) u"
                " LEFT JOIN members m ON m.user_id = u.user_id"
                " LEFT JOIN seen s ON s.user_id = u.user_id"
                " ORDER BY COALESCE(m.allowed, 0) DESC, COALESCE(s.last_seen, 0) DESC, u.user_id"
            ).fetchall()
        return [
            Member(uid, bool(allowed), first, user, lang, seen)
            for uid, allowed, first, user, lang, seen in rows
        ]
