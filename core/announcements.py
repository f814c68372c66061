"""News from the model registry, announced once: a version registered, an alias moved, a tag
set, with the version's metrics beside those of what serves it now, and where it could go
next (deployed to the default environment by its admins, promoted to production).

Events reach the bot from MLflow's webhook (a tracking server) or by polling the registry
(the embedded one); `Announcements.offer` records each in the state database, and only the
call whose insert wins, in whichever bot process, gets an `Announcement` to post. The
announcement is owed (an outbox row) in the transaction that records the event: a process
that dies or is refused before it posted it leaves it to be posted again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from core.config import Settings
from core.drift import Drift, DriftGuard
from core.errors import ChatOpsError, NotFound, RegistryError
from core.execution.taking import Source, rounds
from core.outbox import ANNOUNCE, Outbox
from core.registry.events import (
    RegistryEvent,
    RegistryEventKind,
    VersionFacts,
    facts,
    version_facts,
)
from core.registry.mlflow import Registry
from core.registry.webhooks import ensure_webhook
from core.store.repos.endpoints import EndpointRepository
from core.store.repos.registry_events import RegistryEventRepository
from core.versions import serving_tag

log = logging.getLogger("chatops.registry")
SEEN = "seen"  # recorded without an announcement: it was so before the bot followed the registry
MAX_SERVING = 5  # what serves, compared in the headline: enough for every environment


class Delivery(StrEnum):
    WEBHOOK = "webhook"  # a tracking server delivers events to the bot's route
    POLL = "poll"  # the bot reads the registry every `registry_poll_s`
    OFF = "off"


def delivery(s: Settings) -> Delivery:
    """How registry events reach the bot: a tracking server's webhook (when the bot has an
    address and a secret for it), else polling, unless `registry_poll_s` is 0."""
    server = s.mlflow_tracking_uri.startswith(("http://", "https://"))
    if server and s.registry_webhook_url and s.registry_webhook_secret is not None:
        return Delivery.WEBHOOK
    return Delivery.POLL if s.registry_poll_s > 0 else Delivery.OFF


@dataclass(frozen=True)
class Served:
    """A version of the model that serves in `env` now, and its run's metrics."""

    env: str
    version: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Announcement:
    event: RegistryEvent
    by: str  # who registered the version, as MLflow knows them ("" when it does not)
    run_id: str | None
    metrics: dict[str, float]
    serving: tuple[Served, ...]
    deploy_env: str | None  # where an admin may deploy it with one click
    promote_env: str | None  # where a developer may ask to promote it
    owed: str = ""  # its outbox row, to be marked sent once it was posted

    def payload(self) -> dict[str, Any]:
        """The announcement as its outbox row keeps it."""
        kept = asdict(self)
        kept.pop("owed")
        return kept

    @classmethod
    def of(cls, payload: dict[str, Any], *, owed: str) -> Announcement:
        """The announcement an outbox row kept (`payload`)."""
        event = dict(payload["event"])
        return cls(
            event=RegistryEvent(**{**event, "kind": RegistryEventKind(event["kind"])}),
            by=str(payload.get("by") or ""),
            run_id=payload.get("run_id"),
            metrics={str(k): float(v) for k, v in (payload.get("metrics") or {}).items()},
            serving=tuple(Served(**s) for s in payload.get("serving") or ()),
            deploy_env=payload.get("deploy_env"),
            promote_env=payload.get("promote_env"),
            owed=owed,
        )

    @property
    def headline_metric(self) -> str | None:
        """The metric to compare: the first (by name) that what serves logged too, else the
        version's first."""
        shared = sorted(k for s in self.serving for k in s.metrics if k in self.metrics)
        return shared[0] if shared else min(self.metrics, default=None)

    @property
    def what(self) -> str:
        e = self.event
        if e.kind is RegistryEventKind.ALIAS_CREATED:
            return f"{e.model} @{e.alias} now points at v{e.version}"
        if e.kind is RegistryEventKind.TAG_SET:
            return f"{e.model} v{e.version} tagged {e.tag}={e.value}"
        return f"{e.model} v{e.version} registered" + (f" by {self.by}" if self.by else "")

    @property
    def comparison(self) -> str:
        """`accuracy 0.931 (prod serves v3: 0.911)`; "" without metrics."""
        name = self.headline_metric
        if name is None:
            return ""
        told = "; ".join(
            f"{s.env} serves v{s.version}"
            + (f": {s.metrics[name]:.4g}" if name in s.metrics else "")
            for s in self.serving
        )
        return f"{name} {self.metrics[name]:.4g}" + (f" ({told})" if told else "")

    @property
    def text(self) -> str:
        """The announcement in one line of plain text."""
        comparison = self.comparison
        return f"{self.what} — {comparison}" if comparison else self.what


class Announcements:
    """Registry events in, announcements out, each once across bot processes."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        events: RegistryEventRepository,
        endpoints: EndpointRepository,
        outbox: Outbox,
        drift: DriftGuard | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.events = events
        self.endpoints = endpoints
        self.outbox = outbox
        self.drift = drift  # what serves against the environments' aliases

    def drifted(self, *, front: str, model: str | None = None) -> list[Drift]:
        """Endpoints whose environment's alias drifted from what they serve (of `model`,
        when given), each announced once across bot processes (owed to `front`)."""
        return [] if self.drift is None else self.drift.offer(front=front, model=model)

    @property
    def delivery(self) -> Delivery:
        return delivery(self.settings)

    def offer(self, event: RegistryEvent, *, source: str, front: str) -> Announcement | None:
        """The announcement of `event` when this call is the first to record it, from any
        bot process; else None (someone else announces it, or did; or the registry has no
        such version: nothing is recorded, nothing offered for a version that is not
        there). A registry that cannot be asked now does not stop it: the event is
        announced without metrics. It is owed to `front` until it is marked sent. What the
        bot speaks of otherwise is recorded, not announced (`spoken_for`)."""
        if self.spoken_for(event):
            self.events.record(event, source=SEEN)
            return None
        try:
            mine = version_facts(self.registry, event.model, event.version)
        except NotFound as exc:
            log.warning("not announcing %s: %s", event.label, exc.message)
            return None
        except RegistryError as exc:
            log.warning("announcing %s without its metrics: %s", event.label, exc.message)
            mine = None
        announcement = self._describe(event, mine)
        owed = self.outbox.row(ANNOUNCE, announcement.payload(), front=front)
        if not self.events.record(event, source=source, owed=owed):
            return None
        return replace(announcement, owed=owed.id)

    def spoken_for(self, event: RegistryEvent) -> bool:
        """Whether the bot tells of `event` another way: the serving tags it writes back
        (the operation's thread says so), and any move of an alias an environment names
        (the deploy that wrote it says so; one made by hand is a drift, announced as such
        with its buttons)."""
        if event.kind is RegistryEventKind.TAG_SET:
            return any(event.tag == serving_tag(e.name) for e in self.settings.environments)
        if event.kind is RegistryEventKind.ALIAS_CREATED:
            return any(event.alias == e.alias for e in self.settings.environments if e.alias)
        return False

    def poll(self, *, front: str) -> list[Announcement]:
        """What changed in the registry since anyone last looked, each announced once. The
        first poll against a state database takes in what is there, announcing nothing;
        tags a new version was registered with come with its announcement."""
        seen = self.events.latest()
        changed = [f for f in facts(self.registry) if seen.get((f.model, f.subject)) != f.state]
        if not self.events.baselined():
            for fact in changed:
                self.events.record(fact, source=SEEN)
            self.events.mark_baselined()
            return []
        born = {
            (f.model, f.version) for f in changed if f.kind is RegistryEventKind.VERSION_CREATED
        }
        found: list[Announcement] = []
        for fact in changed:
            if fact.kind is RegistryEventKind.TAG_SET and (fact.model, fact.version) in born:
                self.events.record(fact, source=SEEN)
                continue
            announcement = self.offer(fact, source="poll", front=front)
            if announcement is not None:
                found.append(announcement)
        return found

    def _describe(self, event: RegistryEvent, mine: VersionFacts | None) -> Announcement:
        """The announcement of `event` (`mine`: what the registry told of its version), with
        as much as the registry tells now of what serves."""
        known: dict[int, VersionFacts | None] = {event.version: mine}

        def of(version: int) -> VersionFacts | None:
            if version not in known:
                try:
                    known[version] = version_facts(self.registry, event.model, version)
                except RegistryError as exc:
                    log.warning("announcing %s without its metrics: %s", event.label, exc.message)
                    known[version] = None
            return known[version]

        serving: dict[tuple[str, int], Served] = {}
        for ep in self.endpoints.every():
            if ep.model == event.model and len(serving) < MAX_SERVING:
                theirs = of(ep.version)
                metrics = theirs.metrics if theirs else {}
                serving.setdefault((ep.env, ep.version), Served(ep.env, ep.version, metrics))
        deploy = self.settings.environment(None)
        promote = next(
            (
                e.name
                for e in self.settings.environments
                if e.is_production and (deploy is None or e.name != deploy.name)
            ),
            None,
        )
        return Announcement(
            event=event,
            by=mine.by if mine else "",
            run_id=mine.run_id if mine else None,
            metrics=mine.metrics if mine else {},
            serving=tuple(serving.values()),
            deploy_env=deploy.name if deploy else None,
            promote_env=promote,
        )

    def follow(
        self, announce: Callable[[Announcement | Drift], None], *, front: str
    ) -> RegistryFeed:
        """How this process follows the registry (`delivery` says how), as sources of its
        taker loop: polling hands each announcement, and each drift it finds, to `announce`
        (owed to `front`); with a tracking server the bot's webhook is registered (retried
        until the server takes it) and drift is looked for every `registry_poll_s`."""
        return RegistryFeed(self, announce, front=front)


class RegistryFeed:
    def __init__(
        self,
        announcements: Announcements,
        announce: Callable[[Announcement | Drift], None],
        *,
        front: str,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.announcements = announcements
        self.announce = announce
        self.front = front
        self.mode = announcements.delivery
        self.webhook_id: str | None = None
        self._clock = clock
        self._retry_s = 1.0  # before registering the webhook again, doubling
        self._retry_at = 0.0

    def sources(self) -> list[Source]:
        settings = self.announcements.settings
        if self.mode is Delivery.POLL:
            return [rounds("registry events", self.poll, settings.registry_poll_s)]
        if self.mode is Delivery.WEBHOOK:
            found = [Source("the MLflow webhook to register", self._registering)]
            if settings.registry_poll_s > 0:  # a delivery may be lost; drift needs no event
                found.append(rounds("drifted aliases", self.look, settings.registry_poll_s))
            return found
        return []

    def poll(self) -> None:
        """Announce what the registry says happened since the last look, then what drifted."""
        try:
            for announcement in self.announcements.poll(front=self.front):
                self.announce(announcement)
        except ChatOpsError as exc:
            log.warning("could not look for registry events: %s", exc.message)
        self.look()

    def look(self, model: str | None = None) -> None:
        """Announce the endpoints (of `model`, when given) whose alias drifted."""
        try:
            for drift in self.announcements.drifted(front=self.front, model=model):
                self.announce(drift)
        except ChatOpsError as exc:
            log.warning("could not look for drifted aliases: %s", exc.message)

    def _registering(self) -> Callable[[], None] | None:
        if self.webhook_id is not None or self._clock() < self._retry_at:
            return None
        return self.register

    def register(self) -> None:
        """Register the bot's webhook with the tracking server; on failure, try again later
        (after 1 s, doubling up to the poll interval)."""
        settings = self.announcements.settings
        secret = settings.registry_webhook_secret
        assert secret is not None
        try:
            self.webhook_id = ensure_webhook(
                self.announcements.registry,
                url=settings.registry_webhook_url,
                secret=secret.get_secret_value(),
            )
        except ChatOpsError as exc:
            log.warning("could not register the MLflow webhook yet: %s", exc.message)
            self._retry_at = self._clock() + self._retry_s
            self._retry_s = min(self._retry_s * 2, max(settings.registry_poll_s, 1.0))
