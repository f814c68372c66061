"""The intake file on SQLite: a front's record never waits for the state database's writer, the
file is made once however many processes start together, a newer version's file is refused,
the jobs an older version left in the state database are moved there and run, and jobs that
ended are pruned from it."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import create_engine, insert, pool

from core.errors import StoreError
from core.store import intake, migrate
from core.store.db import Database
from core.store.jobs import JobQueue, JobState
from core.store.models import JobRow
from tests.clock import FakeClock

FRONTS, KINDS = frozenset({"slack"}), frozenset({"command"})


class Asked(BaseModel):
    kind: str = "command"
    text: str


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "chatops.db"


def rows(path: Path, table: str = "jobs") -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {table}")]


def test_a_record_does_not_wait_for_a_write_to_the_state_database(state: Path) -> None:
    db = Database(f"sqlite:///{state}")
    queue = JobQueue(db)
    # a worker in the middle of a long transaction on the state database (steps, watches)
    with closing(sqlite3.connect(state, timeout=10, isolation_level=None)) as worker:
        worker.execute("BEGIN IMMEDIATE")
        worker.execute("UPDATE operations SET step = step")
        began = time.monotonic()
        job_id = queue.record(key="command:1", front="slack", job=Asked(text="a"), kind="command")
        took = time.monotonic() - began
        worker.execute("ROLLBACK")
    assert job_id is not None and took < 0.5, took
    # durable in the intake file beside the state database, not in the state database
    (row,) = rows(state.with_name("chatops-intake.db"))
    assert (row["id"], row["state"], json.loads(row["payload"])) == (
        job_id,
        "queued",
        {"kind": "command", "text": "a"},
    )
    assert rows(state) == []
    db.close()


def _prepare(url: str) -> None:
    intake.prepare(url)


def test_processes_starting_together_make_the_file_once(state: Path) -> None:
    url = intake.url_of(f"sqlite:///{state}")
    assert url is not None
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_prepare, args=(url,)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert intake.version(url) == intake.SCHEMA
    with closing(sqlite3.connect(state.with_name("chatops-intake.db"))) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"jobs"}


def test_an_intake_file_a_newer_version_made_is_refused(state: Path) -> None:
    path = state.with_name("chatops-intake.db")
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {intake.SCHEMA + 1}")
    with pytest.raises(StoreError, match="a newer version has made it"):
        JobQueue.open(f"sqlite:///{state}")


def _old_job(job_id: str, state: str, **more: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "key": f"command:{job_id}",
        "front": "slack",
        "kind": "command",
        "payload": {"kind": "command", "text": job_id},
        "state": state,
        "owner": "",
        "attempts": 0,
        "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "lease_expires_at": None,
        "finished_at": None,
        **more,
    }


def test_jobs_an_older_version_left_in_the_state_database_move_to_the_intake_file(
    state: Path,
) -> None:
    url = f"sqlite:///{state}"
    state.parent.mkdir()
    migrate.upgrade(url)  # the state database as the version before the intake file left it
    now = datetime.now(UTC)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            insert(JobRow),
            [
                _old_job("queued", "queued"),
                _old_job("done", "done", finished_at=now),
                # its holder died: lease lapsed
                _old_job("lapsed", "running", owner="old", attempts=1, lease_expires_at=now),
                # its holder still runs it
                _old_job(
                    "held", "running", owner="old", attempts=1, lease_expires_at=now + timedelta(1)
                ),
            ],
        )
    engine.dispose()
    queue = JobQueue.open(url)

    moved = {r["id"]: r["state"] for r in rows(state.with_name("chatops-intake.db"))}
    assert moved == {"queued": "queued", "done": "done", "lapsed": "running"}
    assert [r["id"] for r in rows(state)] == ["held"]  # until its lease lapses
    # a retried delivery of a request recorded before the upgrade is still refused
    assert (
        queue.record(key="command:done", front="slack", job=Asked(text="x"), kind="command") is None
    )
    taken = {
        row.id
        for row in iter(lambda: queue.claim("new", lease_s=60, fronts=FRONTS, kinds=KINDS), None)
    }
    assert taken == {"queued", "lapsed"}

    # the old holder died too: once its lease lapsed, the next look moves that job as well,
    # and once its lease is ended (a front saw its worker exit) it is taken again
    assert intake.adopt(url, now + timedelta(days=2)) == 0
    assert rows(state) == []
    held = queue.get("held")
    assert held is not None and (held.state, held.owner, held.attempts) == ("running", "old", 1)
    assert queue.let_lapse("old") == 1
    again = queue.claim("new", lease_s=60, fronts=FRONTS, kinds=KINDS)
    assert again is not None and (again.id, again.attempts) == ("held", 2)
    queue.db.close()


def test_jobs_that_ended_are_pruned_from_the_intake_file(state: Path) -> None:
    clock = FakeClock()
    db = Database(f"sqlite:///{state}", clock=clock)
    queue = JobQueue(db, keep_s=3600)
    job_id = queue.record(key="k", front="slack", job=Asked(text="a"), kind="command")
    taken = queue.claim("bot", lease_s=60, fronts=FRONTS, kinds=KINDS)
    assert taken is not None and taken.id == job_id
    queue.finish(taken, JobState.DONE)
    path = state.with_name("chatops-intake.db")
    assert [r["state"] for r in rows(path)] == ["done"]
    clock.advance(2 * 3600)
    queue.record(key="later", front="slack", job=Asked(text="b"), kind="command")
    later = queue.claim("bot", lease_s=60, fronts=FRONTS, kinds=KINDS)
    assert later is not None
    queue.finish(later)  # a sweep, as part of finishing a job
    assert [r["key"] for r in rows(path)] == ["later"]
    db.close()


def test_an_intake_file_that_is_no_database_is_named_in_the_refusal(state: Path) -> None:
    path = state.with_name("chatops-intake.db")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database\n" * 512)
    with pytest.raises(
        StoreError, match=re.escape("could not read the intake file chatops-intake.db")
    ):
        JobQueue.open(f"sqlite:///{state}")


def test_chatops_check_reports_an_intake_file_a_newer_version_made(state: Path) -> None:
    from core.config import Settings
    from core.oncall.checks import Verdict
    from core.oncall.checks.stores import database_finding

    settings = Settings(state_dir=state.parent)
    assert database_finding(settings).verdict is Verdict.OK  # not made yet: made at start
    JobQueue.open(settings.database_url).db.close()
    assert database_finding(settings).verdict is Verdict.OK
    with closing(sqlite3.connect(state.with_name("chatops-intake.db"))) as db:
        db.execute(f"PRAGMA user_version = {intake.SCHEMA + 1}")
    found = database_finding(settings)
    assert found.verdict is not Verdict.OK
    assert f"chatops-intake.db is at version {intake.SCHEMA + 1}" in found.detail


def test_a_worker_of_lower_priority_holds_the_intake_lock_only_at_the_priority_it_was_built_with(
    state: Path,
) -> None:
    """A worker lowers its priority once built; had its threads held the intake's write lock,
    a busy CPU would keep the front's record waiting behind them."""
    import os
    import threading

    from sqlalchemy import event

    db = Database(f"sqlite:///{state}")
    queue = JobQueue(db)  # built at the process's priority, as a worker's runtime is
    writes: list[tuple[str, int]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "DELETE")):
            nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            writes.append((statement.split()[0].upper(), nice))

    event.listen(queue.intake.engine, "before_cursor_execute", seen)
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    done: list[int] = []

    def lowered() -> None:
        os.nice(10)  # this thread only, as the worker's threads after it lowered its own
        queue.record(key="k", front="slack", job=Asked(text="a"), kind="command")
        taken = queue.claim("worker", lease_s=60, fronts=FRONTS, kinds=KINDS)
        assert taken is not None
        queue.renew([taken.id], "worker", lease_s=60)
        queue.finish(taken)
        done.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join(30)
    assert done == [before + 10]
    assert [w for w, _ in writes][:3] == ["UPDATE", "UPDATE", "UPDATE"]  # claim, renew, finish
    assert {nice for _, nice in writes} == {before}
    db.close()


def test_a_queue_still_writes_once_its_writer_thread_is_gone(state: Path) -> None:
    """At interpreter exit the writer thread takes nothing new: a hand-over still ends leases."""
    db = Database(f"sqlite:///{state}")
    queue = JobQueue(db)
    queue.record(key="k", front="slack", job=Asked(text="a"), kind="command")
    assert queue.claim("worker", lease_s=60, fronts=FRONTS, kinds=KINDS) is not None
    assert queue._writer is not None
    queue._writer.shutdown()
    assert queue.let_lapse("worker") == 1
    assert queue.claim("next", lease_s=60, fronts=FRONTS, kinds=KINDS) is not None
    db.close()
