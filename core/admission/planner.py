"""The Planner: plans made by the functions that admit the command itself (`Intents`,
`gates`, `authorize`, the Locker's `in_the_way`), never by its writes. A plan takes no lock,
records no operation, asks the registry and the target only to read, and is audited with
the outcome "planned"."""

from __future__ import annotations

from typing import Any

from core.admission.deployer import Deployer
from core.admission.gates import Requirement, promotion_hint
from core.admission.gradual import described, gradual_of
from core.admission.intents import Intent
from core.admission.plans import (
    PLANNED,
    VERB,
    PlanReport,
    a_role,
    deltas,
    diff_text,
    found_text,
    measured_text,
    registry_text,
    resources_text,
    role_name,
    summary_text,
    version_text,
)
from core.admission.roles import NEEDS, Action, Actor, Role, authorize, role_in
from core.errors import ChatOpsError
from core.events import Refusal
from core.execution.steps import serves
from core.marks import person
from core.predictions import Measured
from core.registry import evaluation
from core.registry.mlflow import ModelVersion, Registry
from core.store.models import Endpoint
from core.targets.base import EndpointRef


class Planner:
    """Makes plans with the Deployer's own admission functions, never its writes."""

    def __init__(self, *, deployer: Deployer, registry: Registry) -> None:
        self.deployer = deployer
        self.settings, self.audit, self.locker = deployer.settings, deployer.audit, deployer.locker
        self.repos, self.targets, self.intents = deployer.repos, deployer.targets, deployer.intents
        self.registry = registry
        self.admission = deployer.admission  # the very requirements the command meets

    def deploy(
        self,
        *,
        model: str,
        version: int | None = None,
        alias: str | None = None,
        env: str | None = None,
        actor: Actor,
        command: str,
        override: str | None = None,
        canary: list[int] | None = None,
        shadow: int | None = None,
    ) -> PlanReport | Refusal:
        """What the deploy would do, `override` (an admin's reason to deploy against the
        promotion order) and its canary honoured as the deploy honours them."""
        environment = self.admission.env(env)
        if isinstance(environment, Refusal):
            return self._recorded(Action.DEPLOY, actor, command, env, model, environment)
        intent = self.intents.deploy(
            environment, model=model, version=version, alias=alias, actor=actor
        )
        # the version an alias names now: what the request to the admins would name
        candidate = None if isinstance(intent, Refusal) else self._resolve(model, version, alias)
        if isinstance(candidate, ModelVersion):
            version, alias = candidate.version, None
        hint = promotion_hint(self.settings, model, version, alias, environment.name, actor=actor)
        gradual = gradual_of(environment, canary, shadow)
        if isinstance(gradual, Refusal) and not isinstance(intent, Refusal):
            intent = gradual
        return self._plan(
            Action.DEPLOY,
            environment.name,
            model,
            intent,
            candidate,
            actor,
            command,
            hint,
            override=override,
            gradual=([], 0) if isinstance(gradual, Refusal) else gradual,
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
        environment = self.admission.env(env)
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
        environment = self.admission.env(env)
        if isinstance(environment, Refusal):
            return self._recorded(Action.ROLLBACK, actor, command, env, endpoint, environment)
        intent = self.intents.rollback(environment, endpoint=endpoint, actor=actor)
        return self._plan(Action.ROLLBACK, environment.name, endpoint, intent, None, actor, command)

    def stop(
        self, *, endpoint: str, env: str | None = None, actor: Actor, command: str
    ) -> PlanReport | Refusal:
        environment = self.admission.env(env)
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
        *,
        override: str | None = None,
        gradual: tuple[list[int], int] | None = None,
    ) -> PlanReport:
        environment = self.settings.environment(env)
        assert environment is not None
        permission = Requirement(
            "permission",
            passed=f"{person(actor.shown)} is {a_role(role_in(environment, actor))} of {env}",
            refusal=authorize(environment, actor, action, hint=hint),
        )
        subject = "model" if action is Action.DEPLOY else "endpoint"
        requirements = [permission]
        # an override no one may give here is refused first, as the deploy refuses it
        refused = override is not None and self.admission.override_refused(
            environment, endpoint, override, actor
        )
        if refused:
            requirements.insert(0, Requirement("promotion", refusal=refused))
        details: dict[str, Any] = {}
        if isinstance(intent, Refusal):  # nothing to plan further: the command stops here
            requirements.append(Requirement(subject, refusal=intent))
            summary = f"{VERB[action]} {endpoint} in {env}"
        else:
            requirements += [
                Requirement(subject, passed=found_text(intent)),
                *self.admission.gates(
                    intent, deciding=actor, override=override, promotion=not refused
                ),
                self._lock(env, endpoint),
            ]
            if candidate is None and action is not Action.STOP:
                candidate = self._resolve(intent.model, intent.version, None)
            if isinstance(candidate, Refusal):
                requirements.append(Requirement("version", refusal=candidate))
            mv = candidate if isinstance(candidate, ModelVersion) else None
            summary, details = self._details(intent, mv)
            if gradual is not None:
                first = intent.current is None or not self._up(intent.current)
                details["traffic"] = described(environment, *gradual, first=first)
        report = PlanReport(
            action=action.value,
            env=env,
            endpoint=endpoint,
            summary=summary,
            requirements=tuple(requirements),
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
        details: dict[str, Any] = {"resources": resources_text(intent)}
        if action is Action.STOP:
            details["stops"] = f"every deployment of {intent.endpoint}: {serving}"
            details["registry"] = registry_text(intent, None, live=False)
            return f"stop {intent.endpoint} in {intent.environment.name}", details
        details["serving"] = serving
        if mv is not None:
            details["version"] = version_text(mv)
            details["build"] = self._build(intent, mv)
            if action is not Action.SCALE and current is not None:
                was = self._resolve(current.model, current.version, None)
                details["metrics"] = deltas(mv, was)
                if up and (current.model, current.version) != (mv.model, mv.version):
                    details["diff"] = self._diff(mv, current)
        live = (
            current is not None and mv is not None and up and serves(current, mv, intent.resources)
        )
        details["registry"] = registry_text(intent, mv, live=live)
        return summary_text(intent, mv, live=live), details

    def _diff(self, mv: ModelVersion, current: Endpoint) -> str:
        """What the rollout would score `mv` on beside what serves, and what the newest
        rollout that scored these two versions found."""
        dataset, unread = "", "its run logged none"
        try:
            found = evaluation.logged(self.registry, mv)
            if found is not None:
                dataset, unread = found.described(), evaluation.unread(found)
        except ChatOpsError as exc:
            unread = f"it could not be looked up: {exc.message}"
        except Exception as exc:  # a plan says what it could not find out, and goes on
            unread = f"it could not be looked up: {type(exc).__name__}"
        for op, value in self.repos.operations.remembered("diff"):
            measured = Measured.of(value)
            if measured is not None and (measured.model, measured.version, measured.against) == (
                mv.model,
                mv.version,
                current.version,
            ):
                return diff_text(mv, current, dataset, unread, measured_text(op, measured))
        return diff_text(mv, current, dataset, unread, "")

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

    def _route(
        self, action: Action, env: str, actor: Actor, permission: Requirement, hint: str
    ) -> str:
        if permission.ok:
            return f"{person(actor.shown)} may {VERB[action]} in {env}: no approval is needed"
        environment = self.settings.environment(env)
        assert environment is not None
        if action is Action.DEPLOY and role_in(environment, actor) >= Role.DEVELOPER and hint:
            return (
                f"{person(actor.shown)} would need a promotion request, approved by an admin of "
                f"{env}: {hint}"
            )
        return f"only {role_name(NEEDS[action])}s of {env} can {VERB[action]}"

    def _lock(self, env: str, endpoint: str) -> Requirement:
        return Requirement(
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
