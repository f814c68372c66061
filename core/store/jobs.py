"""Jobs: what a front acknowledged, kept until a bot process ran it: on SQLite in the intake
file next to the state database (`core.store.intake`), so recording one never waits for the
worker's writes to the state database; on PostgreSQL in the state database itself.

A front records a job (a typed request: a command, a button click) before it acknowledges
it, under the platform's own id for the request, so a retried delivery records nothing twice.
A bot process takes jobs as it takes operations: with an owner and a lease it renews while
it runs them. When its process dies the lease lapses and another process takes the job
again; a job taken too many times is given up, and whoever asked is told.

A job is only the request. Once it has recorded an operation (`Operation.job_id`
names the job), the operation carries on by itself, and a job taken again only looks it up.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from pydantic import BaseModel
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from core.errors import StoreError
from core.store import intake
from core.store.db import Database
from core.store.models import KEEP_DONE_S, JobRow, JobState, Operation, aware, new_id, utcnow
from core.store.repos import leased
from core.store.retention import Retention

# the rows are the queue's vocabulary: whoever uses the queue may take them from here
__all__ = ["JobQueue", "JobRow", "JobState"]

log = logging.getLogger("chatops.core")
BUSY_S = 5.0  # how long a write waits for SQLite's lock, as the store's connections do
# how often a taker looks for jobs left in the state database's own table: while some are
# left there, and once it was found empty
ADOPT_AGAIN_S, ADOPT_IDLE_S = 5.0, 60.0


P = ParamSpec("P")
T = TypeVar("T")
_WRITERS: WeakKeyDictionary[Database, ThreadPoolExecutor] = WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()
_HERE = threading.local()  # `writing`: this thread is an intake's writer thread


def _writer_of(db: Database) -> ThreadPoolExecutor:
    """The one thread of this process that writes a bot process's changes to the intake file
    `db`, started with its first queue: at the priority the process had then. A worker
    process lowers its priority once its runtime is built; a thread of lower priority that
    holds SQLite's write lock when the CPU is busy keeps the front's record (and its ack)
    waiting, so the lock is only ever taken at the priority the front has."""
    with _WRITERS_GUARD:
        writer = _WRITERS.get(db)
        if writer is None:
            writer = ThreadPoolExecutor(1, thread_name_prefix="intake-writer")
            writer.submit(_mark_writer).result()  # its thread starts now, at this priority
            _WRITERS[db] = writer
        return writer


def _mark_writer() -> None:
    _HERE.writing = True


def _on_writer(
    method: Callable[Concatenate[JobQueue, P], T],
) -> Callable[Concatenate[JobQueue, P], T]:
    """Run `method` on the intake's writer thread (SQLite), waiting for it."""

    def run(queue: JobQueue, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if queue._writer is None or getattr(_HERE, "writing", False):
            return method(queue, *args, **kwargs)
        try:
            done = queue._writer.submit(method, queue, *args, **kwargs)
        except RuntimeError:  # the interpreter is exiting: its threads take nothing new
            return method(queue, *args, **kwargs)
        return done.result()

    functools.update_wrapper(run, method)  # its name and contract
    return run


class JobQueue:
    """The `jobs` table: fronts record, bot processes take, renew and finish."""

    def __init__(self, db: Database, *, keep_s: float = KEEP_DONE_S) -> None:
        """The queue of the state database `db` (its jobs in `db.intake()`); jobs a version
        before the intake file left in the state database are moved there first.
        `keep_s`: how long a job that ended is kept (its key refuses Slack's retries)."""
        self.db = db
        self.intake = db.intake()
        self.retention = Retention(keep_s)
        self._sqlite = self.intake.engine.dialect.name == "sqlite"
        # bot processes' writes (claims, renewals, finishes) go through one thread of the
        # priority the process had when it was built (see `_writer_of`); a front's record,
        # whose process keeps its priority, does not
        self._writer = _writer_of(self.intake) if self._sqlite and self.intake is not db else None
        self._adopting = threading.Lock()
        self._adopt_at = 0.0  # monotonic: when to look at the state database's own table next
        self._adopt()
        # one writer at a time from this process: SQLite's busy handler sleeps in steps of
        # up to 100 ms when two connections of one process race for the write lock
        self._write = threading.Lock()
        self._insert = insert(JobRow)

    @classmethod
    def open(cls, database_url: str) -> JobQueue:
        """The queue of the state database at `database_url` (migrated first); StoreError
        when it cannot be opened."""
        try:
            return cls(Database(database_url))
        except StoreError:
            raise
        except (SQLAlchemyError, OSError, ValueError) as exc:
            raise StoreError(f"the state database cannot be opened: {type(exc).__name__}") from exc

    def record(self, *, key: str, front: str, job: BaseModel, kind: str) -> str | None:
        """Keep `job` until a bot process ran it; its id, or None when a job with `key` was
        recorded before (a retried delivery). One short INSERT: fronts call it before acking."""
        job_id = new_id("job")
        values = {
            "id": job_id,
            "key": (key or job_id)[:255],
            "front": front,
            "kind": kind,
            "payload": job.model_dump(mode="json"),
            "state": JobState.QUEUED.value,
            "owner": "",
            "attempts": 0,
            "created_at": self.intake.comparable(utcnow()),
        }
        try:
            with self._write, self.intake.engine.connect() as conn:
                self._insert_now(conn, values)
        except IntegrityError:
            return None
        except SQLAlchemyError as exc:
            raise StoreError(f"the state database failed: {type(exc).__name__}") from exc
        return job_id

    def _insert_now(self, conn: Connection, values: dict[str, Any]) -> None:
        """INSERT as soon as the write lock is free. On SQLite, waiting is ours, in steps of
        half a millisecond: SQLite's own busy handler sleeps in growing steps of up to 100 ms,
        so a lock another process held for 20 ms could cost an ack 100 ms."""
        if not self._sqlite:
            with conn.begin():
                conn.execute(self._insert, values)
            return
        began = time.monotonic()
        locked_at: float | None = None  # when the first try found the lock held
        raw = conn.connection.driver_connection  # a pragma here begins no transaction
        assert raw is not None
        raw.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    with conn.begin():
                        conn.execute(self._insert, values)
                    break
                except OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() > began + BUSY_S:
                        raise
                    locked_at = locked_at or time.monotonic()
                time.sleep(0.0005)
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(BUSY_S * 1000)}")
        if locked_at is not None and (waited := time.monotonic() - locked_at) > 0.02:
            # apart from the time this process waited for a CPU: who held the lock that long
            log.warning("recording a job waited %.0f ms for the write lock", waited * 1000)

    @_on_writer
    def claim(
        self,
        owner: str,
        *,
        lease_s: float,
        fronts: frozenset[str],
        kinds: frozenset[str],
        exclude: frozenset[str] = frozenset(),
    ) -> JobRow | None:
        """The oldest job of `kinds` from `fronts` nobody holds (queued, or its holder's
        lease lapsed), now held by `owner`; one conditional UPDATE each, so two processes
        never both take one."""
        now = utcnow()
        if time.monotonic() >= self._adopt_at:
            self._adopt()
        free = or_(
            JobRow.state == JobState.QUEUED,
            and_(
                JobRow.state == JobState.RUNNING,
                JobRow.lease_expires_at < self.intake.comparable(now),
            ),
        )
        wanted = [free, JobRow.front.in_(sorted(fronts)), JobRow.kind.in_(sorted(kinds))]
        if exclude:
            wanted.append(JobRow.id.not_in(sorted(exclude)))
        query = select(JobRow.id).where(*wanted).order_by(JobRow.created_at).limit(20)
        with self.intake.session() as s:
            candidates = list(s.scalars(query))
        return leased.take(
            self._writing,
            JobRow,
            candidates,
            free=free,
            values={
                "state": JobState.RUNNING,
                "owner": owner,
                "lease_expires_at": now + timedelta(seconds=lease_s),
                "attempts": JobRow.attempts + 1,
            },
        )

    @_on_writer
    def renew(self, job_ids: list[str], owner: str, *, lease_s: float) -> None:
        """Extend `owner`'s leases on `job_ids` (those it still holds)."""
        if not job_ids:
            return
        with self._writing() as s:
            s.execute(
                update(JobRow)
                .where(
                    JobRow.id.in_(job_ids),
                    JobRow.owner == owner,
                    JobRow.state == JobState.RUNNING,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )

    @_on_writer
    def let_lapse(self, owner: str) -> int:
        """End `owner`'s leases on the jobs it runs now, so another process takes them again
        (see `core.execution.leases.let_lapse`); how many."""
        mine = (JobRow.owner == owner, JobRow.state == JobState.RUNNING)
        return leased.let_lapse(self._writing, JobRow, mine=mine, now=utcnow())

    @_on_writer
    def answer(self, job: JobRow, result: dict[str, Any]) -> None:
        """Keep what `job` answered, for the front that waits for it (the HTTP API), while
        this hold of it is current."""
        with self._writing() as s:
            s.execute(
                update(JobRow)
                .where(*_this_hold(job))
                .values(result=result)
                .execution_options(synchronize_session=False)
            )

    @_on_writer
    def finish(self, job: JobRow, state: JobState = JobState.DONE) -> None:
        """End `job` (only while this hold of it is current); now and then, jobs that ended
        over `keep_s` ago go (unfinished ones stay, however old)."""
        now = self.intake.now()
        with self._writing() as s:
            s.execute(
                update(JobRow)
                .where(*_this_hold(job))
                .values(state=state, finished_at=now, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
        if (before := self.retention.due(now)) is not None:
            self.forget_ended_before(before)

    @_on_writer
    def forget_ended_before(self, moment: datetime) -> int:
        """Delete the jobs that ended (done or abandoned) before `moment`; how many."""
        ended = func.coalesce(JobRow.finished_at, JobRow.created_at)
        with self._writing() as s:
            gone = s.execute(
                delete(JobRow).where(
                    JobRow.state.in_([JobState.DONE, JobState.ABANDONED]),
                    ended < self.intake.comparable(moment),
                )
            )
            return int(getattr(gone, "rowcount", 0) or 0)

    def unfinished(self, fronts: frozenset[str]) -> int:
        """How many jobs of `fronts` are queued or running."""
        with self.intake.session() as s:
            query = select(JobRow.id).where(
                JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]),
                JobRow.front.in_(sorted(fronts)),
            )
            return len(list(s.scalars(query)))

    def depth(self) -> list[tuple[str, str, int, datetime | None]]:
        """Queued and running jobs by kind and state: (kind, state, how many, when the
        oldest was recorded)."""
        query = (
            select(JobRow.kind, JobRow.state, func.count(), func.min(JobRow.created_at))
            .where(JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .group_by(JobRow.kind, JobRow.state)
        )
        with self.intake.session() as s:
            rows = s.execute(query).all()
        return [(k, st, int(n), aware(first) if first else None) for k, st, n, first in rows]

    def get(self, job_id: str) -> JobRow | None:
        with self.intake.session() as s:
            return s.get(JobRow, job_id)

    def operation_of(self, job_id: str) -> Operation | None:
        """The operation `job_id` recorded, if it got that far."""
        query = select(Operation).where(Operation.job_id == job_id)
        with self.db.session() as s:
            return s.scalars(query.limit(1)).first()

    def _adopt(self) -> None:
        """Move what the state database's own `jobs` table still holds into the intake file
        (`core.store.intake.adopt`): at start, then at a claim every few seconds while jobs
        are left there (one running under a live lease moves once it lapses), else every
        minute (a bot of the version before may still record there while bots are upgraded
        one by one)."""
        if self.intake is self.db or not self._adopting.acquire(blocking=False):
            return
        try:
            left = self._moved()
        except StoreError as exc:  # tried again at the next claim
            log.warning("%s", exc.message)
            left = 1
        finally:
            self._adopting.release()
        self._adopt_at = time.monotonic() + (ADOPT_AGAIN_S if left else ADOPT_IDLE_S)

    @_on_writer
    def _moved(self) -> int:
        return intake.adopt(self.db.url, utcnow())

    def _writing(self) -> Any:
        return _Writing(self)


class _Writing:
    """A database session taken under the queue's write lock."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._session: Any = None

    def __enter__(self) -> Any:
        self.queue._write.acquire()
        try:
            self._session = self.queue.intake.session()
            return self._session.__enter__()
        except BaseException:
            self.queue._write.release()
            raise

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._session.__exit__(*exc)
        finally:
            self.queue._write.release()


def _this_hold(job: JobRow) -> tuple[Any, ...]:
    """The conditions under which a write is still `job`'s holder's: its row, owner and
    attempt unchanged since it was taken."""
    return (JobRow.id == job.id, JobRow.owner == job.owner, JobRow.attempts == job.attempts)
