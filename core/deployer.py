"""The Deployer: every change to what serves goes through here, as a recorded operation.

deploy/scale/rollback: authorise -> check limits -> lock the endpoint -> record a durable
Operation with its plan -> run it (`core.rollout`), here or in whichever bot process takes
it. Refusals are audited here; an operation's outcome is audited when it ends.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from core.audit import AuditLog
from core.config import Environment, Settings
from core.errors import ChatOpsError
from core.events import EndpointStatus, Notice, Outcome, Refusal, Reporter
from core.leases import Leases
from core.models import Operation, aware
from core.policy import check_limits
from core.registry.mlflow import Registry
from core.repos import Repositories
from core.resources import Resources
from core.roles import Action, Actor, authorize
from core.rollout import Rollouts, locked_text
from core.run import Plan, where_of
from core.targets.base import EndpointRef, Target

log = logging.getLogger("chatops.core")
R = TypeVar("R", bound=Outcome | Notice | Refusal)


class Deployer:
    def __init__(
        self,
        *,
        settings: Settings,
        repos: Repositories,
        registry: Registry,
        targets: dict[str, Target],
        leases: Leases | None = None,
    ) -> None:
        self.settings = settings
        self.repos = repos
        self.registry = registry
        self.targets = targets
        self.audit = AuditLog(repos.audit)
        self.rollouts = Rollouts(
            settings=settings,
            repos=repos,
            registry=registry,
            targets=targets,
            leases=leases or Leases(repos.operations, lease_s=settings.lease_s),
            audit=self.audit,
        )

    def execute(self, op: Operation, reporter: Reporter) -> Outcome:
        """Run an operation this process took from the database (`OperationRepository.claim`)."""
        return self.rollouts.execute(op, reporter)

    def _env(self, name: str | None) -> Environment | Refusal:
        env = self.settings.environment(name)
        if env is None:
            known = ", ".join(e.name for e in self.settings.environments)
            return Refusal(f"there is no environment called `{name}` (environments: {known})")
        return env

    def _admit(
        self,
        action: Action,
        actor: Actor,
        command: str,
        env: str | None,
        endpoint: str,
        *,
        hint: str = "",
        approver: Actor | None = None,
    ) -> Environment | Refusal:
        """The environment, if it exists and `actor` (or `approver`) may act there; else the
        refusal, already audited."""
        environment = self._env(env)
        if isinstance(environment, Refusal):
            return self._audited(action, actor, command, env, endpoint, environment)
        refusal = authorize(environment, approver or actor, action, hint=hint)
        if refusal:
            return self._audited(action, actor, command, env, endpoint, refusal, approver)
        return environment

    # -- locks -----------------------------------------------------------------------------
    def freeze(
        self, *, endpoint: str, env: str | None, reason: str, actor: Actor, command: str
    ) -> Notice | Refusal:
        """A sticky lock: no rollout of the endpoint until an admin unlocks it."""
        environment = self._admit(Action.LOCK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        attempt = self.repos.locks.try_lock(
            environment.name,
            endpoint,
            holder=actor.shown,
            reason=reason,
            ttl_s=None,
            sticky=True,
        )
        result: Notice | Refusal = (
            Notice(
                f"{endpoint} in {environment.name} is frozen: {reason}. Nothing deploys or "
                f"scales it until an admin types `/unlock {endpoint} in {environment.name}`."
            )
            if attempt.acquired
            else Refusal(locked_text(environment.name, endpoint, attempt))
        )
        return self._audited(Action.LOCK, actor, command, environment.name, endpoint, result)

    def unlock(
        self, *, endpoint: str, env: str | None, actor: Actor, command: str
    ) -> Notice | Refusal:
        environment = self._admit(Action.UNLOCK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        dropped = self.repos.locks.release(environment.name, endpoint)
        result: Notice | Refusal = (
            Notice(
                f"{endpoint} in {environment.name} is unlocked (it was held by "
                f"{dropped.holder} for: {dropped.reason})."
            )
            if dropped
            else Refusal(f"{endpoint} in {environment.name} is not locked")
        )
        return self._audited(Action.UNLOCK, actor, command, environment.name, endpoint, result)

    # -- deploy ----------------------------------------------------------------------------
    def deploy(
        self,
        *,
        model: str,
        version: int | None = None,
        alias: str | None = None,
        env: str | None = None,
        actor: Actor,
        command: str,
        reporter: Reporter,
        approver: Actor | None = None,
        wait: bool = True,
    ) -> Outcome | Refusal:
        """Serve `model` at `version` (or `alias`) on the endpoint of the same name in `env`.
        With `approver`, it is that admin's approval of `actor`'s request that is checked.
        `wait=False` queues the operation for any bot process instead of running it here."""
        what = f"v{version}" if version is not None else f"@{alias}"
        where = self.settings.environment(env)
        hint = f"ask for it with `/promote {model} {what} to {where.name}`" if where else ""
        environment = self._admit(
            Action.DEPLOY, actor, command, env, model, hint=hint, approver=approver
        )
        if isinstance(environment, Refusal):
            return environment
        current = self.repos.endpoints.get(environment.name, model)
        resources = current.resources if current else environment.default
        headline = f"{actor.shown} is deploying {model} {what} to {environment.name}"
        if approver:
            headline += f" (approved by {approver.shown})"
        return self._rollout(
            Action.DEPLOY,
            environment=environment,
            endpoint=model,
            actor=actor,
            command=command,
            reporter=reporter,
            resources=resources,
            headline=headline,
            model=model,
            version=version,
            alias=alias,
            approver=approver,
            wait=wait,
        )

    # -- scale -----------------------------------------------------------------------------
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
        reporter: Reporter,
        wait: bool = True,
    ) -> Outcome | Refusal:
        """Serve the same version with new resources: new deployment first, old one after."""
        environment = self._admit(Action.SCALE, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        current = self.repos.endpoints.get(environment.name, endpoint)
        if current is None:
            known = (
                ", ".join(e.name for e in self.repos.endpoints.every(environment.name)) or "none"
            )
            missing = Refusal(
                f"there is no endpoint `{endpoint}` in {environment.name} (endpoints: "
                f"{known}); deploy it first with `/deploy {endpoint} v<N>`"
            )
            return self._audited(Action.SCALE, actor, command, env, endpoint, missing)
        resources = Resources(
            cpu=cpu if cpu is not None else current.cpu,
            memory_mb=memory_mb if memory_mb is not None else current.memory_mb,
            replicas=replicas if replicas is not None else current.replicas,
            gpus=gpus if gpus is not None else current.gpus,
        )
        return self._rollout(
            Action.SCALE,
            environment=environment,
            endpoint=endpoint,
            actor=actor,
            command=command,
            reporter=reporter,
            resources=resources,
            headline=(
                f"{actor.shown} is scaling {endpoint} in {environment.name} to "
                f"{resources.describe()}"
            ),
            model=current.model,
            version=current.version,
            wait=wait,
        )

    def _audited(
        self,
        action: Action,
        actor: Actor,
        command: str,
        env: str | None,
        endpoint: str,
        result: R,
        approver: Actor | None = None,
    ) -> R:
        """Record the attempt, whatever became of it, and hand the result on."""
        self.audit.record(
            action.value,
            actor_id=actor.id,
            actor_name=actor.shown,
            command=command,
            env=env or self.settings.default_environment,
            endpoint=endpoint,
            result=result,
            approver=approver.shown if approver else "",
        )
        return result

    # -- rollback and stop ------------------------------------------------------------------
    def rollback(
        self,
        *,
        endpoint: str,
        env: str | None,
        actor: Actor,
        command: str,
        reporter: Reporter,
        wait: bool = True,
    ) -> Outcome | Refusal:
        """Serve again the version that served before the current one."""
        environment = self._admit(Action.ROLLBACK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        current = self.repos.endpoints.get(environment.name, endpoint)
        previous = (
            self.repos.operations.previous_version(environment.name, endpoint, current.version)
            if current
            else None
        )
        if current is None or previous is None:
            what = "is not deployed" if current is None else f"has served only v{current.version}"
            refusal = Refusal(
                f"{endpoint} in {environment.name} {what}: there is nothing to "
                f"roll back to (deploy a version with `/deploy {endpoint} v<N>`)"
            )
            return self._audited(Action.ROLLBACK, actor, command, env, endpoint, refusal)
        return self._rollout(
            Action.ROLLBACK,
            environment=environment,
            endpoint=endpoint,
            actor=actor,
            command=command,
            reporter=reporter,
            resources=current.resources,
            headline=(
                f"{actor.shown} is rolling {endpoint} in {environment.name} back from "
                f"v{current.version} to v{previous}"
            ),
            model=current.model,
            version=previous,
            wait=wait,
        )

    def stop(
        self, *, endpoint: str, env: str | None, actor: Actor, command: str
    ) -> Notice | Refusal:
        """Stop serving the endpoint; it leaves /status (its history stays)."""
        environment = self._admit(Action.STOP, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        current = self.repos.endpoints.get(environment.name, endpoint)
        if current is None:
            missing = Refusal(f"there is no endpoint `{endpoint}` in {environment.name}")
            return self._audited(Action.STOP, actor, command, env, endpoint, missing)
        attempt = self.repos.locks.try_lock(
            environment.name,
            endpoint,
            holder=actor.shown,
            reason=f"stopping {endpoint}",
            ttl_s=self.settings.lock_ttl_s,
        )
        if not attempt.acquired:
            locked = Refusal(locked_text(environment.name, endpoint, attempt))
            return self._audited(Action.STOP, actor, command, env, endpoint, locked)
        try:
            self.targets[environment.name].stop(
                EndpointRef(environment.name, endpoint), current.deployment
            )
            self.repos.endpoints.delete(environment.name, endpoint)
        except ChatOpsError as exc:
            failed = Refusal(f"could not stop {endpoint}: {exc.message}")
            return self._audited(Action.STOP, actor, command, env, endpoint, failed)
        finally:
            self.repos.locks.release(environment.name, endpoint, attempt.token)
        done = Notice(
            f"{endpoint} in {environment.name} is stopped (it served "
            f"{current.model} v{current.version} at {current.url})."
        )
        return self._audited(Action.STOP, actor, command, environment.name, endpoint, done)

    # -- the shared rollout ----------------------------------------------------------------
    def _rollout(
        self,
        action: Action,
        *,
        environment: Environment,
        endpoint: str,
        actor: Actor,
        command: str,
        reporter: Reporter,
        resources: Resources,
        headline: str,
        model: str,
        version: int | None,
        alias: str | None = None,
        approver: Actor | None = None,
        wait: bool = True,
    ) -> Outcome | Refusal:
        """Lock the endpoint and record the operation; run it here and now (held by this
        process), or with `wait=False` leave it queued for any bot process to take."""
        env = environment.name
        refusal = check_limits(environment, resources)
        if refusal:
            return self._audited(action, actor, command, env, endpoint, refusal, approver)
        attempt = self.repos.locks.try_lock(
            env, endpoint, holder=actor.shown, reason=headline, ttl_s=self.settings.lock_ttl_s
        )
        if not attempt.acquired:
            locked = Refusal(locked_text(env, endpoint, attempt))
            return self._audited(action, actor, command, env, endpoint, locked, approver)
        plan = Plan(
            action=action.value,
            model=model,
            version=version,
            alias=alias,
            cpu=resources.cpu,
            memory_mb=resources.memory_mb,
            replicas=resources.replicas,
            gpus=resources.gpus,
            headline=headline,
            actor_id=actor.id,
            actor_name=actor.shown,
            approver=approver.shown if approver else "",
        )
        try:
            op = self.repos.operations.enqueue(
                kind=action.value,
                env=env,
                endpoint=endpoint,
                requested_by=actor.shown,
                command=command,
                plan=plan.as_dict(),
                reply_to=where_of(reporter),
                lock_token=attempt.token,
                owner=self.rollouts.leases.owner if wait else "",
                lease_s=self.settings.lease_s,
            )
        except BaseException:
            self.repos.locks.release(env, endpoint, attempt.token)
            raise
        if not wait:
            return Outcome(
                ok=True, text=f"queued: {headline}", operation=op.id, data={"queued": True}
            )
        return self.rollouts.execute(op, reporter)

    # -- status ----------------------------------------------------------------------------
    def status(
        self, *, env: str | None = None, endpoint: str | None = None
    ) -> list[EndpointStatus] | Refusal:
        """Every recorded endpoint (of `env`, or of all environments) with its live health."""
        if env is not None and isinstance(self._env(env), Refusal):
            return self._env(env)  # type: ignore[return-value]
        rows = self.repos.endpoints.every(env)
        if endpoint is not None:
            rows = [r for r in rows if r.name == endpoint]
            if not rows:
                where = f" in {env}" if env else ""
                known = (
                    ", ".join(sorted({r.name for r in self.repos.endpoints.every(env)})) or "none"
                )
                return Refusal(f"there is no endpoint `{endpoint}`{where} (endpoints: {known})")
        # every endpoint at once: on a remote target each check is network round trips
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(rows)))) as pool:
            healths = list(
                pool.map(lambda r: self.targets[r.env].health(EndpointRef(r.env, r.name)), rows)
            )
        busy = {(op.env, op.endpoint): op for op in self.repos.operations.running()}
        result = []
        for row, health in zip(rows, healths, strict=True):
            resources = row.resources
            since = aware(row.since)
            result.append(
                EndpointStatus(
                    env=row.env,
                    name=row.name,
                    model=row.model,
                    version=row.version,
                    resources=resources.describe(replicas=False),
                    replicas=row.replicas,
                    up=health.up,
                    since=since,
                    url=row.url,
                    target=row.target,
                    detail=health.detail,
                    underway=_underway(busy.get((row.env, row.name))),
                )
            )
        return result

    def close(self) -> None:
        self.rollouts.leases.close()
        for target in self.targets.values():
            target.close()


def _underway(op: Operation | None) -> str:
    if op is None:
        return ""
    at = f"at {op.step}" if op.step else op.state
    again = f" (attempt {op.attempts})" if op.attempts > 1 else ""
    return f"{op.kind} by {op.requested_by}, {at}{again}"
