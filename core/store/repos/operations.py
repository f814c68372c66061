"""Operations, their events, and the leases by which one bot process at a time runs each.

An operation is queued, or running under `owner` until `lease_expires_at`; a process that
stops renewing its lease loses the operation to whichever process claims it next. Every
write a run makes is fenced by its `Hold` (see `core.store.repos.fence`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, extract, func, or_, select, update

from core.store.db import Database, aware
from core.store.models import EventRow, Hold, Operation, OperationState, new_id
from core.store.repos import leased
from core.store.repos.fence import still_held


@dataclass(frozen=True)
class Tally:
    """Operations of one kind, environment and state: how many; for ended ones, how long
    they took from being asked to ending (seconds in all, and how many within each bound)."""

    kind: str
    env: str
    state: str
    count: int
    seconds: float = 0.0
    within: tuple[int, ...] = ()
    oldest: datetime | None = None  # unfinished ones: when the oldest was asked for


class OperationRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading ---------------------------------------------------------------------------
    def get(self, op_id: str) -> Operation | None:
        with self.db.session() as s:
            return s.get(Operation, op_id)

    def recent(self, limit: int = 50) -> list[Operation]:
        """The newest operations first."""
        query = select(Operation).order_by(Operation.created_at.desc()).limit(limit)
        with self.db.session() as s:
            return list(s.scalars(query))

    def running(self) -> list[Operation]:
        """Operations queued or under way, oldest first."""
        query = (
            select(Operation)
            .where(Operation.state.in_([OperationState.QUEUED, OperationState.RUNNING]))
            .order_by(Operation.created_at)
        )
        with self.db.session() as s:
            return list(s.scalars(query))

    def previous_version(self, env: str, endpoint: str, current: int) -> int | None:
        """The version the endpoint served before `current`, by its succeeded rollouts."""
        query = (
            select(Operation)
            .where(
                Operation.env == env,
                Operation.endpoint == endpoint,
                Operation.state == OperationState.SUCCEEDED,
            )
            .order_by(Operation.created_at.desc())
        )
        with self.db.session() as s:
            for op in s.scalars(query):
                version = (op.remote or {}).get("version")
                if version is not None and int(version) != current:
                    return int(version)
        return None

    def remembered(self, key: str, *, limit: int = 200) -> list[tuple[Operation, Any]]:
        """What the newest `limit` operations recorded under `key`, newest first (those that
        recorded it)."""
        query = select(Operation).order_by(Operation.created_at.desc()).limit(limit)
        with self.db.session() as s:
            found = [(op, (op.remote or {}).get(key)) for op in s.scalars(query)]
        return [(op, value) for op, value in found if value is not None]

    def events(self, op_id: str) -> list[EventRow]:
        query = select(EventRow).where(EventRow.operation_id == op_id).order_by(EventRow.id)
        with self.db.session() as s:
            return list(s.scalars(query))

    # -- a new operation, and taking it ----------------------------------------------------
    def enqueue(
        self,
        *,
        kind: str,
        env: str,
        endpoint: str,
        requested_by: str,
        command: str,
        brief: Mapping[str, Any] | None = None,
        reply_to: Mapping[str, Any] | None = None,
        lock_token: str = "",
        owner: str = "",
        lease_s: float = 0.0,
    ) -> Operation:
        """A new operation: queued for any bot process, or already held by `owner`."""
        now = self.db.now()
        op = Operation(
            id=new_id("op"),
            kind=kind,
            env=env,
            endpoint=endpoint,
            requested_by=requested_by,
            command=command,
            remote={},
            brief=dict(brief or {}),
            reply_to=dict(reply_to or {}),
            front=str((reply_to or {}).get("front") or ""),
            job_id=str((reply_to or {}).get("job") or ""),
            lock_token=lock_token,
            state=OperationState.RUNNING if owner else OperationState.QUEUED,
            owner=owner,
            created_at=now,
            lease_expires_at=now + timedelta(seconds=lease_s) if owner else None,
            attempts=1 if owner else 0,
        )
        with self.db.session() as s:
            s.add(op)
        return op

    def claim(
        self,
        owner: str,
        *,
        lease_s: float,
        fronts: frozenset[str] | None = None,
        exclude: frozenset[str] = frozenset(),
        limit: int = 20,
    ) -> Operation | None:
        """The oldest operation nobody holds (queued, or its holder's lease lapsed), now held
        by `owner`; only those asked from `fronts` (all when None), none of `exclude` (what
        `owner` runs already). Each candidate is taken with one conditional UPDATE: when
        several processes reach for the same one, exactly one of them gets it."""
        now = self.db.now()
        free = self._free(now)
        wanted = [free]
        if fronts is not None:
            wanted.append(Operation.front.in_(sorted(fronts)))
        if exclude:
            wanted.append(Operation.id.not_in(sorted(exclude)))
        query = select(Operation.id).where(*wanted).order_by(Operation.created_at).limit(limit)
        with self.db.session() as s:
            candidates = list(s.scalars(query))
        return leased.take(
            self.db.session,
            Operation,
            candidates,
            free=free,
            values={
                "state": OperationState.RUNNING,
                "owner": owner,
                "lease_expires_at": now + timedelta(seconds=lease_s),
                "attempts": Operation.attempts + 1,
            },
        )

    def renew(self, op_ids: list[str], owner: str, *, lease_s: float) -> set[str]:
        """Extend `owner`'s leases; the ids it still holds (a lapsed one may be another's)."""
        if not op_ids:
            return set()
        mine = (
            Operation.id.in_(op_ids),
            Operation.owner == owner,
            Operation.state == OperationState.RUNNING,
        )
        with self.db.session() as s:
            s.execute(
                update(Operation)
                .where(*mine)
                .values(lease_expires_at=self.db.now() + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            return set(s.scalars(select(Operation.id).where(*mine)))

    def holds(self, op_id: str, hold: Hold) -> bool:
        """Whether `hold` is still the operation's (no other process took it over)."""
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            return op is not None and (op.owner, op.attempts, op.state) == (
                hold.owner,
                hold.attempt,
                OperationState.RUNNING,
            )

    def give_back(self, op_id: str, owner: str) -> None:
        """Queue again an operation `owner` took but never began (it is stopping)."""
        with self.db.session() as s:
            s.execute(
                update(Operation)
                .where(
                    Operation.id == op_id,
                    Operation.owner == owner,
                    Operation.state == OperationState.RUNNING,
                )
                .values(
                    state=OperationState.QUEUED,
                    owner="",
                    lease_expires_at=None,
                    attempts=Operation.attempts - 1,
                )
                .execution_options(synchronize_session=False)
            )

    def let_lapse(self, owner: str, op_ids: list[str] | None = None) -> int:
        """End `owner`'s leases (on `op_ids`, else on all it holds) now: another process may
        take those operations over and resume them (see `core.execution.leases.let_lapse`)."""
        mine = [Operation.owner == owner, Operation.state == OperationState.RUNNING]
        if op_ids is not None:
            mine.append(Operation.id.in_(op_ids))
        return leased.let_lapse(self.db.session, Operation, mine=mine, now=self.db.now())

    # -- what a run writes: fenced by its hold ---------------------------------------------
    def record(
        self,
        op_id: str,
        *,
        step: str | None = None,
        remote: Mapping[str, Any] | None = None,
        hold: Hold | None = None,
    ) -> bool:
        """Note the current step and remote ids of an operation, before waiting on them;
        with `hold`, only while it is still that hold's (False when it is not)."""
        with self.db.session() as s:
            if hold is not None and not still_held(s, op_id, hold):
                return False
            op = s.get(Operation, op_id)
            if op is None:
                return False
            if step is not None:
                op.step = step
            if remote:
                op.remote = {**op.remote, **remote}
            return True

    def cancel(self, op_id: str, *, by: str) -> None:
        """Ask the operation to stop at its next step; whoever runs it sees it (`cancelled`)."""
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            if op is not None:
                op.cancelled_by = by

    def decide(self, op_id: str, *, decision: str, by: str, at: int) -> bool:
        """Record an admin's decision on the operation's canary at `at` percent; whoever runs
        it acts on it at its next look (`gate`). False, recording nothing, when the canary is
        no longer at `at` (it moved on since it was read): a decision it would ignore."""
        with self.db.session() as s:
            op = s.get(Operation, op_id, with_for_update=True)
            if op is None or op.canary_share != at:
                return False
            op.gate = {"decision": decision, "by": by, "at": at}
            return True

    def set_reply_to(self, op_id: str, reply_to: Mapping[str, Any], *, hold: Hold) -> bool:
        """Where a front reports the operation now, merged into what was known; only while
        `hold` holds it (False when it does not)."""
        with self.db.session() as s:
            op = s.get(Operation, op_id) if still_held(s, op_id, hold) else None
            if op is None:
                return False
            op.reply_to = {**op.reply_to, **reply_to}
            return True

    def set_lock_token(self, op_id: str, token: str, *, hold: Hold) -> bool:
        """The token of the endpoint lock the operation goes on with; only while `hold`
        holds it (False when it does not)."""
        with self.db.session() as s:
            op = s.get(Operation, op_id) if still_held(s, op_id, hold) else None
            if op is None:
                return False
            op.lock_token = token
            return True

    def finish(
        self, op_id: str, state: OperationState, error: str = "", *, hold: Hold | None = None
    ) -> bool:
        """End the operation; with `hold`, only if it is still that hold's (a process whose
        lease lapsed and was taken over must not end it too). False when it did not."""
        query = update(Operation).where(Operation.id == op_id)
        if hold is not None:
            query = query.where(
                Operation.owner == hold.owner,
                Operation.attempts == hold.attempt,
                Operation.state == OperationState.RUNNING,
            )
        values = {
            "state": state,
            "error": error,
            "finished_at": self.db.now(),
            "lease_expires_at": None,
        }
        with self.db.session() as s:
            ended = s.execute(query.values(values).execution_options(synchronize_session=False))
            return getattr(ended, "rowcount", 0) == 1

    def add_event(self, op_id: str, kind: str, step: str, message: str) -> None:
        with self.db.session() as s:
            s.add(
                EventRow(
                    operation_id=op_id, kind=kind, step=step, message=message, at=self.db.now()
                )
            )

    # -- counting, for monitoring ----------------------------------------------------------
    def ended(self, bounds: Sequence[float]) -> list[Tally]:
        """Ended operations by kind, environment and state, with their durations counted
        within each of `bounds` (seconds, ascending). One aggregate query."""
        took = self._seconds(Operation.created_at, Operation.finished_at)
        keys = (Operation.kind, Operation.env, Operation.state)
        query = (
            select(
                *keys,
                func.count(),
                func.coalesce(func.sum(took), 0.0),
                *(func.sum(case((took <= bound, 1), else_=0)) for bound in bounds),
            )
            .where(Operation.finished_at.is_not(None))
            .group_by(*keys)
        )
        with self.db.session() as s:
            rows = s.execute(query).all()
        return [
            Tally(
                kind=kind,
                env=env,
                state=state,
                count=int(count),
                seconds=float(total),
                within=tuple(int(n or 0) for n in within),
            )
            for kind, env, state, count, total, *within in rows
        ]

    def unfinished(self) -> list[Tally]:
        """Queued and running operations by kind, environment and state, with when the
        oldest of each was asked for."""
        keys = (Operation.kind, Operation.env, Operation.state)
        query = (
            select(*keys, func.count(), func.min(Operation.created_at))
            .where(Operation.state.in_([OperationState.QUEUED, OperationState.RUNNING]))
            .group_by(*keys)
        )
        with self.db.session() as s:
            rows = s.execute(query).all()
        return [
            Tally(kind=k, env=e, state=st, count=int(n), oldest=aware(first) if first else None)
            for k, e, st, n, first in rows
        ]

    def _seconds(self, start: Any, end: Any) -> Any:
        """`end - start` in seconds, as this backend computes it."""
        if self.db.engine.dialect.name == "sqlite":  # rows hold ISO text, naive UTC
            return (func.julianday(end) - func.julianday(start)) * 86400.0
        return extract("epoch", end - start)

    def _free(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            Operation.state == OperationState.QUEUED,
            and_(
                Operation.state == OperationState.RUNNING,
                Operation.lease_expires_at < self.db.comparable(now),
            ),
        )
