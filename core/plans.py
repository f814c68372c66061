"""Plans: what a deploy, scale, rollback or stop would do, and every refusal it would meet,
worked out by the functions that admit the command itself (`Intents`, `gates`, `authorize`,
the Locker's `in_the_way`). A plan changes nothing: it takes no lock, records no operation,
and asks the registry and the target only to read. It is audited, as a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.admission import Admission, Check, promotion_hint
from core.deployer import Deployer
from core.errors import ChatOpsError
from core.events import Refusal
from core.intents import Intent
from core.models import Endpoint
from core.registry.mlflow import ModelVersion, Registry
from core.roles import NEEDS, Action, Actor, Role, authorize, role_in
from core.rollout import serves
from core.targets.base import EndpointRef

PLANNED = "planned"  # the audit outcome of every plan
_VERB = {
    Action.DEPLOY: "deploy",
    Action.SCALE: "scale",
    Action.ROLLBACK: "roll back",
    Action.STOP: "stop",
}


@dataclass(frozen=True)
class MetricDelta:
    """One metric both versions logged: the one that would serve against the one serving."""

    name: str
    candidate: float
    serving: float

    @property
    def delta(self) -> float:
        return self.candidate - self.serving

    def describe(self) -> str:
        return (
            f"{self.name} {_num(self.candidate)} vs {_num(self.serving)}, {_num(self.delta, '+')}"
        )


@dataclass(frozen=True)
class PlanReport:
    """What a command would do; `ok` when it would go ahead. Every text is for people."""

    action: str
    env: str
    endpoint: str
    summary: str  # what it would do, in one line
    checks: tuple[Check, ...]
    version: str = ""  # the version that would serve, and its run
    serving: str = ""  # what serves now
    metrics: tuple[MetricDelta, ...] = ()
    resources: str = ""  # before -> after
    build: str = ""
    approvers: tuple[str, ...] = ()  # the admins of the environment, as settings name them
    route: str = ""  # whether the asker may do it, or how to ask for it
    stops: str = ""  # a stop: what would stop
    underway: tuple[str, ...] = ()  # operations on the endpoint now

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def verdict(self) -> str:
        refused = next((c for c in self.checks if not c.ok), None)
        if refused is None:
            return "it would go ahead"
        return f"it would be refused: {refused.text}"

    def rows(self) -> list[tuple[str, str]]:
        """(what, found) for each part of the plan that applies, in reading order."""
        rows = [
            ("version", self.version),
            ("serving now", self.serving),
            ("metrics", "; ".join(m.describe() for m in self.metrics)),
            ("resources", self.resources),
            ("build", self.build),
            ("would stop", self.stops),
            ("approval", self.route),
            ("admins", ", ".join(self.approvers)),
            ("under way", "; ".join(self.underway)),
        ]
        return [(k, v) for k, v in rows if v]

    @property
    def text(self) -> str:
        lines = [f"Plan: {self.summary} (nothing changes until the command is run)"]
        lines += [f"{k}: {v}" for k, v in self.rows()]
        lines += [f"{'ok' if c.ok else 'REFUSED'} {c.name}: {c.text}" for c in self.checks]
        lines.append(self.verdict[0].upper() + self.verdict[1:] + ".")
        return "\n".join(lines)


class Planner(Admission):
    """Makes plans with the Deployer's own admission functions, never its writes."""

    def __init__(self, *, deployer: Deployer, registry: Registry) -> None:
        self.deployer = deployer
        self.settings, self.audit, self.locker = deployer.settings, deployer.audit, deployer.locker
        self.repos, self.targets, self.intents = deployer.repos, deployer.targets, deployer.intents
        self.registry = registry

    def deploy(
        self,
        *,
        model: str,
        version: int | None = None,
        alias: str | None = None,
        env: str | None = None,
        actor: Actor,
        command: str,
    ) -> PlanReport | Refusal:
        environment = self._env(env)
        if isinstance(environment, Refusal):
            return self._recorded(Action.DEPLOY, actor, command, env, model, environment)
        intent = self.intents.deploy(
            environment, model=model, version=version, alias=alias, actor=actor
        )
        # the version an alias names now: what the request to the admins would name
        candidate = None if isinstance(intent, Refusal) else self._resolve(model, version, alias)
        if isinstance(candidate, ModelVersion):
            version, alias = candidate.version, None
        hint = promotion_hint(self.settings, model, version, alias, environment.name)
        return self._plan(
            Action.DEPLOY, environment.name, model, intent, candidate, actor, command, hint
        )

    def scale(
        self,
        *,
        endpoint: str,
        cpu: float | None = None,
        memory_mb: int | None = None,
        replicas: int | None = None,
        gpus: int | None = None,
        env: str | None = None,
        actor: Actor,
        command: str,
    ) -> PlanReport | Refusal:
        environment = self._env(env)
        if isinstance(environment, Refusal):
            return self._recorded(Action.SCALE, actor, command, env, endpoint, environment)
        intent = self.intents.scale(
            environment,
            endpoint=endpoint,
            cpu=cpu,
            memory_mb=memory_mb,
            replicas=replicas,
            gpus=gpus,
            actor=actor,
        )
        return self._plan(Action.SCALE, environment.name, endpoint, intent, None, actor, command)

    def rollback(
        self, *, endpoint: str, env: str | None = None, actor: Actor, command: str
    ) -> PlanReport | Refusal:
        environment = self._env(env)
        if isinstance(environment, Refusal):
            return self._recorded(Action.ROLLBACK, actor, command, env, endpoint, environment)
        intent = self.intents.rollback(environment, endpoint=endpoint, actor=actor)
        return self._plan(Action.ROLLBACK, environment.name, endpoint, intent, None, actor, command)

    def stop(
        self, *, endpoint: str, env: str | None = None, actor: Actor, command: str
    ) -> PlanReport | Refusal:
        environment = self._env(env)
        if isinstance(environment, Refusal):
            return self._recorded(Action.STOP, actor, command, env, endpoint, environment)
        intent = self.intents.stop(environment, endpoint=endpoint, actor=actor)
        return self._plan(Action.STOP, environment.name, endpoint, intent, None, actor, command)

    # -- one plan ----------------------------------------------------------------------------
    def _plan(
        self,
        action: Action,
        env: str,
        endpoint: str,
        intent: Intent | Refusal,
        candidate: ModelVersion | Refusal | None,
        actor: Actor,
        command: str,
        hint: str = "",
    ) -> PlanReport:
        environment = self.settings.environment(env)
        assert environment is not None
        permission = Check(
            "permission",
            passed=f"{actor.shown} is an {_role(role_in(environment, actor))} of {env}",
            refusal=authorize(environment, actor, action, hint=hint),
        )
        subject = "model" if action is Action.DEPLOY else "endpoint"
        checks = [permission]
        details: dict[str, Any] = {}
        if isinstance(intent, Refusal):  # nothing to plan further: the command stops here
            checks.append(Check(subject, refusal=intent))
            summary = f"{_VERB[action]} {endpoint} in {env}"
        else:
            checks += [
                Check(subject, passed=_found(intent)),
                *self.deployer.gates(intent),
                self._lock(env, endpoint),
            ]
            if candidate is None and action is not Action.STOP:
                candidate = self._resolve(intent.model, intent.version, None)
            if isinstance(candidate, Refusal):
                checks.append(Check("version", refusal=candidate))
            mv = candidate if isinstance(candidate, ModelVersion) else None
            summary, details = self._details(intent, mv)
        report = PlanReport(
            action=action.value,
            env=env,
            endpoint=endpoint,
            summary=summary,
            checks=tuple(checks),
            approvers=tuple(environment.admins),
            route=self._route(action, env, actor, permission, hint),
            underway=self._underway(env, endpoint),
            **details,
        )
        self.audit.write(
            action.value,
            actor_id=actor.id,
            actor_name=actor.shown,
            command=command,
            env=env,
            endpoint=endpoint,
            outcome=PLANNED,
            detail=f"{report.summary}: {report.verdict}",
        )
        return report

    def _details(self, intent: Intent, mv: ModelVersion | None) -> tuple[str, dict[str, Any]]:
        """The plan's summary, and what it shows of the versions, resources and build."""
        current, action = intent.current, intent.action
        up = self._up(current)
        serving = (
            f"{current.model} v{current.version}, {'up' if up else 'down'}, at {current.url}"
            if current
            else f"nothing serves {intent.endpoint} in {intent.environment.name}"
        )
        details: dict[str, Any] = {"resources": _resources(intent)}
        if action is Action.STOP:
            details["stops"] = f"every deployment of {intent.endpoint}: {serving}"
            return f"stop {intent.endpoint} in {intent.environment.name}", details
        details["serving"] = serving
        if mv is not None:
            details["version"] = _version(mv)
            details["build"] = self._build(intent, mv)
            if action is not Action.SCALE and current is not None:
                was = self._resolve(current.model, current.version, None)
                details["metrics"] = _deltas(mv, was)
        live = (
            current is not None and mv is not None and up and serves(current, mv, intent.resources)
        )
        return _summary(intent, mv, live=live), details

    def _up(self, current: Endpoint | None) -> bool:
        target = self.targets.get(current.env) if current else None
        if current is None or target is None:
            return False
        return target.health(EndpointRef(current.env, current.name)).up

    def _resolve(
        self, model: str, version: int | None, alias: str | None
    ) -> ModelVersion | Refusal:
        """The version as the rollout's first step would resolve it, or why that step fails."""
        try:
            return self.registry.resolve(model, version=version, alias=alias)
        except ChatOpsError as exc:
            return Refusal(f"the rollout would fail at its first step: {exc.message}")

    def _route(self, action: Action, env: str, actor: Actor, permission: Check, hint: str) -> str:
        if permission.ok:
            return f"{actor.shown} may {_VERB[action]} in {env}: no approval is needed"
        environment = self.settings.environment(env)
        assert environment is not None
        if action is Action.DEPLOY and role_in(environment, actor) >= Role.DEVELOPER and hint:
            return (
                f"{actor.shown} would need a promotion request, approved by an admin of "
                f"{env}: {hint}"
            )
        return f"only {_role(NEEDS[action])}s of {env} can {_VERB[action]}"

    def _lock(self, env: str, endpoint: str) -> Check:
        return Check(
            "lock",
            passed=f"{endpoint} in {env} is free: no freeze, no operation holds it",
            refusal=self.locker.in_the_way(env, endpoint),
        )

    def _underway(self, env: str, endpoint: str) -> tuple[str, ...]:
        return tuple(
            f"{op.kind} by {op.requested_by}, {'at ' + op.step if op.step else op.state} ({op.id})"
            for op in self.repos.operations.running()
            if (op.env, op.endpoint) == (env, endpoint)
        )

    def _build(self, intent: Intent, mv: ModelVersion) -> str:
        target = self.targets.get(intent.environment.name)
        if target is None:
            return ""
        try:
            found = target.built(EndpointRef(intent.environment.name, intent.endpoint), mv)
        except ChatOpsError as exc:
            return f"could not ask {target.kind}: {exc.message}"
        if found is None:
            return f"new: {mv.label} would be built on {target.kind}"
        return f"reused: {found}"

    def _recorded(
        self,
        action: Action,
        actor: Actor,
        command: str,
        env: str | None,
        endpoint: str,
        refusal: Refusal,
    ) -> Refusal:
        self.audit.write(
            action.value,
            actor_id=actor.id,
            actor_name=actor.shown,
            command=command,
            env=env or self.settings.default_environment,
            endpoint=endpoint,
            outcome=PLANNED,
            detail=f"no plan: {refusal.text}",
        )
        return refusal


def _role(role: Role) -> str:
    return {Role.ADMIN: "admin", Role.DEVELOPER: "developer", Role.VIEWER: "viewer"}[role]


def _found(intent: Intent) -> str:
    current = intent.current
    if intent.action is Action.DEPLOY:
        return f"{intent.model} is a registered model"
    if intent.action is Action.ROLLBACK and current is not None:
        return f"{intent.endpoint} served v{intent.version} before v{current.version}"
    return f"{intent.endpoint} serves {intent.model} v{intent.version} in {intent.environment.name}"


def _summary(intent: Intent, mv: ModelVersion | None, *, live: bool) -> str:
    env, name, current = intent.environment.name, intent.endpoint, intent.current
    if intent.action is Action.ROLLBACK and current is not None:
        return f"roll {name} in {env} back from v{current.version} to v{intent.version}"
    if intent.action is Action.SCALE:
        return f"scale {name} in {env} to {intent.resources.describe()}"
    what = intent.what
    if mv is not None:
        what = f"@{intent.alias} (now v{mv.version})" if intent.alias else f"v{mv.version}"
    line = f"deploy {intent.model} {what} to {env}"
    if live:
        return f"{line}: it serves so already, the deploy would change nothing"
    return line + (f", in place of v{current.version}" if current else "")


def _version(mv: ModelVersion) -> str:
    run = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
    if mv.run_name:
        run += f" ({mv.run_name})"
    return f"{mv.label}, {run}, registered {mv.created_at:%Y-%m-%d %H:%M} UTC"


def _deltas(
    mv: ModelVersion | None, serving: ModelVersion | Refusal | None
) -> tuple[MetricDelta, ...]:
    if mv is None or not isinstance(serving, ModelVersion):
        return ()
    shared = sorted(set(mv.metrics) & set(serving.metrics))
    return tuple(MetricDelta(k, mv.metrics[k], serving.metrics[k]) for k in shared)


def _resources(intent: Intent) -> str:
    after = intent.resources.describe()
    current = intent.current
    if intent.action is Action.STOP:
        return f"{after} -> nothing"
    if current is None:
        return f"none -> {after} (the defaults of {intent.environment.name})"
    before = current.resources.describe()
    return f"{before} (unchanged)" if before == after else f"{before} -> {after}"


def _num(value: float, sign: str = "") -> str:
    return f"{value:{sign}.3f}" if abs(value) < 1000 else f"{value:{sign}.4g}"
