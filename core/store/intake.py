"""The intake file: on SQLite, the jobs fronts record before they ack live in a SQLite file of
their own next to the state database (`chatops.db` -> `chatops-intake.db`), so an ack never
waits for SQLite's one writer while a worker records steps, watches and traffic in the state
database. Both sides keep their transactions short there: the front's INSERT, and a worker's
claim, lease renewals and finish, written from one thread of the priority the worker had
before it lowered its own (`core.store.jobs`), so the lock is never held by a thread a busy
CPU leaves waiting. On PostgreSQL the jobs stay in the state database (row
locks, no single writer): `url_of` says so with None.

The file's schema is versioned by SQLite's `user_version`, not by Alembic: `prepare` brings it
to `SCHEMA` in one transaction that first takes the file's write lock (BEGIN IMMEDIATE), so
processes starting together take turns and the later ones find it done; a file a newer
version made is refused. A change to `JobRow` needs one more step in `_STEPS`.

A state database that a version before the intake file used keeps jobs in its own `jobs`
table: `adopt` moves them here (see its contract), at start and until that table is empty.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, make_url, pool

from core.errors import StoreError
from core.store.models import JobRow, JobState

__all__ = ["SCHEMA", "adopt", "path_of", "prepare", "url_of", "version"]

SCHEMA = 1
SUFFIX = "-intake"
LOCK_WAIT_MS = 30_000  # another process may be preparing the file or moving jobs into it
# stored as SQLAlchemy stores a DateTime on SQLite: naive UTC, microseconds
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_COLUMNS = (
    "id, key, front, kind, payload, state, owner, lease_expires_at, attempts, created_at,"
    " finished_at"
)


def _create_jobs(connection: Connection) -> None:
    JobRow.metadata.create_all(connection, tables=[JobRow.__table__], checkfirst=True)  # type: ignore[list-item]


# step n brings a file at version n - 1 to version n
_STEPS: dict[int, Callable[[Connection], None]] = {1: _create_jobs}


def url_of(state_url: str) -> str | None:
    """The intake file's URL for the state database at `state_url`: a file next to it on
    SQLite; None on any other backend, whose jobs stay in the state database."""
    path = path_of(state_url)
    return None if path is None else f"sqlite:///{path}"


def path_of(state_url: str) -> Path | None:
    address = make_url(state_url)
    if address.get_backend_name() != "sqlite" or address.database in (None, "", ":memory:"):
        return None
    state = Path(address.database or "")
    return state.with_name(f"{state.stem}{SUFFIX}{state.suffix or '.db'}")


def version(url: str) -> int | None:
    """The schema version of the intake file at `url`; None when it is not made yet."""
    path = Path(make_url(url).database or "")
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(path, timeout=LOCK_WAIT_MS / 1000)) as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise StoreError(
            f"could not read the intake file {path.name}: {type(exc).__name__}"
            " (move it aside once no bot runs: the jobs in it are lost)"
        ) from exc


def prepare(url: str) -> None:
    """Make the intake file at `url` (and its folder) and bring its schema to `SCHEMA`;
    nothing happens when it is there already. StoreError when it cannot be, or when a newer
    version of the bot made it."""
    Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
    if version(url) == SCHEMA:  # the usual case: a read, no lock
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    event.listen(engine, "connect", _manual_transactions)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with engine.begin() as connection:
            at = _version(connection)
            if at > SCHEMA:
                raise StoreError(
                    f"the intake file is at version {at}, which this version of the bot"
                    " does not know: a newer version has made it"
                )
            for step in range(at + 1, SCHEMA + 1):
                _STEPS[step](connection)
            connection.exec_driver_sql(f"PRAGMA user_version = {SCHEMA}")
    except StoreError:
        raise
    except Exception as exc:  # SQLAlchemy's and the driver's errors alike
        raise StoreError(
            f"could not prepare the intake file {Path(make_url(url).database or '').name}:"
            f" {type(exc).__name__}"
        ) from exc
    finally:
        engine.dispose()


def adopt(state_url: str, now: datetime) -> int:
    """Move the jobs the state database's own `jobs` table holds (recorded there by a version
    before the intake file) into the intake file, in one transaction that holds the write lock
    of both: queued ones, ended ones (their keys still refuse Slack's retries), and running
    ones whose lease lapsed, which are taken again here as after any crash. One running
    under a live lease stays where it is until it ends or its lease lapses. How many jobs
    are left there (0 on any backend but SQLite, or once that table is empty).

    A crash between the two files' commits leaves a moved job in both: the next call skips
    it here (same id) and deletes it there."""
    state, intake = make_url(state_url).database, path_of(state_url)
    if intake is None or not state or not Path(state).exists():
        return 0
    live = (JobState.RUNNING.value, now.astimezone(UTC).strftime(_SQLITE_TIME))
    movable = "NOT (state = ? AND lease_expires_at IS NOT NULL AND lease_expires_at >= ?)"
    try:
        with closing(sqlite3.connect(state, timeout=LOCK_WAIT_MS / 1000)) as db:
            db.isolation_level = None
            if not _old_table_holds_jobs(db):
                return 0
            db.execute("ATTACH DATABASE ? AS intake", (str(intake),))
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(
                        f"INSERT OR IGNORE INTO intake.jobs ({_COLUMNS})"
                        f" SELECT {_COLUMNS} FROM main.jobs WHERE {movable}",
                        live,
                    )
                    db.execute(f"DELETE FROM main.jobs WHERE {movable}", live)
                    left = int(db.execute("SELECT count(*) FROM main.jobs").fetchone()[0])
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                db.execute("DETACH DATABASE intake")
            return left
    except sqlite3.Error as exc:
        raise StoreError(
            f"could not move the jobs of the state database: {type(exc).__name__}"
        ) from exc


def _old_table_holds_jobs(db: sqlite3.Connection) -> bool:
    try:
        return db.execute("SELECT 1 FROM main.jobs LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # not migrated yet: nothing recorded there
            return False
        raise


def _version(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())


def _manual_transactions(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    dbapi_connection.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")  # type: ignore[attr-defined]
    # WAL is kept by the file; it can only be set outside a transaction
    dbapi_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[attr-defined]
