"""What served where, and how each stretch of serving ended.

One row per interval a version served an endpoint: opened by the switch that made it serve
(`began`), closed by the next switch, a stop, or a failure (`ended`). Rollouts write these
inside their fenced transactions, beside the endpoint row they change, so the history says
exactly what the endpoints table said at every moment. The promotion order reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.db import Database
from core.store.models import Hold, ServedRow, aware
from core.store.repos.fence import still_held


class End(StrEnum):
    SWITCHED = "switched"  # another deployment took the traffic
    STOPPED = "stopped"  # /stop
    FAILED = "failed"  # found down, or rolled back by itself


@dataclass(frozen=True)
class Interval:
    env: str
    endpoint: str
    model: str
    version: int
    started: datetime
    ended: datetime | None  # None: it serves still
    end: str  # "" while it serves, else an `End`
    detail: str
    operation: str = ""  # the operation whose switch made it serve

    @property
    def failed(self) -> bool:
        return self.end == End.FAILED

    def seconds(self, now: datetime) -> float:
        return max(0.0, ((self.ended or now) - self.started).total_seconds())


def began(
    s: Session,
    *,
    now: datetime,
    env: str,
    endpoint: str,
    model: str,
    version: int,
    deployment: str,
    op_id: str = "",
    previous_failed: str = "",
) -> None:
    """In `s`: `model` v`version` serves the endpoint from `now` on; what served it until
    now ends, as failed with `previous_failed` as the reason when given."""
    end, detail = (End.FAILED, previous_failed) if previous_failed else (End.SWITCHED, "")
    ended(s, now=now, env=env, endpoint=endpoint, end=end, detail=detail)
    s.add(
        ServedRow(
            env=env,
            endpoint=endpoint,
            model=model,
            version=version,
            deployment=deployment,
            operation_id=op_id,
            started_at=now,
            end="",
            detail="",
        )
    )


def ended(
    s: Session, *, now: datetime, env: str, endpoint: str, end: End, detail: str = ""
) -> bool:
    """In `s`: whatever serves the endpoint stops serving at `now`, as `end`; False when
    nothing was recorded serving it."""
    rows = s.scalars(
        select(ServedRow).where(
            ServedRow.env == env, ServedRow.endpoint == endpoint, ServedRow.ended_at.is_(None)
        )
    ).all()
    for row in rows:
        row.ended_at = now
        row.end = end.value
        row.detail = detail[:500]
    return bool(rows)


class ServedRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def intervals(self, env: str, model: str, version: int) -> list[Interval]:
        """Every interval `model` v`version` served in `env` (any endpoint), oldest first."""
        query = (
            select(ServedRow)
            .where(ServedRow.env == env, ServedRow.model == model, ServedRow.version == version)
            .order_by(ServedRow.started_at, ServedRow.id)
        )
        with self.db.session() as s:
            return [_interval(row) for row in s.scalars(query)]

    def serving(self, env: str, endpoint: str) -> Interval | None:
        """The open interval of the endpoint: what serves it now, since when."""
        query = select(ServedRow).where(
            ServedRow.env == env, ServedRow.endpoint == endpoint, ServedRow.ended_at.is_(None)
        )
        with self.db.session() as s:
            row = s.scalars(query.order_by(ServedRow.id.desc())).first()
            return _interval(row) if row is not None else None

    def at(self, endpoint: str, moment: datetime) -> list[Interval]:
        """What served the endpoint in each environment at `moment`: the intervals that had
        begun by then and had not yet ended."""
        moment = self.db.comparable(moment)
        query = (
            select(ServedRow)
            .where(
                ServedRow.endpoint == endpoint,
                ServedRow.started_at <= moment,
                (ServedRow.ended_at.is_(None)) | (ServedRow.ended_at > moment),
            )
            .order_by(ServedRow.env, ServedRow.started_at, ServedRow.id)
        )
        with self.db.session() as s:
            return [_interval(row) for row in s.scalars(query)]

    def begins(self) -> datetime | None:
        """When the served history begins: the first switch recorded, None before any."""
        with self.db.session() as s:
            first = s.scalar(select(func.min(ServedRow.started_at)))
            return aware(first) if first is not None else None

    def failed(
        self,
        env: str,
        endpoint: str,
        detail: str,
        *,
        op_id: str | None = None,
        hold: Hold | None = None,
    ) -> bool:
        """What serves the endpoint ended in a failure now (found down, rolled back by
        itself): it no longer counts as healthy serving. With `op_id` and `hold`, only while
        that hold still holds that operation. False when nothing was written."""
        if (op_id is None) != (hold is None):
            raise ValueError("a fenced write needs both the operation and its hold")
        with self.db.session() as s:
            if op_id is not None and hold is not None and not still_held(s, op_id, hold):
                return False
            return ended(
                s, now=self.db.now(), env=env, endpoint=endpoint, end=End.FAILED, detail=detail
            )


def _interval(row: ServedRow) -> Interval:
    return Interval(
        env=row.env,
        endpoint=row.endpoint,
        model=row.model,
        version=row.version,
        started=aware(row.started_at),
        ended=aware(row.ended_at) if row.ended_at is not None else None,
        end=row.end,
        detail=row.detail,
        operation=row.operation_id,
    )
