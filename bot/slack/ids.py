"""Identifiers Slack sends back to us: the action ids of the approval buttons."""

from __future__ import annotations

APPROVE = "approve"
REJECT = "reject"
