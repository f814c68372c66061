"""Fencing: a write about an operation happens only while the process writing still holds it.

The check is the first statement of the writing transaction and takes the operation's row
for the rest of it (a row lock on PostgreSQL, the write lock on SQLite): a process taking the
operation over meanwhile waits for the write to end, or the write sees it was taken over.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.store.models import Hold, Operation, OperationState


def still_held(session: Session, op_id: str, hold: Hold) -> bool:
    """Whether `hold` still holds operation `op_id` (running, same owner and attempt);
    when it does, nobody else can change the operation until `session` ends."""
    touched = session.execute(
        update(Operation)
        .where(
            Operation.id == op_id,
            Operation.owner == hold.owner,
            Operation.attempts == hold.attempt,
            Operation.state == OperationState.RUNNING,
        )
        .values(owner=Operation.owner)
        .execution_options(synchronize_session=False)
    )
    return getattr(touched, "rowcount", 0) == 1
