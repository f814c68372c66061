"""The sentinel between rollouts: an endpoint that goes down while nothing changes it (no
operation under way, no watch window) is announced once, per front, until it is up again,
with the offer to roll it back (the Deployer's `/rollback` while it still serves that version:
admins only).

Every bot process with a front looks (health checks are cheap and read-only); the record of
the announcement, one row per endpoint and front, decides which one tells.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime

from core.errors import ChatOpsError
from core.marks import command
from core.oncall.alerts import Alert, AlertKind, Alerts
from core.outbox import ALERT, Outbox
from core.store.models import DownRow, Endpoint, OwedRow
from core.store.repos import Repositories
from core.targets.base import EndpointRef, Target

log = logging.getLogger("chatops.core")


class Sentinel:
    def __init__(
        self,
        *,
        repos: Repositories,
        targets: dict[str, Target],
        alerts: Alerts,
        outbox: Outbox,
        scan_s: float,
        down_checks: int,
    ) -> None:
        self.repos = repos
        self.targets = targets
        # an outage and its end are owed in the transaction that records them
        self.outbox = outbox
        self.alerts = alerts
        self.scan_s = scan_s
        self.down_checks = down_checks
        self._downs: dict[tuple[str, str], int] = {}  # failed checks in a row, here
        self._scanned: datetime | None = None

    def tick(self, now: datetime) -> None:
        """Look at every endpoint, when `scan_s` passed since the last look."""
        if self._scanned is not None and (now - self._scanned).total_seconds() < self.scan_s:
            return
        self._scanned = now
        watched = {(w.env, w.endpoint) for w in self.repos.watches.watching()}
        busy = {(op.env, op.endpoint) for op in self.repos.operations.running()}
        announced = {(d.env, d.endpoint): d for d in self.repos.watches.downs(self.alerts.front)}
        endpoints = self.repos.endpoints.every()
        for gone in set(announced) - {(e.env, e.name) for e in endpoints}:
            self._up(*gone, text=STOPPED.format(endpoint=gone[1], env=gone[0]))
        for ep in endpoints:
            key = (ep.env, ep.name)
            if key in announced and announced[key].version != ep.version:
                # another version serves since: that outage is over, whatever comes next
                text = CHANGED_UP.format(endpoint=ep.name, env=ep.env, model=ep.model, v=ep.version)
                self._up(ep.env, ep.name, text=text)
                del announced[key]
            target = self.targets.get(ep.env)
            if target is None or key in watched or key in busy:
                self._downs.pop(key, None)  # what changes it now, or watches it, tells
                continue
            try:
                health = target.health(EndpointRef(ep.env, ep.name))
            except ChatOpsError as exc:  # health never raises; a target that does is logged
                log.warning("could not check %s in %s: %s", ep.name, ep.env, exc.message)
                continue
            if health.up:
                self._downs.pop(key, None)
                if key in announced:
                    up = UP.format(endpoint=ep.name, env=ep.env, model=ep.model, v=ep.version)
                    self._up(ep.env, ep.name, text=up)
                continue
            self._downs[key] = self._downs.get(key, 0) + 1
            if key not in announced and self._downs[key] >= self.down_checks:
                self._announce(ep, health.detail)

    def _announce(self, ep: Endpoint, detail: str) -> None:
        front = self.alerts.front
        previous = self.repos.operations.previous_version(ep.env, ep.name, ep.version)
        offer = (
            OFFER.format(previous=previous, endpoint=ep.name, env=ep.env)
            if previous is not None
            else NO_OFFER.format(endpoint=ep.name, env=ep.env)
        )
        text = DOWN.format(
            endpoint=ep.name,
            env=ep.env,
            detail=detail or "it does not answer",
            model=ep.model,
            v=ep.version,
            offer=offer,
        )
        alert = Alert(
            AlertKind.DOWN, ep.env, ep.name, text, version=ep.version, rollback_to=previous
        )
        owed = self.outbox.row(ALERT, asdict(alert), front=front)
        if not self.repos.watches.announce_down(
            ep.env, ep.name, front=front, version=ep.version, owed=owed
        ):
            return  # another bot process told it
        log.warning("%s", text)
        self.tell(alert, owed.id)

    def tell(self, alert: Alert, owed: str) -> None:
        """Tell an owed alert and mark it sent; where a DOWN was shown is kept, for its UP
        to take the offer away."""
        where = self.alerts.tell(alert)
        if alert.kind is AlertKind.DOWN:
            self.repos.watches.shown_down(
                alert.env, alert.endpoint, front=self.alerts.front, where=where
            )
        self.outbox.sent(owed)

    def _up(self, env: str, endpoint: str, *, text: str) -> None:
        front = self.alerts.front
        told: list[tuple[Alert, str]] = []

        def owe(down: DownRow) -> OwedRow:
            alert = Alert(AlertKind.UP, env, endpoint, text, oncall=dict(down.where))
            row = self.outbox.row(ALERT, asdict(alert), front=front)
            told.append((alert, row.id))
            return row

        if self.repos.watches.up_again(env, endpoint, front=front, owe=owe) is not None:
            log.info("%s", text)
            for alert, owed in told:
                self.tell(alert, owed)


# -- texts -------------------------------------------------------------------------------
DOWN = (
    ":red_circle: {endpoint} in {env} is down ({detail}), and no operation is changing it. "
    "It serves {model} v{v}. {offer}"
)
OFFER = (
    "An admin can roll it back to v{previous} (`" + command("rollback {endpoint} in {env}") + "`)."
)
NO_OFFER = (
    "It has served no other version, so there is nothing to roll back to: an admin can "
    "deploy it again with `" + command("deploy {endpoint} v<N> to {env}") + "`."
)
UP = ":large_green_circle: {endpoint} in {env} is up again ({model} v{v})."
STOPPED = "{endpoint} in {env} is no longer deployed."
CHANGED_UP = "{endpoint} in {env} serves {model} v{v} now."
