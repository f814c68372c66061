"""The audit trail written out for compliance: CSV or JSON, oldest first."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from core.store import AuditRow, Store, aware

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


def export(store: Store, *, fmt: str, since: datetime | None = None, limit: int = 1_000_000) -> str:
    """Every entry since `since` (all when None) as `csv` or `json` text."""
    rows = list(reversed(store.audit_entries(since=since, limit=limit)))
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
    values = {name: str(getattr(row, name) or "") for name in FIELDS}
    values["at"] = at.isoformat()
    return values
