"""The job queue's SQLite schema and its migrations (``PRAGMA user_version``)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "QueueVersionError", "migrate"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # PRAGMA user_version of a database this module has set up

# Times are Unix seconds (time.time()). Front-end facts (chat, message and user ids, the chat
# address) are opaque here: the queue only compares and returns them.
_TABLE = """CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id             INTEGER NOT NULL,
    request_message_id  INTEGER NOT NULL,  -- the message that asked for the job
    user_id             INTEGER NOT NULL,
    chat_address        TEXT    NOT NULL DEFAULT '',  -- how to reach the chat after a restart
    state               TEXT    NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued','running','ready','done','failed','cancelled')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    params_json         TEXT    NOT NULL DEFAULT '{}',  -- the front end's options, a JSON object
    status_message_id   INTEGER,  -- the message edited with progress
    reply_message_id    INTEGER,  -- the final reply (result or reason), once sent
    reply_random_id     INTEGER NOT NULL,  -- idempotency key of the final reply
    error               TEXT,  -- why the job ended without a result (one line)
    claim_number        INTEGER,  -- queue-wide count of claims when this job was last claimed
    created_at          REAL    NOT NULL,
    started_at          REAL,
    finished_at         REAL,
    album_id            INTEGER,  -- rows sent as one album share it (NULL: a single request)
    UNIQUE (chat_id, request_message_id)
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_state_user ON jobs (state, user_id, id)",
    "CREATE INDEX IF NOT EXISTS jobs_user_claim ON jobs (user_id, claim_number)",
    "CREATE INDEX IF NOT EXISTS jobs_album ON jobs (chat_id, album_id)",
    "CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_at)",
)

# Version 0 (no user_version) had the same table with unclear column names.
_FROM_V0 = (
    "ALTER TABLE jobs RENAME COLUMN message_id TO request_message_id",
    "ALTER TABLE jobs RENAME COLUMN peer TO chat_address",
    "ALTER TABLE jobs RENAME COLUMN params TO params_json",
    "ALTER TABLE jobs RENAME COLUMN served_seq TO claim_number",
    "DROP INDEX IF EXISTS jobs_user_served",
    "CREATE INDEX IF NOT EXISTS jobs_user_claim ON jobs (user_id, claim_number)",
)

# Version 1 lacked the album column and the 'ready' state (a CHECK constraint, so the table
# is rebuilt; ids, reply keys and AUTOINCREMENT's high-water mark are kept).
_V1_COLUMNS = (
    "id, chat_id, request_message_id, user_id, chat_address, state, attempts, params_json,"
    " status_message_id, reply_message_id, reply_random_id, error, claim_number, created_at,"
    " started_at, finished_at"
)
_FROM_V1 = (
    "ALTER TABLE jobs RENAME TO jobs_v1",
    _TABLE,
    f"INSERT INTO jobs ({_V1_COLUMNS}) SELECT {_V1_COLUMNS} FROM jobs_v1",
    "DROP TABLE jobs_v1",
)


class QueueVersionError(Exception):
    """The database was set up by a newer version of this module; ``str()`` says so."""


def migrate(db: sqlite3.Connection, db_path: Path) -> None:
    """Create the table, or bring an older database up to :data:`SCHEMA_VERSION` (call inside
    a write transaction)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise QueueVersionError(
            f"{db_path} was written by a newer upscaler-edge (queue schema "
            f"{version}, this one knows up to {SCHEMA_VERSION}); upgrade, or move it away"
        )
    has_jobs = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
    ).fetchone()
    if version == 0 and has_jobs:
        log.info("%s: renaming the queue's columns (schema 0 -> 1)", db_path)
        for statement in _FROM_V0:
            db.execute(statement)
        version = 1
    if version == 1 and has_jobs:
        log.info("%s: albums and the 'ready' state (schema 1 -> 2)", db_path)
        for statement in _FROM_V1:
            db.execute(statement)
    elif not has_jobs:
        db.execute(_TABLE)
    for statement in _INDEXES:
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
