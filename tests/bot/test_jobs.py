"""The durable queue: uniqueness, claiming, fairness, recovery, spool cleanup, albums, quotas."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upscaler_edge.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    READY,
    RUNNING,
    SCHEMA_VERSION,
    JobQueue,
    QueueVersionError,
)


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    q = JobQueue(tmp_path / "jobs.sqlite3", tmp_path / "spool")
    yield q
    q.close()


def test_wal_mode_and_unique_request(queue: JobQueue) -> None:
    mode = sqlite3.connect(queue.db_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    job, created = queue.add(10, 5, 10, params={"model": "m"})
    again, created_again = queue.add(10, 5, 10, params={"model": "other"})
    assert created and not created_again
    assert again.id == job.id and again.params == {"model": "m"}
    assert len(queue.all_jobs()) == 1
    assert job.reply_random_id > 0


def test_claim_runs_each_job_once_across_connections(tmp_path: Path) -> None:
    db, spool = tmp_path / "q.sqlite3", tmp_path / "spool"
    with JobQueue(db, spool) as q:
        for i in range(40):
            q.add(1, i, 1 + i % 3)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with JobQueue(db, spool) as mine:
            while (job := mine.claim()) is not None:
                with lock:
                    claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(1, 41))


def test_round_robin_between_users(queue: JobQueue) -> None:
    for i in range(5):
        queue.add(100, i, 100)  # a user sends five photos first
    queue.add(200, 1, 200)  # then another user sends two
    queue.add(200, 2, 200)
    predicted = [j.user_id for j in queue.line()]
    order = []
    while (job := queue.claim()) is not None:
        order.append(job.user_id)
        queue.finish(job.id, DONE)
    assert order == [100, 200, 100, 200, 100, 100, 100]
    assert predicted == order


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=30),
    st.integers(min_value=0, max_value=5),
)
def test_line_predicts_claim_order(
    tmp_path_factory: pytest.TempPathFactory, users: list[int], served_first: int
) -> None:
    tmp = tmp_path_factory.mktemp("q")
    with JobQueue(tmp / "q.sqlite3", tmp / "spool") as q:
        for i, user in enumerate(users):
            q.add(user, i, user)
        for _ in range(min(served_first, len(users))):  # some history before predicting
            job = q.claim()
            assert job is not None
            q.finish(job.id, DONE)
        predicted = [j.id for j in q.line()]
        actual = []
        while (job := q.claim()) is not None:
            actual.append(job.id)
            q.finish(job.id, DONE)
        assert predicted == actual
        # Fairness: while two users both wait, neither is served twice in a row.
        by_id = {j.id: j.user_id for j in q.all_jobs()}
        seq = [by_id[i] for i in actual]
        remaining = {u: seq.count(u) for u in set(seq)}
        for a, b in itertools.pairwise(seq):
            remaining[a] -= 1
            if a == b:
                assert all(n == 0 for u, n in remaining.items() if u != a)


def test_position_counts_running(queue: JobQueue) -> None:
    a, _ = queue.add(1, 1, 1)
    b, _ = queue.add(1, 2, 1)
    assert queue.position(a.id) == 1 and queue.position(b.id) == 2
    queue.claim()
    assert queue.position(a.id) is None
    assert queue.position(b.id) == 2


def test_recover_requeues_then_fails_after_three_attempts(tmp_path: Path) -> None:
    db, spool = tmp_path / "q.sqlite3", tmp_path / "spool"
    with JobQueue(db, spool) as q:
        job, _ = q.add(7, 1, 7)
    for attempt in range(1, 4):
        with JobQueue(db, spool) as q:  # a fresh process each time
            assert q.recover() == []
            claimed = q.claim()
            assert claimed is not None and claimed.attempts == attempt
            q.spool_dir(claimed.id).joinpath("in.png").write_bytes(b"x")
            # ... and the process dies here, leaving the row running
    with JobQueue(db, spool) as q:
        failed = q.recover()
        assert [j.id for j in failed] == [job.id]
        assert failed[0].state == FAILED and "3 times" in (failed[0].error or "")
        assert not (spool / str(job.id)).exists()
        assert q.claim() is None


def test_finish_never_leaves_final_state_and_removes_spool(queue: JobQueue) -> None:
    job, _ = queue.add(1, 1, 1)
    queue.claim()
    folder = queue.spool_dir(job.id)
    (folder / "out.png").write_bytes(b"data")
    assert [j.id for j in queue.cancel_for_user(1)] == [job.id]
    assert queue.finish(job.id, DONE, reply_message_id=99) is False
    final = queue.get(job.id)
    assert final is not None and final.state == CANCELLED and final.reply_message_id is None
    assert not folder.exists()
    with pytest.raises(ValueError):
        queue.finish(job.id, RUNNING)


def test_failed_on_arrival_and_requeue(queue: JobQueue) -> None:
    refused, _ = queue.add(1, 1, 1, state=FAILED, error="empty file")
    assert refused.state == FAILED and refused.finished_at is not None
    assert queue.claim() is None
    job, _ = queue.add(1, 2, 1)
    assert queue.claim() is not None
    assert queue.requeue(job.id)
    assert queue.get(job.id).state == QUEUED  # type: ignore[union-attr]
    assert not queue.requeue(job.id)


def test_clean_spool_keeps_live_jobs_only(queue: JobQueue) -> None:
    live, _ = queue.add(1, 1, 1)
    dead, _ = queue.add(1, 2, 1)
    queue.spool_dir(live.id).joinpath("a").write_bytes(b"1")
    queue.spool_dir(dead.id).joinpath("b").write_bytes(b"2")
    (queue.spool_root / "stray.tmp").write_bytes(b"3")
    with queue._write() as db:  # simulate a crash after marking done
        db.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (dead.id,))
    assert queue.clean_spool() == 2
    assert [p.name for p in queue.spool_root.iterdir()] == [str(live.id)]


def test_update_params_and_counts(queue: JobQueue) -> None:
    job, _ = queue.add(1, 1, 1, params={"model": "a"})
    updated = queue.update_params(job.id, width=10, height=20)
    assert updated is not None and updated.params == {"model": "a", "width": 10, "height": 20}
    assert queue.counts()[QUEUED] == 1 and queue.counts()[DONE] == 0
    queue.set_status_message(job.id, 55)
    assert queue.get(job.id).status_message_id == 55  # type: ignore[union-attr]


def test_queue_module_does_not_import_telethon() -> None:
    """The core must work without the bot extra."""
    import subprocess
    import sys

    code = "import sys, upscaler_edge.jobs; sys.exit('telethon' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


# The schema before user_version 1, copied from jobs.py as it was (do not edit).
_SCHEMA_V0 = """
CREATE TABLE IF NOT EXISTS jobs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id            INTEGER NOT NULL,
    message_id         INTEGER NOT NULL,
    user_id            INTEGER NOT NULL,
    peer               TEXT    NOT NULL DEFAULT '',
    state              TEXT    NOT NULL DEFAULT 'queued'
                       CHECK (state IN ('queued','running','done','failed','cancelled')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    params             TEXT    NOT NULL DEFAULT '{}',
    status_message_id  INTEGER,
    reply_message_id   INTEGER,
    reply_random_id    INTEGER NOT NULL,
    error              TEXT,
    served_seq         INTEGER,
    created_at         REAL    NOT NULL,
    started_at         REAL,
    finished_at        REAL,
    UNIQUE (chat_id, message_id)
);
CREATE INDEX IF NOT EXISTS jobs_state_user ON jobs (state, user_id, id);
CREATE INDEX IF NOT EXISTS jobs_user_served ON jobs (user_id, served_seq);
"""


def _old_database(path: Path) -> None:
    """A version-0 queue as the bot left it: one job done, one failed, one running (crash),
    three queued from two users; user 1 was served last."""
    rows = [
        # id, chat, message, user, peer, state, attempts, params, status, reply, random,
        # error, served_seq, created, started, finished
        (1, 1, 10, 1, "user:1:11", "done", 1, '{"model": "m"}', 500, 501, 7001, None, 1,
         100.0, 101.0, 102.0),
        (2, 2, 20, 2, "user:2:22", "failed", 1, "{}", None, 502, 7002, "the file is empty",
         None, 103.0, None, 103.0),
        (3, 2, 21, 2, "user:2:22", "running", 1, '{"model": "m", "scale": 2}', 503, None,
         7003, None, 2, 104.0, 105.0, None),
        (4, 1, 11, 1, "user:1:11", "queued", 0, '{"model": "m"}', 504, None, 7004, None,
         None, 106.0, None, None),
        (5, 1, 12, 1, "user:1:11", "queued", 0, "{}", None, None, 7005, None, None, 107.0,
         None, None),
        (6, 2, 22, 2, "user:2:22", "queued", 0, '{"file_name": "cat.png"}', 506, None, 7006,
         None, None, 108.0, None, None),
    ]  # fmt: skip
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_V0)
        db.executemany(f"INSERT INTO jobs VALUES ({', '.join('?' * 16)})", rows)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0


def test_old_database_is_migrated_and_keeps_working(tmp_path: Path) -> None:
    db, spool = tmp_path / "jobs.sqlite3", tmp_path / "spool"
    _old_database(db)
    with JobQueue(db, spool, max_attempts=3) as q:
        with sqlite3.connect(db) as raw:
            columns = [r[1] for r in raw.execute("PRAGMA table_info(jobs)")]
            indexes = {r[1] for r in raw.execute("PRAGMA index_list(jobs)")}
            version = raw.execute("PRAGMA user_version").fetchone()[0]
        assert "request_message_id" in columns and "chat_address" in columns
        assert "params_json" in columns and "claim_number" in columns
        assert not {"message_id", "peer", "params", "served_seq"} & set(columns)
        assert "jobs_user_claim" in indexes and "jobs_user_served" not in indexes
        assert version == SCHEMA_VERSION

        done = q.get(1)
        assert done is not None and done.state == DONE and done.request_message_id == 10
        assert done.chat_address == "user:1:11" and done.params == {"model": "m"}
        assert (done.status_message_id, done.reply_message_id) == (500, 501)
        assert done.reply_random_id == 7001 and done.finished_at == 102.0
        failed = q.find(2, 20)
        assert failed is not None and failed.state == FAILED and failed.error == "the file is empty"
        assert [j.id for j in q.all_jobs()] == [1, 2, 3, 4, 5, 6]

        # the queue still works: uniqueness, recovery, round-robin from the old served order
        again, created = q.add(1, 11, 1, params={"model": "other"})
        assert not created and again.id == 4 and again.params == {"model": "m"}
        assert q.recover() == [] and q.get(3).state == QUEUED  # type: ignore[union-attr]
        # user 2 was served last (served_seq 2): user 1 goes first, then they alternate
        assert [j.id for j in q.line()] == [4, 3, 5, 6]
        order = []
        while (job := q.claim()) is not None:
            order.append(job.id)
            q.finish(job.id, DONE)
        assert order == [4, 3, 5, 6]
        new, created = q.add(3, 30, 3, chat_address="user:3:33", params={"scale": 4})
        assert created and new.id > 6 and new.chat_address == "user:3:33"

    with JobQueue(db, spool) as q:  # opening a migrated file again changes nothing
        assert len(q.all_jobs()) == 7 and q.all_jobs()[-1].params == {"scale": 4}


def test_new_database_has_the_current_version(queue: JobQueue) -> None:
    with sqlite3.connect(queue.db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    with JobQueue(db, tmp_path / "spool") as q:
        q.add(1, 1, 1)
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueueVersionError, match="newer"):
        JobQueue(db, tmp_path / "spool")


def test_album_rows_are_claimed_once_settled_and_delivered_together(queue: JobQueue) -> None:
    a, _ = queue.add(1, 10, 1, album_id=77)
    b, _ = queue.add(1, 11, 1, album_id=77)
    single, _ = queue.add(2, 20, 2)
    now = a.created_at
    # the album is still growing: only the single request may start
    assert queue.claim(settled_before=now).id == single.id  # type: ignore[union-attr]
    assert queue.claim(settled_before=now) is None
    assert queue.growing_album(now) == b.created_at
    later = b.created_at + 1
    assert queue.growing_album(later) is None
    assert queue.mark_ready(single.id)
    groups, _ = queue.deliverable(later)
    assert [[j.id for j in g] for g in groups] == [[single.id]]  # a single goes at once
    first = queue.claim(settled_before=later)
    assert first is not None and first.id == a.id and queue.mark_ready(a.id)
    groups, _ = queue.deliverable(later)
    assert [[j.id for j in g] for g in groups] == [[single.id]]  # b is still queued
    assert queue.claim(settled_before=later).id == b.id  # type: ignore[union-attr]
    queue.mark_ready(b.id)
    groups, next_at = queue.deliverable(b.created_at)  # "b arrived just now": hold on
    assert [[j.id for j in g] for g in groups] == [[single.id]] and next_at == b.created_at
    groups, _ = queue.deliverable(later)
    assert [[j.id for j in g] for g in groups] == [[a.id, b.id], [single.id]]  # arrival order
    assert [j.id for j in queue.album(1, 77)] == [a.id, b.id]
    # ready rows survive a restart untouched and keep their spool folders
    (queue.spool_dir(a.id) / "result.png").write_bytes(b"x")
    assert queue.recover() == [] and queue.get(a.id).state == READY  # type: ignore[union-attr]
    assert queue.clean_spool() == 0 and (queue.spool_dir(a.id) / "result.png").exists()
    assert queue.finish(a.id, DONE, reply_message_id=5)
    assert not queue.mark_ready(a.id)  # final stays final


def test_cancel_covers_ready_rows_and_keeps_a_running_rows_folder(queue: JobQueue) -> None:
    ready, _ = queue.add(1, 1, 1)
    running, _ = queue.add(1, 2, 1)
    queue.claim()
    queue.mark_ready(ready.id)
    queue.claim()
    (queue.spool_dir(running.id) / "input.png").write_bytes(b"x")
    (queue.spool_dir(ready.id) / "out.png").write_bytes(b"x")
    cancelled = queue.cancel_for_user(1)
    assert [(j.id, j.state) for j in cancelled] == [(ready.id, READY), (running.id, RUNNING)]
    assert not (queue.spool_root / str(ready.id)).exists()
    assert (queue.spool_root / str(running.id)).exists()  # its runner ends it
    assert {j.state for j in queue.all_jobs()} == {CANCELLED}


def test_counted_since_counts_what_a_quota_should(queue: JobQueue) -> None:
    states = []
    for n in range(5):
        job, _ = queue.add(1, n, 1)
        states.append(job)
    queue.finish(states[0].id, DONE)
    queue.finish(states[1].id, FAILED)
    queue.finish(states[2].id, CANCELLED)
    queue.claim()  # states[3] runs
    queue.add(1, 99, 1, state=FAILED, error="refused")
    queue.add(2, 1, 2)  # another user
    assert queue.counted_since(1, 0) == 3  # done, running, queued
    assert queue.counted_since(1, states[4].created_at + 1) == 0
    assert len(queue.jobs_since(0)) == 7


# The schema at user_version 1, copied from jobs.py as it was (do not edit).
_SCHEMA_V1 = """
CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id             INTEGER NOT NULL,
    request_message_id  INTEGER NOT NULL,
    user_id             INTEGER NOT NULL,
    chat_address        TEXT    NOT NULL DEFAULT '',
    state               TEXT    NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued','running','done','failed','cancelled')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    params_json         TEXT    NOT NULL DEFAULT '{}',
    status_message_id   INTEGER,
    reply_message_id    INTEGER,
    reply_random_id     INTEGER NOT NULL,
    error               TEXT,
    claim_number        INTEGER,
    created_at          REAL    NOT NULL,
    started_at          REAL,
    finished_at         REAL,
    UNIQUE (chat_id, request_message_id)
);
CREATE INDEX jobs_state_user ON jobs (state, user_id, id);
CREATE INDEX jobs_user_claim ON jobs (user_id, claim_number);
PRAGMA user_version = 1;
"""


def test_version_1_database_gains_albums_and_keeps_its_rows(tmp_path: Path) -> None:
    db, spool = tmp_path / "jobs.sqlite3", tmp_path / "spool"
    with sqlite3.connect(db) as raw:
        raw.executescript(_SCHEMA_V1)
        raw.execute(
            "INSERT INTO jobs (id, chat_id, request_message_id, user_id, chat_address, state,"
            " attempts, params_json, reply_random_id, claim_number, created_at)"
            " VALUES (41, 1, 10, 1, 'user:1:11', 'running', 1, '{\"model\": \"m\"}', 7041,"
            " 3, 100.0)"
        )
        raw.execute("DELETE FROM jobs WHERE id = 41 AND 0")  # AUTOINCREMENT high-water: 41
    with JobQueue(db, spool) as q:
        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
        assert "jobs_v1" not in tables and "jobs_album" in tables
        old = q.get(41)
        assert old is not None and old.params == {"model": "m"} and old.album_id is None
        assert old.reply_random_id == 7041 and old.state == RUNNING
        assert q.mark_ready(41)  # the new state is allowed
        new, _ = q.add(1, 11, 1, album_id=5)
        assert new.id == 42 and new.album_id == 5
