"""What a front that waits for a request's decision reads (the HTTP API's `wait=true`): the
request in the state database alone, so the front loads none of admission itself."""

from __future__ import annotations

from collections.abc import Callable

from core.store.db import Database
from core.store.models import ApprovalRow
from core.store.repos.approvals import ApprovalRepository


def settled_in(db: Database) -> Callable[[str], tuple[bool, ApprovalRow | None]]:
    """Whether a request is settled (decided, expired or gone), with its row."""
    return ApprovalRepository(db).settled
