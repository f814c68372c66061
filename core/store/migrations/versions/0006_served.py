"""Served: each stretch of time a version served an endpoint, and how it ended.

The promotion order reads it: a version may go to an environment with `promotion` only once
it has served healthy long enough in the environment before.

Revision ID: 0006_served
Revises: 0004_jobs
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_served"
down_revision: str | None = "0005_registry_events"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "served",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_served_env_model_version", "served", ["env", "model", "version"])
    op.create_index("ix_served_env_endpoint", "served", ["env", "endpoint"])


def downgrade() -> None:
    op.drop_index("ix_served_env_endpoint", "served")
    op.drop_index("ix_served_env_model_version", "served")
    op.drop_table("served")
