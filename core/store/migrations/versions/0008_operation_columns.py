"""What was kept in an operation's JSON columns and looked up by key becomes columns of its
own: the job that recorded it (`job_id`, was `reply_to["job"]`) and who asked to cancel it
(`cancelled_by`, was `remote["cancelled_by"]`).

Revision ID: 0008_operation_columns
Revises: 0007_watches
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008_operation_columns"
down_revision: str | None = "0007_watches"
branch_labels: str | None = None
depends_on: str | None = None


def _loaded(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value or "{}")
    return value if isinstance(value, dict) else {}


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("job_id", sa.String(32), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("cancelled_by", sa.String(128), nullable=False, server_default="")
        )
        batch.create_index("ix_operations_job_id", ["job_id"])
    operations = sa.table(
        "operations",
        sa.column("id", sa.String),
        sa.column("reply_to", sa.JSON),
        sa.column("remote", sa.JSON),
        sa.column("job_id", sa.String),
        sa.column("cancelled_by", sa.String),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(operations.c.id, operations.c.reply_to, operations.c.remote)):
        job = str(_loaded(row.reply_to).get("job") or "")
        by = str(_loaded(row.remote).get("cancelled_by") or "")
        if job or by:
            conn.execute(
                operations.update()
                .where(operations.c.id == row.id)
                .values(job_id=job[:32], cancelled_by=by[:128])
            )


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_index("ix_operations_job_id")
        batch.drop_column("cancelled_by")
        batch.drop_column("job_id")
