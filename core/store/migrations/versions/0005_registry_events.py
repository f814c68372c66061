"""Registry events: each version registered, alias moved or tag set that the bot saw, under a
unique key, so that of several bot processes seeing it only one announces it.

Revision ID: 0005_registry_events
Revises: 0004_jobs
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_registry_events"
down_revision: str | None = "0004_jobs"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "registry_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("model", sa.String(256), nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("registry_events")
