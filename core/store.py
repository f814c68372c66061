"""The state database: endpoints, operations and their events (SQLAlchemy; SQLite by default).

Every write commits at once, so what the bot did survives it stopping mid-operation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from core import migrate
from core.errors import StoreError
from core.resources import Resources


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class OperationState(StrEnum):
    QUEUED = "queued"  # waiting for a bot process to take it
    RUNNING = "running"  # held by `owner` until `lease_expires_at`
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Endpoint(Base):
    """One serving endpoint per (environment, name); `deployment` is what serves it now."""

    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("env", "name", name="uq_endpoints_env_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int] = mapped_column(Integer)
    replicas: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    url: Mapped[str] = mapped_column(String(512))
    deployment: Mapped[str] = mapped_column(String(128))
    since: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def resources(self) -> Resources:
        return Resources(
            cpu=self.cpu, memory_mb=self.memory_mb, replicas=self.replicas, gpus=self.gpus
        )


class Operation(Base):
    """One rollout: its plan, the remote ids its steps created, and who runs it until when."""

    __tablename__ = "operations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    env: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    requested_by: Mapped[str] = mapped_column(String(128))
    command: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=OperationState.QUEUED, index=True)
    step: Mapped[str] = mapped_column(String(64), default="")
    remote: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # where a front reports it (Slack: channel, user, thread), so whoever resumes it can too
    reply_to: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lock_token: Mapped[str] = mapped_column(String(32), default="")
    owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class DeliveryRow(Base):
    """A request a front has handed on (Slack: trigger or action id), so a retry is not."""

    __tablename__ = "deliveries"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    """One attempt to act, allowed or refused, as compliance reads it later."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[str] = mapped_column(String(128))
    actor_name: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(32))
    command: Mapped[str] = mapped_column(Text)
    env: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128), default="", index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    operation_id: Mapped[str] = mapped_column(String(32), default="")
    approver: Mapped[str] = mapped_column(String(256), default="")


class ApprovalRow(Base):
    """A developer's request to serve one version in one environment, and its decision."""

    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    env: Mapped[str] = mapped_column(String(64))
    requester_id: Mapped[str] = mapped_column(String(128))
    requester_name: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    command: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str] = mapped_column(String(256), default="")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    # where the front showed the request (Slack: channel and message ts), to update it
    where: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LockRow(Base):
    """Who holds an endpoint, since when and for what; a sticky lock is a freeze."""

    __tablename__ = "locks"
    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
    holder: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    sticky: Mapped[bool] = mapped_column(default=False)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


@dataclass(frozen=True)
class LockAttempt:
    acquired: bool
    token: str = ""
    holder: str = ""
    reason: str = ""
    since: datetime | None = None
    sticky: bool = False

    @classmethod
    def refused_by(cls, held: LockRow) -> LockAttempt:
        return cls(False, "", held.holder, held.reason, aware(held.since), held.sticky)


class Store:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, json_serializer=json.dumps)
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
            lock_token=lock_token,
            state=OperationState.RUNNING if owner else OperationState.QUEUED,
            owner=owner,
            lease_expires_at=utcnow() + timedelta(seconds=lease_s) if owner else None,
            attempts=1 if owner else 0,
        )
        with self.session() as s:
            s.add(op)
        return op

    def claim(self, owner: str, *, lease_s: float, limit: int = 20) -> Operation | None:
        """The oldest operation nobody holds (queued, or its holder's lease lapsed), now held
        by `owner`. Each candidate is taken with one conditional UPDATE: when several
        processes reach for the same one, exactly one of them gets it."""
        now = utcnow()
        free = or_(
            Operation.state == OperationState.QUEUED,
            and_(
                Operation.state == OperationState.RUNNING,
                Operation.lease_expires_at < self._comparable(now),
            ),
        )
        with self.session() as s:
            candidates = list(
                s.scalars(
                    select(Operation.id).where(free).order_by(Operation.created_at).limit(limit)
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

    def holds(self, op_id: str, owner: str) -> bool:
        """Whether `owner` still holds the operation (its lease was not taken over)."""
        with self.session() as s:
            op = s.get(Operation, op_id)
            return op is not None and op.owner == owner and op.state == OperationState.RUNNING

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

    def record(self, op_id: str, *, step: str | None = None, **remote: Any) -> None:
        """Note the current step and remote ids of an operation, before waiting on them."""
        with self.session() as s:
            op = s.get(Operation, op_id)
            assert op is not None
            if step is not None:
                op.step = step
            if remote:
                op.remote = {**op.remote, **remote}

    def finish(
        self, op_id: str, state: OperationState, error: str = "", *, owner: str | None = None
    ) -> bool:
        """End the operation; with `owner`, only if that process still holds it (one whose
        lease lapsed and was taken over must not end it too). False when it did not."""
        with self.session() as s:
            op = s.get(Operation, op_id)
            assert op is not None
            if owner is not None and op.owner != owner:
                return False
            op.state, op.error, op.finished_at = state, error, utcnow()
            op.lease_expires_at = None
            return True

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
                    s.delete(held)
                    s.flush()
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
            s.delete(held)
            return held

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


def aware(moment: datetime) -> datetime:
    """A time read back from SQLite (naive, UTC) with its time zone put back."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # with WAL this cannot corrupt the database; a power cut may lose the last commits
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
