"""Approval requests as stored: opened with an expiry, decided once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from core.store.db import Database, aware
from core.store.models import ApprovalRow, new_id


class ApprovalRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def open(
        self,
        *,
        model: str,
        version: int,
        env: str,
        requester_id: str,
        requester_name: str,
        reason: str,
        command: str,
        ttl_s: float,
    ) -> ApprovalRow:
        """A new pending request, open for `ttl_s` from now."""
        now = self.db.now()
        row = ApprovalRow(
            id=new_id("apr"),
            model=model,
            version=version,
            env=env,
            requester_id=requester_id,
            requester_name=requester_name,
            reason=reason,
            command=command,
            state="pending",
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
            where={},
        )
        with self.db.session() as s:
            s.add(row)
        return row

    def get(self, approval_id: str) -> ApprovalRow | None:
        with self.db.session() as s:
            return s.get(ApprovalRow, approval_id)

    def expired(self, row: ApprovalRow) -> bool:
        """Whether the request's time to be decided has run out."""
        return aware(row.expires_at) < self.db.now()

    def settled(self, approval_id: str) -> tuple[bool, ApprovalRow | None]:
        """Whether a request is settled (decided, expired or gone), with its row: what a
        front that waits for a decision reads (the HTTP API's `wait=true`)."""
        row = self.get(approval_id)
        return (row is None or row.state != "pending" or self.expired(row)), row

    def decide(self, approval_id: str, *, state: str, by: str, reason: str) -> bool:
        """Move a pending request to `state`; False when it was no longer pending (someone
        else decided first): one decision, however many clicks arrive at once."""
        with self.db.session() as s:
            result = s.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.state == "pending")
                .values(
                    state=state, decided_by=by, decided_at=self.db.now(), decision_reason=reason
                )
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def listed(
        self, *, state: str | None = None, requester_id: str | None = None, limit: int = 20
    ) -> list[ApprovalRow]:
        """Requests, newest first: those in `state`, those `requester_id` asked for."""
        query = select(ApprovalRow).order_by(ApprovalRow.created_at.desc()).limit(limit)
        if state is not None:
            query = query.where(ApprovalRow.state == state)
        if requester_id is not None:
            query = query.where(ApprovalRow.requester_id == requester_id)
        with self.db.session() as s:
            return list(s.scalars(query))

    def set_where(self, approval_id: str, where: dict[str, Any]) -> None:
        """Where a front shows the request (Slack: channel and message), to update it later."""
        with self.db.session() as s:
            row = s.get(ApprovalRow, approval_id)
            if row is not None:
                row.where = where
