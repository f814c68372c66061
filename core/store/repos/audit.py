"""The audit trail as stored: one row per attempt to act; read back newest first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from core.store.db import Database
from core.store.models import AuditRow


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        *,
        action: str,
        actor_id: str,
        actor_name: str,
        command: str,
        env: str,
        endpoint: str,
        outcome: str,
        detail: str = "",
        operation_id: str = "",
        approver: str = "",
        at: datetime | None = None,
    ) -> AuditRow:
        """One row, stamped `at` (now when None)."""
        row = AuditRow(
            at=at or self.db.now(),
            action=action,
            actor_id=actor_id,
            actor_name=actor_name,
            command=command,
            env=env,
            endpoint=endpoint,
            outcome=outcome,
            detail=detail,
            operation_id=operation_id,
            approver=approver,
        )
        with self.db.session() as s:
            s.add(row)
        return row

    def entries(
        self, *, endpoint: str | None = None, since: datetime | None = None, limit: int = 20
    ) -> list[AuditRow]:
        """Newest first; of `endpoint` only and from `since` on, when given."""
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        if endpoint:
            query = query.where(AuditRow.endpoint == endpoint)
        if since:
            query = query.where(AuditRow.at >= self.db.comparable(since))
        with self.db.session() as s:
            return list(s.scalars(query))
