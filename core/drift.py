"""Drift: an environment names a registry alias (`@prod`) for what serves there, and the
alias no longer names what one of its endpoints serves — someone moved or deleted it in the
registry, or the endpoint changed without it.

An endpoint is judged only while no operation holds it (a rollout moves the alias itself, at
its end) and only while it serves (a stopped endpoint has left the endpoints table). Each
drift is announced once, across bot processes sharing the state database: the same claim
registry events are announced by (`RegistryEventRepository.once`), keyed by environment,
endpoint, model, the version the alias names and the version that serves. A new drift is
news again; the same one never is. The announcement is owed (an outbox row) in the
transaction that claims it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.config import Settings
from core.errors import NotFound, RegistryError
from core.outbox import ANNOUNCE, Outbox
from core.registry.aliases import aliases_of
from core.registry.mlflow import Registry
from core.store.models import Endpoint
from core.store.repos.endpoints import EndpointRepository
from core.store.repos.operations import OperationRepository
from core.store.repos.registry_events import RegistryEventRepository

log = logging.getLogger("chatops.registry")
KIND = "drift"  # its rows among the registry events, and its key in an outbox payload


@dataclass(frozen=True)
class Drift:
    """`@alias` of `model` names `named` (None: it was deleted) while `endpoint` in `env`
    serves `serving`."""

    env: str
    endpoint: str
    model: str
    alias: str
    named: int | None
    serving: int
    owed: str = ""  # its outbox row, to be marked sent once it was posted

    @property
    def subject(self) -> str:
        return f"{KIND}:{self.env}:{self.endpoint}:@{self.alias}"

    @property
    def state(self) -> str:
        return f"{'none' if self.named is None else self.named}:{self.serving}"

    @property
    def mark(self) -> str:
        """What /status says of the endpoint: `@prod names v7`."""
        if self.named is None:
            return f"@{self.alias} names no version"
        return f"@{self.alias} names v{self.named}"

    @property
    def text(self) -> str:
        """The announcement in one line: "`@prod` now names iris v7, prod serves v6"."""
        if self.named is None:
            return (
                f"`@{self.alias}` no longer names any version of {self.model}, "
                f"{self.env} serves v{self.serving}"
            )
        return (
            f"`@{self.alias}` now names {self.model} v{self.named}, "
            f"{self.env} serves v{self.serving}"
        )

    @property
    def label(self) -> str:
        return f"{self.model} in {self.env}: {self.mark}, serving v{self.serving}"

    def payload(self) -> dict[str, Any]:
        """The announcement as its outbox row keeps it."""
        kept = asdict(self)
        kept.pop("owed")
        return {KIND: kept}

    @classmethod
    def of(cls, payload: dict[str, Any], *, owed: str) -> Drift:
        """The drift an outbox row kept (`payload`, as `payload()` made it)."""
        kept = payload[KIND]
        named = kept.get("named")
        return cls(
            env=str(kept["env"]),
            endpoint=str(kept["endpoint"]),
            model=str(kept["model"]),
            alias=str(kept["alias"]),
            named=None if named is None else int(named),
            serving=int(kept["serving"]),
            owed=owed,
        )


def is_drift(payload: dict[str, Any]) -> bool:
    """Whether an announcement's outbox row keeps a drift (else a registry event)."""
    return KIND in payload


class DriftGuard:
    """Judges every endpoint of the environments that name an alias against the registry."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        endpoints: EndpointRepository,
        operations: OperationRepository,
        events: RegistryEventRepository,
        outbox: Outbox,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.endpoints = endpoints
        self.operations = operations
        self.events = events
        self.outbox = outbox

    def drifts(self, *, env: str | None = None, model: str | None = None) -> list[Drift]:
        """Every endpoint (of `env`, of `model`, when given) whose environment's alias names
        another version than it serves, or none any more, now. An endpoint an operation
        holds, or held while the registry was read, is not judged. RegistryError when the
        registry fails."""
        aliased = {e.name: e.alias for e in self.settings.environments if e.alias}
        before = self._judged(aliased, env, model)
        if not before:
            return []
        seen = self.events.latest()
        named: dict[str, dict[str, int]] = {}
        for m in sorted({ep.model for ep in before.values()}):
            try:
                named[m] = aliases_of(self.registry, m)
            except NotFound:
                named[m] = {}
        after = self._judged(aliased, env, model)
        found = []
        for where, ep in before.items():
            now = after.get(where)
            if now is None or (now.version, now.since) != (ep.version, ep.since):
                continue  # it changed while the registry was read: judged next time
            alias = aliased[ep.env]
            version = named[ep.model].get(alias)
            if version == ep.version:
                continue
            if version is None and (ep.model, f"alias:{alias}") not in seen:
                continue  # never named anything the bot saw: nothing drifted from it
            found.append(Drift(ep.env, ep.name, ep.model, alias, version, ep.version))
        return found

    def _judged(
        self, aliased: dict[str, str], env: str | None, model: str | None
    ) -> dict[tuple[str, str], Endpoint]:
        """The endpoints to judge now: in an environment with an alias, held by no
        operation."""
        busy = {(op.env, op.endpoint) for op in self.operations.running()}
        return {
            (ep.env, ep.name): ep
            for ep in self.endpoints.every(env)
            if ep.env in aliased and (ep.env, ep.name) not in busy and model in (None, ep.model)
        }

    def offer(self, *, front: str, model: str | None = None) -> list[Drift]:
        """The drifts (of `model`, when given) no bot process announced yet, each now this
        call's to announce (owed to `front` until marked sent). A registry that cannot be
        asked now announces nothing (logged): the next look does."""
        try:
            found = self.drifts(model=model)
        except RegistryError as exc:
            log.warning("could not look for drifted aliases: %s", exc.message)
            return []
        mine = []
        for drift in found:
            owed = self.outbox.row(ANNOUNCE, drift.payload(), front=front)
            claimed = self.events.once(
                kind=KIND,
                model=drift.model,
                version=drift.serving,
                subject=drift.subject,
                state=drift.state,
                source=KIND,
                owed=owed,
            )
            if claimed:
                log.info("drift: %s", drift.label)
                mine.append(replace(drift, owed=owed.id))
        return mine

    def marks(self, *, env: str | None = None) -> dict[tuple[str, str], str]:
        """What /status marks, by (environment, endpoint): `@prod names v7`. Nothing when
        the registry cannot be asked now (logged): status still answers."""
        try:
            return {(d.env, d.endpoint): d.mark for d in self.drifts(env=env)}
        except RegistryError as exc:
            log.warning("status shows no drift: %s", exc.message)
            return {}
