"""The audit trail: one row per attempt to act (`AuditLog`), written out for compliance as
CSV or JSON, oldest first (`export`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from core.events import Notice, Outcome, Refusal
from core.marks import plain
from core.scrub import scrub
from core.store.models import AuditRow, aware
from core.store.repos.audit import AuditRepository

FIELDS = [
    "at",
    "actor_id",
    "actor_name",
    "action",
    "command",
    "env",
    "endpoint",
    "outcome",
    "operation_id",
    "approver",
    "detail",
]


def export(
    audit: AuditRepository, *, fmt: str, since: datetime | None = None, limit: int = 1_000_000
) -> str:
    """Every entry since `since` (all when None) as `csv` or `json` text."""
    rows = list(reversed(audit.entries(since=since, limit=limit)))
    records = [_record(row) for row in rows]
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def _record(row: AuditRow) -> dict[str, str]:
    at = aware(row.at)
    # rows written before texts were scrubbed are cleaned on the way out too; the commands
    # and people core texts name are written as the grammar reads them (`/deploy …`)
    values = {name: scrub(plain(str(getattr(row, name) or ""))) for name in FIELDS}
    values["at"] = at.isoformat()
    return values


class AuditLog:
    """The one writer of the audit trail: one row per attempt to act, however it ended."""

    def __init__(self, audit: AuditRepository) -> None:
        self.trail = audit

    def export(self, *, fmt: str, since: datetime | None = None) -> str:
        """The trail since `since` (all when None) as `csv` or `json` text, oldest first."""
        return export(self.trail, fmt=fmt, since=since)

    def write(
        self,
        action: str,
        *,
        actor_id: str,
        actor_name: str,
        command: str,
        env: str,
        endpoint: str,
        outcome: str,
        detail: str = "",
        operation: str = "",
        approver: str = "",
    ) -> None:
        """One row; `outcome` as people read it: refused, succeeded, failed, requested..."""
        self.trail.add(
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            command=scrub(command),
            env=env,
            endpoint=endpoint,
            outcome=outcome,
            detail=scrub(detail.splitlines()[0])[:500] if detail else "",
            operation_id=operation,
            approver=approver,
        )

    def record(
        self,
        action: str,
        *,
        actor_id: str,
        actor_name: str,
        command: str,
        env: str,
        endpoint: str,
        result: Outcome | Notice | Refusal,
        approver: str = "",
    ) -> None:
        """The attempt and what became of it: refused, succeeded or failed."""
        if isinstance(result, Refusal):
            outcome, operation = "refused", ""
        else:
            outcome = "succeeded" if result.ok else "failed"
            operation = (result.operation if isinstance(result, Outcome) else None) or ""
        self.write(
            action,
            actor_id=actor_id,
            actor_name=actor_name,
            command=command,
            env=env,
            endpoint=endpoint,
            outcome=outcome,
            detail=result.text,
            operation=operation,
            approver=approver,
        )
