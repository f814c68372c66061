"""Operations taken by bot processes with a lease, and remembered Slack deliveries.

An operation records its plan (what to do, for whom), where it reports, the lock it holds,
and which process runs it until when (`owner`, `lease_expires_at`): another process takes it
over when the lease lapses. `deliveries` keeps the ids of requests already handed on, so a
retry reaching any front runs nothing twice. One endpoint row per (env, name).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("reply_to", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("lock_token", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("front", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("owner", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_operations_state", "operations", ["state"])
    # operations a bot left running before leases existed: lapsed, so a bot takes each over
    # (and fails it, having no plan to go on with) instead of showing it under way for ever
    op.execute(
        "UPDATE operations SET lease_expires_at = created_at, attempts = 1 WHERE state = 'running'"
    )
    with op.batch_alter_table("endpoints") as batch:
        batch.create_unique_constraint("uq_endpoints_env_name", ["env", "name"])
    op.create_table(
        "deliveries",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_constraint("uq_endpoints_env_name", type_="unique")
    op.drop_index("ix_operations_state", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        for column in (
            "attempts",
            "lease_expires_at",
            "owner",
            "front",
            "lock_token",
            "reply_to",
            "plan",
        ):
            batch.drop_column(column)
