"""Watch windows after a switch, and endpoints announced down outside any rollout.

A watch is held by one bot process at a time (`owner`, `lease_expires_at`, as operations
are), so it survives the process that began it. `downs` keeps one row per endpoint and
front while an endpoint is down, so each outage is announced once.

Revision ID: 0007_watches
Revises: 0004_jobs
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_watches"
down_revision: str | None = "0006_served"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "watches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("previous", sa.Integer(), nullable=True),
        sa.Column("reply_to", sa.JSON(), nullable=False),
        sa.Column("front", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("downs", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "downs",
        sa.Column("env", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("front", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("where", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("downs")
    op.drop_table("watches")
