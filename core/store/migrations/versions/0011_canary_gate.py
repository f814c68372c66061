"""An operation's gate: what an admin decided on its canary (promote, hold, abort), by whom
and at which step, from whichever process.

Revision ID: 0011_canary_gate
Revises: 0010_api_tokens
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011_canary_gate"
down_revision: str | None = "0010_api_tokens"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("gate", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("gate")
