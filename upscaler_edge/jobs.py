"""Durable job queue: one SQLite file (WAL mode) plus a spool folder of per-job files.

Contract
--------
* One row per request, keyed by ``(chat_id, request_message_id)``: adding the same request twice
  (a repeated update, a catch-up after a crash) returns the existing row, never a second job.
* Rows sent together (a Telegram album) share an ``album_id``; each is still its own job,
  claimed and run once. :meth:`JobQueue.album` lists an album's rows in message order.
* States: ``queued -> running -> ready -> done``, ``running -> done | failed | cancelled``,
  ``queued -> cancelled | failed``; ``ready -> cancelled | failed``. ``ready`` means the result
  is made (in the spool) and only the reply is missing: :meth:`claim` never takes it again and
  :meth:`recover` leaves it alone, so a restart sends it without redoing the work.
  :meth:`deliverable` says which ready rows may be sent now (an album once none of its rows is
  still queued or running). ``done``, ``failed`` and ``cancelled`` are final:
  :meth:`JobQueue.finish` never moves a row out of a final state, so a late "done" cannot
  overwrite a user's cancel.
* :meth:`JobQueue.claim` takes the next job inside ``BEGIN IMMEDIATE``, so two processes
  (or threads with their own connections) never claim the same row. Order is round-robin
  across users: the user served least recently goes first, each user's jobs in arrival order.
* :meth:`JobQueue.recover` runs at start-up: rows left ``running`` by a crash go back to
  ``queued`` unless they have already been attempted ``max_attempts`` times, in which case
  they become ``failed`` and are returned so the front end can tell the user.
* Each row carries ``reply_random_id``, a random 63-bit key fixed when the row is created.
  Front ends send the final reply with it as the idempotency key (Telegram rejects a repeated
  ``random_id``), and record the reply's message id with :meth:`finish`; together these make
  a crash between "sent" and "marked done" harmless: the retry can never produce a second reply.
* :meth:`spool_dir` is the job's private folder (inputs, outputs). It is deleted when the job
  reaches a final state; :meth:`clean_spool` removes folders of jobs that no longer need one.

* The schema carries a version (``PRAGMA user_version``, :data:`SCHEMA_VERSION`); opening an
  older file upgrades it in place, keeping its rows; a newer one raises
  :class:`QueueVersionError`.

The module knows nothing about Telegram: ``chat_address`` and ``params`` are opaque to it.
Methods may be called from any thread (the front ends call them off their event loop); calls
on one :class:`JobQueue` instance take turns on its connection.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .jobs_schema import SCHEMA_VERSION, QueueVersionError, migrate

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINAL_STATES",
    "LIVE_STATES",
    "QUEUED",
    "READY",
    "RUNNING",
    "SCHEMA_VERSION",
    "Job",
    "JobQueue",
    "QueueVersionError",
]

log = logging.getLogger(__name__)

QUEUED = "queued"
RUNNING = "running"
READY = "ready"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})
LIVE_STATES = (QUEUED, RUNNING, READY)  # not final: the job still owns its spool folder
_STATES = (QUEUED, RUNNING, READY, DONE, FAILED, CANCELLED)


@dataclass(frozen=True)
class Job:
    """A snapshot of one row. ``params`` is the front end's JSON object (model, scale, ...)."""

    id: int
    chat_id: int
    request_message_id: int
    user_id: int
    chat_address: str
    state: str
    attempts: int
    params: dict[str, Any] = field(hash=False, compare=False)
    status_message_id: int | None
    reply_message_id: int | None
    reply_random_id: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    album_id: int | None = None

    @property
    def final(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state in FINAL_STATES


# Job's fields in table order; the table stores ``params`` as JSON text in ``params_json``.
_FIELDS = tuple(f.name for f in fields(Job))
_COLUMNS = ", ".join("params_json" if name == "params" else name for name in _FIELDS)


def _row_to_job(row: tuple[Any, ...]) -> Job:
    values = dict(zip(_FIELDS, row, strict=True))
    values["params"] = json.loads(values["params"])
    return Job(**values)


class JobQueue:
    """The queue in ``db_path`` with job folders under ``spool_root`` (both created if missing).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, db_path: Path, spool_root: Path, *, max_attempts: int = 3) -> None:
        self.db_path = Path(db_path)
        self.spool_root = Path(spool_root)
        self.max_attempts = max_attempts
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.spool_root.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every transaction below is explicit (BEGIN IMMEDIATE ... COMMIT).
        self._db = sqlite3.connect(
            str(self.db_path), isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        try:
            self._set_up_schema()
        except BaseException:
            self._db.close()
            raise

    # -- plumbing -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction taken with BEGIN IMMEDIATE (the write lock up front)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _set_up_schema(self) -> None:
        """Create the table, or bring an older database up to :data:`SCHEMA_VERSION`.

        Inside one write transaction, so two processes opening an old file at once migrate
        it once; the rows keep their ids, states and reply keys.
        """
        if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self._write() as db:
            migrate(db, self.db_path)

    def _select(self, where: str, args: Iterable[Any] = ()) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs {where}", tuple(args))
            return [_row_to_job(r) for r in rows.fetchall()]

    # -- adding and reading -------------------------------------------------------------
    def add(
        self,
        chat_id: int,
        request_message_id: int,
        user_id: int,
        *,
        chat_address: str = "",
        params: dict[str, Any] | None = None,
        state: str = QUEUED,
        error: str | None = None,
        album_id: int | None = None,
    ) -> tuple[Job, bool]:
        """Create the job for this request, or return the existing one.

        Returns ``(job, created)``; ``created`` is False when the request was already known
        (its row is returned unchanged). ``state`` may be ``failed`` to record a
        request refused on arrival (with ``error``); such a row never gets a spool folder.
        ``album_id`` groups the rows of requests sent together (see :meth:`album`).
        """
        if state not in (QUEUED, FAILED):
            raise ValueError(f"a new job is queued or failed, not {state!r}")
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs (chat_id, request_message_id, user_id, chat_address,"
                " state, params_json, reply_random_id, error, created_at, finished_at, album_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chat_id,
                    request_message_id,
                    user_id,
                    chat_address,
                    state,
                    json.dumps(params or {}),
                    secrets.randbits(63),
                    error,
                    now,
                    now if state == FAILED else None,
                    album_id,
                ),
            )
            created = cur.rowcount == 1
            row = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE chat_id = ? AND request_message_id = ?",
                (chat_id, request_message_id),
            ).fetchone()
        return _row_to_job(row), created

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        found = self._select("WHERE id = ?", (job_id,))
        return found[0] if found else None

    def find(self, chat_id: int, request_message_id: int) -> Job | None:
        """The job for this request, or None."""
        found = self._select(
            "WHERE chat_id = ? AND request_message_id = ?", (chat_id, request_message_id)
        )
        return found[0] if found else None

    def jobs_for_user(self, user_id: int, states: Iterable[str] = (QUEUED, RUNNING)) -> list[Job]:
        """The user's jobs in these states, oldest first."""
        wanted = tuple(states)
        marks = ",".join("?" * len(wanted))
        return self._select(
            f"WHERE user_id = ? AND state IN ({marks}) ORDER BY id", (user_id, *wanted)
        )

    def album(self, chat_id: int, album_id: int) -> list[Job]:
        """The rows of one album, in message order (every state)."""
        return self._select(
            "WHERE chat_id = ? AND album_id = ? ORDER BY request_message_id", (chat_id, album_id)
        )

    def counted_since(self, user_id: int, since: float) -> int:
        """How many of the user's jobs created at or after ``since`` count against a quota:
        those waiting, running or done (failed and cancelled ones do not)."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ?"
                " AND state IN ('queued', 'running', 'ready', 'done')",
                (user_id, since),
            ).fetchone()
        return int(n)

    def jobs_since(self, since: float) -> list[Job]:
        """Every row created at or after ``since``, oldest first (statistics)."""
        return self._select("WHERE created_at >= ? ORDER BY id", (since,))

    def all_jobs(self) -> list[Job]:
        """Every row, oldest first (for tests, benchmarks and diagnostics)."""
        return self._select("ORDER BY id")

    def counts(self) -> dict[str, int]:
        """Number of rows in each state (every state present, 0 when none)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        out = dict.fromkeys(_STATES, 0)
        out.update(dict(rows))
        return out

    # -- order ----------------------------------------------------------------------------
    def line(self) -> list[Job]:
        """Queued jobs in the order :meth:`claim` will take them (round-robin by user)."""
        with self._lock:
            last = dict(
                self._db.execute(
                    "SELECT user_id, COALESCE(MAX(claim_number), 0) FROM jobs GROUP BY user_id"
                ).fetchall()
            )
        queued = self._select("WHERE state = 'queued' ORDER BY id")
        per_user: dict[int, list[Job]] = {}
        for job in queued:
            per_user.setdefault(job.user_id, []).append(job)
        users = sorted(per_user, key=lambda u: (last.get(u, 0), per_user[u][0].id))
        order: list[Job] = []
        depth = max((len(v) for v in per_user.values()), default=0)
        for k in range(depth):
            order.extend(per_user[u][k] for u in users if k < len(per_user[u]))
        return order

    def position(self, job_id: int) -> int | None:
        """1-based place in line counting running jobs as ahead; None unless queued."""
        line = [j.id for j in self.line()]
        if job_id not in line:
            return None
        return line.index(job_id) + 1 + self.counts()[RUNNING]

    def claim(self, settled_before: float | None = None) -> Job | None:
        """Move the next job (round-robin across users) to ``running`` and return it.

        Increments ``attempts``. Returns None when nothing is queued. With ``settled_before``,
        a row of an album is taken only when no row of its album was added at or after that
        time (the album stopped growing: a caption on one file reaches all of them first).
        """
        now = time.time()
        where = "j.state = 'queued'"
        args: tuple[float, ...] = ()
        if settled_before is not None:
            where += (
                " AND (j.album_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs s"
                "  WHERE s.chat_id = j.chat_id AND s.album_id = j.album_id"
                "  AND s.created_at >= ?))"
            )
            args = (settled_before,)
        with self._write() as db:
            row = db.execute(
                f"SELECT j.id FROM jobs j WHERE {where} ORDER BY"
                " (SELECT COALESCE(MAX(k.claim_number), 0) FROM jobs k"
                "  WHERE k.user_id = j.user_id),"
                " (SELECT MIN(m.id) FROM jobs m"
                "  WHERE m.user_id = j.user_id AND m.state = 'queued'),"
                " j.id LIMIT 1",
                args,
            ).fetchone()
            if row is None:
                return None
            (number,) = db.execute("SELECT COALESCE(MAX(claim_number), 0) + 1 FROM jobs").fetchone()
            db.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, claim_number = ?,"
                " started_at = ? WHERE id = ?",
                (number, now, row[0]),
            )
            job = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", row).fetchone()
        return _row_to_job(job)

    def growing_album(self, settled_before: float) -> float | None:
        """The ``created_at`` of the newest row of the album with queued rows that :meth:`claim`
        holds back (a row added at or after ``settled_before``), the earliest such; or None."""
        with self._lock:
            (newest,) = self._db.execute(
                "SELECT MIN(newest) FROM (SELECT MAX(created_at) AS newest FROM jobs"
                " WHERE album_id IS NOT NULL GROUP BY chat_id, album_id"
                " HAVING SUM(state = 'queued') > 0 AND MAX(created_at) >= ?)",
                (settled_before,),
            ).fetchone()
        return newest

    def deliverable(self, settled_before: float) -> tuple[list[list[Job]], float | None]:
        """Ready rows whose reply may be sent now, grouped: a single request alone, an album's
        ready rows together once none of its rows is queued or running and its newest row was
        added before ``settled_before`` (more of the album may still be arriving otherwise).

        Returns ``(groups, next_at)``: the groups in the order their first row arrived, and the
        ``created_at`` of the newest row of an album held back only by that rule (the earliest
        such), so the caller knows when to look again; None when there is none.
        """
        ready = self._select("WHERE state = 'ready' ORDER BY id")
        groups: list[list[Job]] = []
        albums: dict[tuple[int, int], list[Job]] = {}
        next_at: float | None = None
        for job in ready:
            if job.album_id is None:
                groups.append([job])
                continue
            key = (job.chat_id, job.album_id)
            if key in albums:
                continue
            rows = self.album(*key)
            if any(r.state in (QUEUED, RUNNING) for r in rows):
                albums[key] = []
                continue
            newest = max(r.created_at for r in rows)
            if newest >= settled_before:
                albums[key] = []
                next_at = newest if next_at is None else min(next_at, newest)
                continue
            albums[key] = [r for r in rows if r.state == READY]
            groups.append(albums[key])
        return groups, next_at

    # -- progress of one job --------------------------------------------------------------
    def set_status_message(self, job_id: int, message_id: int | None) -> None:
        """Remember the message that shows this job's progress (edited as it runs)."""
        with self._write() as db:
            db.execute("UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id))

    def update_params(self, job_id: int, **changes: Any) -> Job | None:
        """Merge ``changes`` into the job's params (e.g. sizes learnt after download)."""
        with self._write() as db:
            row = db.execute("SELECT params_json FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            params = json.loads(row[0])
            params.update(changes)
            db.execute("UPDATE jobs SET params_json = ? WHERE id = ?", (json.dumps(params), job_id))
        return self.get(job_id)

    def mark_ready(self, job_id: int) -> bool:
        """A running job's result is made (in its spool folder): it waits for its reply.
        False unless it was running (e.g. its user cancelled it meanwhile)."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'ready' WHERE id = ? AND state = 'running'", (job_id,)
            )
        return cur.rowcount == 1

    def finish(
        self,
        job_id: int,
        state: str,
        *,
        error: str | None = None,
        reply_message_id: int | None = None,
    ) -> bool:
        """Move the job to a final state and delete its spool folder.

        Returns False (and changes nothing in the row) when the job was already final, e.g.
        cancelled by its user while running; the spool folder is removed either way.
        """
        if state not in FINAL_STATES:
            raise ValueError(f"{state!r} is not a final state")
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET state = ?, error = ?, reply_message_id ="
                " COALESCE(?, reply_message_id), finished_at = ?"
                " WHERE id = ? AND state IN ('queued', 'running', 'ready')",
                (state, error, reply_message_id, time.time(), job_id),
            )
            changed = cur.rowcount == 1
        self._remove_spool(job_id)
        return changed

    def record_reply(self, job_id: int, reply_message_id: int) -> None:
        """Record the id of a reply already sent (also on final rows)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET reply_message_id = ? WHERE id = ?", (reply_message_id, job_id)
            )

    def requeue(self, job_id: int) -> bool:
        """Put a running job back in line (clean stop, retry); False unless it was running."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'queued', started_at = NULL"
                " WHERE id = ? AND state = 'running'",
                (job_id,),
            )
        return cur.rowcount == 1

    def cancel_for_user(self, user_id: int) -> list[Job]:
        """Cancel every unfinished (queued, running or ready) job of this user; returns them as
        they were. A running job's folder is left to its runner, which ends it."""
        with self._write() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE user_id = ?"
                " AND state IN ('queued','running','ready') ORDER BY id",
                (user_id,),
            ).fetchall()
            db.execute(
                "UPDATE jobs SET state = 'cancelled', error = 'cancelled', finished_at = ?"
                " WHERE user_id = ? AND state IN ('queued','running','ready')",
                (time.time(), user_id),
            )
        jobs = [_row_to_job(r) for r in rows]
        for job in jobs:
            if job.state != RUNNING:
                self._remove_spool(job.id)
        return jobs

    # -- crash recovery -------------------------------------------------------------------
    def recover(self) -> list[Job]:
        """Requeue rows a crash left ``running``; fail those out of attempts.

        Returns the jobs failed here (their user still needs to hear about it).
        """
        now = time.time()
        msg = f"the job stopped the bot {self.max_attempts} times, so it was dropped"
        with self._write() as db:
            failed = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state = 'running' AND attempts >= ?",
                (self.max_attempts,),
            ).fetchall()
            db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, finished_at = ?"
                " WHERE state = 'running' AND attempts >= ?",
                (msg, now, self.max_attempts),
            )
            cur = db.execute(
                "UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'"
            )
            if cur.rowcount:
                log.info("requeued %d job(s) interrupted by a previous run", cur.rowcount)
        jobs = [_row_to_job(r) for r in failed]
        for job in jobs:
            log.warning("job %d failed after %d attempts", job.id, job.attempts)
            self._remove_spool(job.id)
        return [self.get(j.id) or j for j in jobs]

    # -- spool ----------------------------------------------------------------------------
    def spool_dir(self, job_id: int) -> Path:
        """The job's private folder, created on first use; deleted when the job ends."""
        path = self.spool_root / str(job_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _remove_spool(self, job_id: int) -> None:
        shutil.rmtree(self.spool_root / str(job_id), ignore_errors=True)

    def clean_spool(self) -> int:
        """Delete spool entries that belong to no unfinished job; returns how many."""
        with self._lock:
            live = {
                str(r[0])
                for r in self._db.execute(
                    "SELECT id FROM jobs WHERE state IN ('queued','running','ready')"
                )
            }
        removed = 0
        for entry in self.spool_root.iterdir():
            if entry.name in live:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed
