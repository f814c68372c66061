"""Identifiers Slack sends back to us: the action ids of our buttons."""

from __future__ import annotations

APPROVE = "approve"
REJECT = "reject"
ROLLBACK = "rollback"  # on an endpoint announced down to on-call
