"""The state database: endpoints, operations and their events (SQLAlchemy; SQLite by default).

Every write commits at once, so what the bot did survives it stopping mid-operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, create_engine, delete, event, make_url, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core import migrate
from core.errors import StoreError
from core.models import (
    ApprovalRow,
    AuditRow,
    Base,
    DeliveryRow,
    Endpoint,
    EventRow,
    Hold,
    LockAttempt,
    LockRow,
    Operation,
    OperationState,
    aware,
    new_id,
    utcnow,
)

# the rows are the store's vocabulary: whoever uses the store may take them from here
__all__ = [
    "ApprovalRow",
    "AuditRow",
    "Base",
    "Endpoint",
    "EventRow",
    "Hold",
    "LockAttempt",
    "LockRow",
    "Operation",
    "OperationState",
    "Store",
    "aware",
    "new_id",
    "utcnow",
]


class Store:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        address = make_url(url)
        if address.get_backend_name() == "postgresql" and "connect_timeout" not in address.query:
            # a database that stops answering must not hang an ack or a lease heartbeat
            address = address.update_query_dict({"connect_timeout": "5"})
        self.engine = create_engine(address, json_serializer=json.dumps)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        migrate.upgrade(url)  # the schema comes from the migrations, on every backend
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"the state database failed: {type(exc).__name__}") from exc

    # -- endpoints -------------------------------------------------------------------------
    def endpoint(self, env: str, name: str) -> Endpoint | None:
        with self.session() as s:
            return s.scalar(select(Endpoint).where(Endpoint.env == env, Endpoint.name == name))

    def endpoints(self, env: str | None = None) -> list[Endpoint]:
        query = select(Endpoint).order_by(Endpoint.env, Endpoint.name)
        if env:
            query = query.where(Endpoint.env == env)
        with self.session() as s:
            return list(s.scalars(query))

    def save_endpoint(self, **fields: Any) -> Endpoint:
        """Insert or update the endpoint (env, name); `since`: when this deployment took over."""
        with self.session() as s:
            row = s.scalar(
                select(Endpoint).where(
                    Endpoint.env == fields["env"], Endpoint.name == fields["name"]
                )
            )
            if row is None:
                row = Endpoint(**fields)
                s.add(row)
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
            row.since = row.updated_at = utcnow()
            return row

    def delete_endpoint(self, env: str, name: str) -> None:
        with self.session() as s:
            row = s.scalar(select(Endpoint).where(Endpoint.env == env, Endpoint.name == name))
            if row is not None:
                s.delete(row)

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
        with self.session() as s:
            for op in s.scalars(query):
                version = (op.remote or {}).get("version")
                if version is not None and int(version) != current:
                    return int(version)
        return None

    # -- operations ------------------------------------------------------------------------
    def enqueue(
        self,
        *,
        kind: str,
        env: str,
        endpoint: str,
        requested_by: str,
        command: str,
        plan: dict[str, Any] | None = None,
        reply_to: dict[str, Any] | None = None,
        lock_token: str = "",
        owner: str = "",
        lease_s: float = 0.0,
    ) -> Operation:
        """A new operation: queued for any bot process, or already held by `owner`."""
        op = Operation(
            id=new_id("op"),
            kind=kind,
            env=env,
            endpoint=endpoint,
            requested_by=requested_by,
            command=command,
            remote={},
            plan=plan or {},
            reply_to=reply_to or {},
            front=str((reply_to or {}).get("front") or ""),
            lock_token=lock_token,
            state=OperationState.RUNNING if owner else OperationState.QUEUED,
            owner=owner,
            lease_expires_at=utcnow() + timedelta(seconds=lease_s) if owner else None,
            attempts=1 if owner else 0,
        )
        with self.session() as s:
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
        now = utcnow()
        free = or_(
            Operation.state == OperationState.QUEUED,
            and_(
                Operation.state == OperationState.RUNNING,
                Operation.lease_expires_at < self._comparable(now),
            ),
        )
        wanted = [free]
        if fronts is not None:
            wanted.append(Operation.front.in_(sorted(fronts)))
        if exclude:
            wanted.append(Operation.id.not_in(sorted(exclude)))
        with self.session() as s:
            candidates = list(
                s.scalars(
                    select(Operation.id).where(*wanted).order_by(Operation.created_at).limit(limit)
                )
            )
        for op_id in candidates:
            with self.session() as s:
                taken = s.execute(
                    update(Operation)
                    .where(Operation.id == op_id, free)
                    .values(
                        state=OperationState.RUNNING,
                        owner=owner,
                        lease_expires_at=now + timedelta(seconds=lease_s),
                        attempts=Operation.attempts + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(taken, "rowcount", 0) == 1:
                    return s.get(Operation, op_id)
        return None

    def renew(self, op_ids: list[str], owner: str, *, lease_s: float) -> set[str]:
        """Extend `owner`'s leases; the ids it still holds (a lapsed one may be another's)."""
        if not op_ids:
            return set()
        with self.session() as s:
            s.execute(
                update(Operation)
                .where(
                    Operation.id.in_(op_ids),
                    Operation.owner == owner,
                    Operation.state == OperationState.RUNNING,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            held = select(Operation.id).where(
                Operation.id.in_(op_ids),
                Operation.owner == owner,
                Operation.state == OperationState.RUNNING,
            )
            return set(s.scalars(held))

    def holds(self, op_id: str, hold: Hold) -> bool:
        """Whether `hold` is still the operation's (no other process took it over)."""
        with self.session() as s:
            op = s.get(Operation, op_id)
            return op is not None and _held(op, hold)

    def set_lock_token(self, op_id: str, token: str) -> None:
        with self.session() as s:
            op = s.get(Operation, op_id)
            if op is not None:
                op.lock_token = token

    def give_back(self, op_id: str, owner: str) -> None:
        """Queue again an operation `owner` took but never began (it is stopping)."""
        with self.session() as s:
            s.execute(
                update(Operation)
                .where(Operation.id == op_id, Operation.owner == owner)
                .values(
                    state=OperationState.QUEUED,
                    owner="",
                    lease_expires_at=None,
                    attempts=Operation.attempts - 1,
                )
                .execution_options(synchronize_session=False)
            )

    def running(self) -> list[Operation]:
        """Operations queued or under way, oldest first."""
        with self.session() as s:
            query = (
                select(Operation)
                .where(Operation.state.in_([OperationState.QUEUED, OperationState.RUNNING]))
                .order_by(Operation.created_at)
            )
            return list(s.scalars(query))

    def set_reply_to(self, op_id: str, reply_to: dict[str, Any]) -> None:
        with self.session() as s:
            op = s.get(Operation, op_id)
            if op is not None:
                op.reply_to = {**op.reply_to, **reply_to}

    def record(
        self, op_id: str, *, step: str | None = None, hold: Hold | None = None, **remote: Any
    ) -> bool:
        """Note the current step and remote ids of an operation, before waiting on them;
        with `hold`, only while it is still that hold's (False when it is not)."""
        with self.session() as s:
            op = s.scalar(select(Operation).where(Operation.id == op_id).with_for_update())
            if op is None or (hold is not None and not _held(op, hold)):
                return False
            if step is not None:
                op.step = step
            if remote:
                op.remote = {**op.remote, **remote}
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
        with self.session() as s:
            ended = s.execute(
                query.values(
                    state=state, error=error, finished_at=utcnow(), lease_expires_at=None
                ).execution_options(synchronize_session=False)
            )
            return getattr(ended, "rowcount", 0) == 1

    def add_event(self, op_id: str, kind: str, step: str, message: str) -> None:
        with self.session() as s:
            s.add(EventRow(operation_id=op_id, kind=kind, step=step, message=message))

    def operation(self, op_id: str) -> Operation | None:
        with self.session() as s:
            return s.get(Operation, op_id)

    def events(self, op_id: str) -> list[EventRow]:
        with self.session() as s:
            query = select(EventRow).where(EventRow.operation_id == op_id).order_by(EventRow.id)
            return list(s.scalars(query))

    # -- locks ---------------------------------------------------------------------------
    def try_lock(
        self,
        env: str,
        endpoint: str,
        *,
        holder: str,
        reason: str,
        ttl_s: float | None,
        sticky: bool = False,
    ) -> LockAttempt:
        """Take the endpoint, or learn who holds it. An expired lock is taken over; two
        takers at once cannot both win (the primary key decides)."""
        token = new_id("lock")
        now = utcnow()
        expires = now + timedelta(seconds=ttl_s) if ttl_s is not None else None
        try:
            with self._sessions.begin() as s:
                held = s.get(LockRow, (env, endpoint))
                if held is not None:
                    alive = held.expires_at is None or aware(held.expires_at) > now
                    if alive:
                        return LockAttempt.refused_by(held)
                    # only the lapsed lock seen, not one another taker put there since
                    gone = s.execute(
                        delete(LockRow).where(
                            LockRow.env == env,
                            LockRow.endpoint == endpoint,
                            LockRow.token == held.token,
                        )
                    )
                    if getattr(gone, "rowcount", 0) != 1:
                        raise IntegrityError("the lapsed lock changed", None, ValueError())
                s.add(
                    LockRow(
                        env=env,
                        endpoint=endpoint,
                        token=token,
                        holder=holder,
                        reason=reason,
                        sticky=sticky,
                        since=now,
                        expires_at=expires,
                    )
                )
        except IntegrityError:
            held = self.lock(env, endpoint)
            if held is None:
                return self.try_lock(
                    env, endpoint, holder=holder, reason=reason, ttl_s=ttl_s, sticky=sticky
                )
            return LockAttempt.refused_by(held)
        except SQLAlchemyError as exc:
            raise StoreError(f"the state database failed: {type(exc).__name__}") from exc
        return LockAttempt(True, token, holder, reason, now, sticky)

    def lock(self, env: str, endpoint: str) -> LockRow | None:
        with self.session() as s:
            return s.get(LockRow, (env, endpoint))

    def release(self, env: str, endpoint: str, token: str | None = None) -> LockRow | None:
        """Drop the lock (only if it still carries `token`, when given); what was dropped."""
        with self.session() as s:
            held = s.get(LockRow, (env, endpoint))
            if held is None or (token is not None and held.token != token):
                return None
            gone = s.execute(
                delete(LockRow).where(
                    LockRow.env == env, LockRow.endpoint == endpoint, LockRow.token == held.token
                )
            )
            return held if getattr(gone, "rowcount", 0) == 1 else None

    def rotate_lock(self, env: str, endpoint: str, old: str, new: str) -> bool:
        """Give a held lock a new token (a process taking over an operation does, so the
        one it took it from can no longer release it); False if `old` no longer holds it."""
        with self.session() as s:
            changed = s.execute(
                update(LockRow)
                .where(LockRow.env == env, LockRow.endpoint == endpoint, LockRow.token == old)
                .values(token=new)
                .execution_options(synchronize_session=False)
            )
            return getattr(changed, "rowcount", 0) == 1

    # -- deliveries ------------------------------------------------------------------------
    def first_delivery(self, key: str, *, keep_s: float = 24 * 3600.0) -> bool:
        """True only for the first of any number of calls with `key`, from any process
        (the primary key decides). Keys older than `keep_s` are forgotten."""
        now = utcnow()
        try:
            with self._sessions.begin() as s:
                s.add(DeliveryRow(key=key[:255], at=now))
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise StoreError(f"the state database failed: {type(exc).__name__}") from exc
        if hash(key) % 64 == 0:  # now and then, not on every request
            with self.session() as s:
                old = self._comparable(now - timedelta(seconds=keep_s))
                s.execute(delete(DeliveryRow).where(DeliveryRow.at < old))
        return True

    # -- approvals -----------------------------------------------------------------------
    def add_approval(self, row: ApprovalRow) -> ApprovalRow:
        with self.session() as s:
            s.add(row)
        return row

    def approval(self, approval_id: str) -> ApprovalRow | None:
        with self.session() as s:
            return s.get(ApprovalRow, approval_id)

    def decide_approval(self, approval_id: str, *, state: str, by: str, reason: str) -> bool:
        """Move a pending request to `state`; False when it was no longer pending (someone
        else decided first): one decision, however many clicks arrive at once."""
        with self.session() as s:
            result = s.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.state == "pending")
                .values(state=state, decided_by=by, decided_at=utcnow(), decision_reason=reason)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def set_approval_where(self, approval_id: str, where: dict[str, Any]) -> None:
        with self.session() as s:
            row = s.get(ApprovalRow, approval_id)
            if row is not None:
                row.where = where

    # -- audit ---------------------------------------------------------------------------
    def audit(self, **fields: Any) -> None:
        with self.session() as s:
            s.add(AuditRow(**fields))

    def audit_entries(
        self, *, endpoint: str | None = None, since: datetime | None = None, limit: int = 20
    ) -> list[AuditRow]:
        """Newest first."""
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        if endpoint:
            query = query.where(AuditRow.endpoint == endpoint)
        if since:
            query = query.where(AuditRow.at >= self._comparable(since))
        with self.session() as s:
            return list(s.scalars(query))

    def _comparable(self, moment: datetime) -> datetime:
        # SQLite keeps no time zone: rows hold naive UTC, so compare with naive UTC
        if self.engine.dialect.name == "sqlite" and moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment

    def operations(self, limit: int = 50) -> list[Operation]:
        with self.session() as s:
            return list(
                s.scalars(select(Operation).order_by(Operation.created_at.desc()).limit(limit))
            )


def _held(op: Operation, hold: Hold) -> bool:
    return (op.owner, op.attempts, op.state) == (hold.owner, hold.attempt, OperationState.RUNNING)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # with WAL this cannot corrupt the database; a power cut may lose the last commits
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
