"""The outbox: what the bot owes people outside its database, kept as rows.

A row is added in the transaction that decides what it says (an operation's end, a job's
answer), held by the process that added it for a lease, and marked sent once sent. If that
process dies first, the lease lapses (or its front ends it at once) and any bot process
takes the row and sends it: nothing owed is lost, and a row marked sent is never sent again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from core.store.db import Database
from core.store.models import KEEP_DONE_S, OwedRow, OwedState, aware, new_id
from core.store.repos import leased
from core.store.retention import Retention


class OutboxRepository:
    def __init__(self, db: Database, *, keep_s: float = KEEP_DONE_S) -> None:
        self.db = db
        # a sent row is kept as long as the job it answered
        self.retention = Retention(keep_s)

    def row(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        owner: str,
        lease_s: float,
        front: str = "",
        operation_id: str = "",
        job_id: str = "",
    ) -> OwedRow:
        """A row of what is owed, held by `owner` for `lease_s`, for a repository to add in
        the transaction that records what it reports (`add` adds it on its own)."""
        now = self.db.now()
        return OwedRow(
            id=new_id("owed"),
            kind=kind,
            operation_id=operation_id,
            job_id=job_id,
            front=front,
            payload=payload,
            state=OwedState.PENDING,
            owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=1,
            created_at=now,
        )

    def add(self, row: OwedRow) -> str:
        """Record `row` (part of the caller's open transaction, if any); its id."""
        with self.db.session() as s:
            s.add(row)
        return row.id

    def sent(self, row_id: str) -> None:
        """Mark a row sent: nobody sends it again. Rows sent over `keep_s` ago go, now and
        then (a job they answered is gone by then too)."""
        now = self.db.now()
        with self.db.session() as s:
            s.execute(
                update(OwedRow)
                .where(OwedRow.id == row_id)
                .values(state=OwedState.SENT, sent_at=now, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
        if (before := self.retention.due(now)) is not None:
            self.forget_sent_before(before)

    def forget_sent_before(self, moment: datetime) -> int:
        """Delete the rows sent before `moment`; how many."""
        old = self.db.comparable(moment)
        with self.db.session() as s:
            gone = s.execute(
                delete(OwedRow).where(OwedRow.state == OwedState.SENT, OwedRow.sent_at < old)
            )
            return int(getattr(gone, "rowcount", 0) or 0)

    def claim(
        self, owner: str, *, lease_s: float, kinds: frozenset[str], fronts: frozenset[str]
    ) -> OwedRow | None:
        """The oldest pending row of `kinds`, to be sent by one of `fronts`, whose holder's
        lease lapsed (its process died before sending it), now held by `owner`."""
        now = self.db.now()
        free = and_(
            OwedRow.state == OwedState.PENDING,
            or_(
                OwedRow.lease_expires_at.is_(None),
                OwedRow.lease_expires_at < self.db.comparable(now),
            ),
        )
        query = (
            select(OwedRow.id)
            .where(free, OwedRow.kind.in_(sorted(kinds)), OwedRow.front.in_(sorted(fronts)))
            .order_by(OwedRow.created_at)
            .limit(20)
        )
        with self.db.session() as s:
            candidates = list(s.scalars(query))
        return leased.take(
            self.db.session,
            OwedRow,
            candidates,
            free=free,
            values={
                "owner": owner,
                "lease_expires_at": now + timedelta(seconds=lease_s),
                "attempts": OwedRow.attempts + 1,
            },
        )

    def of_job(self, job_id: str) -> list[OwedRow]:
        """What a job's answer recorded, oldest first."""
        query = select(OwedRow).where(OwedRow.job_id == job_id).order_by(OwedRow.created_at)
        with self.db.session() as s:
            return list(s.scalars(query))

    def of_operation(self, op_id: str) -> list[OwedRow]:
        query = select(OwedRow).where(OwedRow.operation_id == op_id).order_by(OwedRow.created_at)
        with self.db.session() as s:
            return list(s.scalars(query))

    def let_lapse(self, owner: str) -> int:
        """End `owner`'s leases on rows it has not sent (its process stopped or died)."""
        mine = (OwedRow.owner == owner, OwedRow.state == OwedState.PENDING)
        return leased.let_lapse(self.db.session, OwedRow, mine=mine, now=self.db.now())

    def unsent(self) -> list[tuple[str, int, datetime]]:
        """What is owed and not yet sent, by kind: (kind, how many, when the oldest was
        recorded)."""
        query = (
            select(OwedRow.kind, func.count(), func.min(OwedRow.created_at))
            .where(OwedRow.state == OwedState.PENDING)
            .group_by(OwedRow.kind)
        )
        with self.db.session() as s:
            return [(kind, int(n), aware(first)) for kind, n, first in s.execute(query).all()]
