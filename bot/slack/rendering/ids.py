"""Identifiers Slack sends back to us: the action ids of the buttons the bot shows."""

from __future__ import annotations

APPROVE = "approve"
REJECT = "reject"
# on a registry announcement
DEPLOY_ANNOUNCED = "announced_deploy"
PROMOTE_ANNOUNCED = "announced_promote"
# on an alias announced drifted from what serves: move it back (Deploy is DEPLOY_ANNOUNCED)
ALIAS_ANNOUNCED = "announced_alias"
ROLLBACK = "rollback"  # on an endpoint announced down to on-call
# on a canary's card: `canary_promote`, `canary_hold`, `canary_abort`
CANARY = "canary"
CANARY_ACTIONS = tuple(f"{CANARY}_{d}" for d in ("promote", "hold", "abort"))
