"""The rows of the state database (SQLAlchemy models) and small values read from them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    """One rollout: its brief (what to do, for whom), the remote ids its steps created, and
    who runs it until when."""

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
    brief: Mapped[dict[str, Any]] = mapped_column("plan", default=dict)  # the column keeps its name
    # where a front reports it (Slack: channel, user, thread), so whoever resumes it can too
    reply_to: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lock_token: Mapped[str] = mapped_column(String(32), default="")
    # the front that asked ("slack", or "" for the console and the core): only a process
    # that can report there takes it over
    front: Mapped[str] = mapped_column(String(16), default="")
    owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # the job a front recorded for the request that admitted it: taken again, it is not rerun
    job_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    # who asked to stop it at its next step (`/cancel`), from whichever process
    cancelled_by: Mapped[str] = mapped_column(String(128), default="")
    # what an admin decided on its canary, from whichever process: {"decision": promote,
    # hold or abort, "by": who, "at": the share it was decided at}
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)

    @property
    def canary_share(self) -> int | None:
        """The percent of requests its new version answers while in its canary step
        (`core.execution.canary`); None when it is not in one."""
        at = (self.remote or {}).get("canary_at")
        return at if self.step == CANARY_STEP and isinstance(at, int) else None


# how long finished jobs, sent outbox rows and remembered deliveries are kept (the settings'
# `keep_done_s`): longer than any platform retries a delivery
KEEP_DONE_S = 24 * 3600.0


# the step of a rollout in which its new version meets traffic beside what serves
CANARY_STEP = "canary"


class JobState(StrEnum):
    QUEUED = "queued"  # recorded, not yet taken (or given back)
    RUNNING = "running"  # held by `owner` until `lease_expires_at`
    DONE = "done"  # ran to its end (whatever it answered)
    ABANDONED = "abandoned"  # taken too many times: its requester was told


class JobRow(Base):
    """One acknowledged request: its typed payload (`kind` names the model), and who runs it."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # the platform's id for the request (Slack: trigger or action id): one job per delivery
    key: Mapped[str] = mapped_column(String(255), unique=True)
    front: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED, index=True)
    owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # what the job answered, for a front that waits for it (the HTTP API); None for others
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)


class DeliveryRow(Base):
    """A request a front has handed on (Slack: trigger or action id), so a retry is not."""

    __tablename__ = "deliveries"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RegistryEventRow(Base):
    """A registry event seen (a version registered, an alias moved, a tag set): the unique
    `key` lets one bot process, of any number seeing it, announce it."""

    __tablename__ = "registry_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(48))
    model: Mapped[str] = mapped_column(String(256), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # what changed (`alias:champion`, `tag:3:validated`, `version:3`) and what it became
    subject: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(Text, default="")
    seq: Mapped[int] = mapped_column(Integer, default=0)
    # webhook, poll, or seen (known before the bot watched: never announced)
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)


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


class TokenRow(Base):
    """A personal API token: only the SHA-256 of its secret is kept, never the secret."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


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


class ServedRow(Base):
    """One stretch of time a version served an endpoint: from the switch that made it serve
    to the switch, stop or failure that ended it (`ended_at` None while it still serves)."""

    __tablename__ = "served"
    __table_args__ = (
        Index("ix_served_env_model_version", "env", "model", "version"),
        Index("ix_served_env_endpoint", "env", "endpoint"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    deployment: Mapped[str] = mapped_column(String(128), default="")
    operation_id: Mapped[str] = mapped_column(String(32), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # how it ended: "" (serving), switched, stopped or failed; `detail` says more
    end: Mapped[str] = mapped_column(String(16), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


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


def aware(moment: datetime) -> datetime:
    """A time read back from SQLite (naive, UTC) with its time zone put back."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Hold:
    """One process's hold on one operation: `attempt` fences it off from holders before and
    after it (each takeover counts one more), even when they share an owner name."""

    owner: str
    attempt: int

    @classmethod
    def of(cls, op: Operation) -> Hold:
        return cls(op.owner, op.attempts)


class WatchState(StrEnum):
    WATCHING = "watching"  # held by `owner` until `lease_expires_at`, or free to take
    CLEAN = "clean"  # the window ended with the endpoint healthy
    ROLLED_BACK = "rolled_back"  # it failed: the bot rolled back by itself
    HELD = "held"  # it failed while someone held the endpoint: not rolled back
    FAILED = "failed"  # it failed with nothing to roll back to
    SUPERSEDED = "superseded"  # another operation changed or stopped the endpoint
    LAPSED = "lapsed"  # no bot process watched it before its window ended


class WatchRow(Base):
    """The window after a switch in which a failing endpoint is rolled back by itself to
    `previous`; checked by whichever bot process holds it (`owner`, `lease_expires_at`)."""

    __tablename__ = "watches"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    env: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    operation_id: Mapped[str] = mapped_column(String(32))  # the operation that switched
    model: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    deployment: Mapped[str] = mapped_column(String(128))
    previous: Mapped[int | None] = mapped_column(Integer, default=None)
    # where that operation was reported (its thread), and the front that can report there
    reply_to: Mapped[dict[str, Any]] = mapped_column(default=dict)
    front: Mapped[str] = mapped_column(String(16), default="")
    state: Mapped[str] = mapped_column(String(16), default=WatchState.WATCHING, index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    downs: Mapped[int] = mapped_column(Integer, default=0)  # failed health checks in a row
    owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DownRow(Base):
    """An endpoint found down outside any rollout, announced once per front until it is up
    again (the primary key decides which bot process announces it)."""

    __tablename__ = "downs"
    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    front: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    # where the announcement was shown, to take its button away once the endpoint is up
    where: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OwedState(StrEnum):
    PENDING = "pending"  # recorded, not yet known to be sent: any bot process may send it
    SENT = "sent"


class OwedRow(Base):
    """Something the bot owes people outside its database — an operation's final word, a
    job's answer — recorded in the transaction that decided it, and sent once by whichever
    bot process holds it (`owner`, `lease_expires_at`): the outbox."""

    __tablename__ = "outbox"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "final" (an operation's), "answer" (a job's)
    operation_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    job_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    front: Mapped[str] = mapped_column(String(16), default="")  # the front that can send it
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default=OwedState.PENDING, index=True)
    owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
