"""Rows that one bot process at a time holds under a lease — jobs, operations, watches — are
taken and let go the same way: a row is taken with one conditional UPDATE that still finds it
free, so when several processes reach for it together exactly one gets it; a process that
stops ends its leases at once, so another takes its rows without waiting for them to lapse.

Each table says what "free" and "mine" mean for it; this module owns how they are taken."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

Row = TypeVar("Row")
Sessions = Callable[[], AbstractContextManager[Session]]


def take(
    sessions: Sessions,
    table: type[Row],
    ids: Iterable[str],
    *,
    free: ColumnElement[bool],
    values: Mapping[str, Any],
) -> Row | None:
    """The first row of `ids` (in order) still `free` when its UPDATE runs, now changed by
    `values`; None when every one was taken by another process first."""
    key = table.id  # type: ignore[attr-defined]
    for row_id in ids:
        with sessions() as s:
            taken = s.execute(
                update(table)
                .where(key == row_id, free)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                return s.get(table, row_id)
    return None


def let_lapse(
    sessions: Sessions, table: type[Any], *, mine: Iterable[ColumnElement[bool]], now: datetime
) -> int:
    """End the leases of the rows `mine` selects (a process that stopped or died): another
    process may take them at once. How many."""
    with sessions() as s:
        done = s.execute(
            update(table)
            .where(*mine)
            .values(lease_expires_at=now - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(done, "rowcount", 0) or 0)
