"""Identifiers Slack sends back to us: the action ids of the buttons the bot shows."""

from __future__ import annotations

APPROVE = "approve"
REJECT = "reject"
# on a registry announcement
DEPLOY_ANNOUNCED = "announced_deploy"
PROMOTE_ANNOUNCED = "announced_promote"
ROLLBACK = "rollback"  # on an endpoint announced down to on-call
