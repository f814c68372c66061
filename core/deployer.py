"""The Deployer: every change to what serves goes through here, as a recorded operation.

deploy/scale: check -> open an Operation -> steps (resolve, build, start, check, switch),
each reported as events and recorded in the store -> the endpoint record -> the outcome.
A failure at any step stops only the new deployment; whatever served before keeps serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from core.config import Environment, Settings
from core.errors import ChatOpsError, NotFound
from core.events import EndpointStatus, Event, EventKind, Notice, Outcome, Refusal, Reporter
from core.policy import check_limits
from core.registry.mlflow import ModelVersion, Registry
from core.resources import Resources
from core.roles import Action, Actor, authorize
from core.store import Endpoint, LockAttempt, OperationState, Store, aware, new_id
from core.targets.base import Built, EndpointRef, Started, Step, Target

log = logging.getLogger("chatops.core")
R = TypeVar("R", bound=Outcome | Notice | Refusal)


@dataclass
class _Run:
    """One operation in flight: where its events go and when it began."""

    op_id: str
    reporter: Reporter
    store: Store
    started: float

    def emit(self, kind: EventKind, step: str, message: str, **data: object) -> None:
        self.store.add_event(self.op_id, kind, step, message)
        elapsed = time.monotonic() - self.started
        try:
            self.reporter.report(Event(self.op_id, kind, step, message, elapsed, dict(data)))
        except Exception:  # telling people must never stop the work itself
            log.exception("reporting %s of %s failed", kind, self.op_id)

    def target_step(self, name: str) -> Step:
        return Step(
            say=lambda text: self.emit(EventKind.INFO, name, text),
            remember=lambda **ids: self.store.record(self.op_id, **ids),
        )

    @contextmanager
    def step(self, name: str, doing: str) -> Iterator[Callable[[str], None]]:
        self.store.record(self.op_id, step=name)
        self.emit(EventKind.STEP, name, doing)
        begun = time.monotonic()
        done: list[str] = []
        yield done.append
        took = time.monotonic() - begun
        self.emit(EventKind.DONE, name, (done[-1] if done else doing) + f" ({_ms(took)})")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


class Deployer:
    def __init__(
        self, *, settings: Settings, store: Store, registry: Registry, targets: dict[str, Target]
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.targets = targets

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
        attempt = self.store.try_lock(
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
        dropped = self.store.release(environment.name, endpoint)
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
    ) -> Outcome | Refusal:
        """Serve `model` at `version` (or `alias`) on the endpoint of the same name in `env`.
        With `approver`, it is that admin's approval of `actor`'s request that is checked."""
        what = f"v{version}" if version is not None else f"@{alias}"
        where = self.settings.environment(env)
        hint = f"ask for it with `/promote {model} {what} to {where.name}`" if where else ""
        environment = self._admit(
            Action.DEPLOY, actor, command, env, model, hint=hint, approver=approver
        )
        if isinstance(environment, Refusal):
            return environment
        current = self.store.endpoint(environment.name, model)
        resources = current.resources if current else environment.default
        headline = f"{actor.shown} is deploying {model} {what} to {environment.name}"
        if approver:
            headline += f" (approved by {approver.shown})"
        result = self._rollout(
            kind="deploy",
            environment=environment,
            endpoint=model,
            actor=actor,
            command=command,
            reporter=reporter,
            resources=resources,
            headline=headline,
            pick=lambda run: self._resolve(run, model, version, alias),
        )
        return self._audited(Action.DEPLOY, actor, command, env, model, result, approver)

    def _resolve(
        self, run: _Run, model: str, version: int | None, alias: str | None
    ) -> ModelVersion:
        what = f"v{version}" if version is not None else f"@{alias}"
        with run.step("resolve", f"resolving {model} {what} in the registry") as done:
            mv = self.registry.resolve(model, version=version, alias=alias)
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(mv.metrics.items()))
            run_ref = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
            done(f"resolved {mv.label} ({run_ref}{', ' + metrics if metrics else ''})")
        return mv

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
    ) -> Outcome | Refusal:
        """Serve the same version with new resources: new deployment first, old one after."""
        environment = self._admit(Action.SCALE, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        current = self.store.endpoint(environment.name, endpoint)
        if current is None:
            known = ", ".join(e.name for e in self.store.endpoints(environment.name)) or "none"
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
        version = current.version
        result = self._rollout(
            kind="scale",
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
            pick=lambda run: self._resolve(run, current.model, version, None),
        )
        return self._audited(Action.SCALE, actor, command, env, endpoint, result)

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
        if isinstance(result, Refusal):
            outcome, operation = "refused", ""
        else:
            outcome = "succeeded" if result.ok else "failed"
            operation = (result.operation if isinstance(result, Outcome) else None) or ""
        self.store.audit(
            actor_id=actor.id,
            actor_name=actor.shown,
            action=action.value,
            command=command,
            env=env or self.settings.default_environment,
            endpoint=endpoint,
            outcome=outcome,
            detail=result.text.splitlines()[0][:500] if result.text else "",
            operation_id=operation,
            approver=approver.shown if approver else "",
        )
        return result

    # -- rollback and stop ------------------------------------------------------------------
    def rollback(
        self, *, endpoint: str, env: str | None, actor: Actor, command: str, reporter: Reporter
    ) -> Outcome | Refusal:
        """Serve again the version that served before the current one."""
        environment = self._admit(Action.ROLLBACK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        current = self.store.endpoint(environment.name, endpoint)
        previous = (
            self.store.previous_version(environment.name, endpoint, current.version)
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
        result = self._rollout(
            kind="rollback",
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
            pick=lambda run: self._resolve(run, current.model, previous, None),
        )
        return self._audited(Action.ROLLBACK, actor, command, env, endpoint, result)

    def stop(
        self, *, endpoint: str, env: str | None, actor: Actor, command: str
    ) -> Notice | Refusal:
        """Stop serving the endpoint; it leaves /status (its history stays)."""
        environment = self._admit(Action.STOP, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        current = self.store.endpoint(environment.name, endpoint)
        if current is None:
            missing = Refusal(f"there is no endpoint `{endpoint}` in {environment.name}")
            return self._audited(Action.STOP, actor, command, env, endpoint, missing)
        attempt = self.store.try_lock(
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
            self.store.delete_endpoint(environment.name, endpoint)
        except ChatOpsError as exc:
            failed = Refusal(f"could not stop {endpoint}: {exc.message}")
            return self._audited(Action.STOP, actor, command, env, endpoint, failed)
        finally:
            self.store.release(environment.name, endpoint, attempt.token)
        done = Notice(
            f"{endpoint} in {environment.name} is stopped (it served "
            f"{current.model} v{current.version} at {current.url})."
        )
        return self._audited(Action.STOP, actor, command, environment.name, endpoint, done)

    # -- the shared rollout ----------------------------------------------------------------
    def _rollout(
        self,
        *,
        kind: str,
        environment: Environment,
        endpoint: str,
        actor: Actor,
        command: str,
        reporter: Reporter,
        resources: Resources,
        headline: str,
        pick: Callable[[_Run], ModelVersion],
    ) -> Outcome | Refusal:
        refusal = check_limits(environment, resources)
        if refusal:
            return refusal
        attempt = self.store.try_lock(
            environment.name,
            endpoint,
            holder=actor.shown,
            reason=headline,
            ttl_s=self.settings.lock_ttl_s,
        )
        if not attempt.acquired:
            return Refusal(locked_text(environment.name, endpoint, attempt))
        try:
            op = self.store.start_operation(
                kind=kind,
                env=environment.name,
                endpoint=endpoint,
                requested_by=actor.shown,
                command=command,
            )
            run = _Run(op.id, reporter, self.store, time.monotonic())
            run.emit(EventKind.STARTED, "", headline)
            return self._run_rollout(run, environment, endpoint, resources, pick)
        finally:
            self.store.release(environment.name, endpoint, attempt.token)

    def _run_rollout(
        self,
        run: _Run,
        environment: Environment,
        endpoint: str,
        resources: Resources,
        pick: Callable[[_Run], ModelVersion],
    ) -> Outcome:
        target = self.targets[environment.name]
        ep = EndpointRef(environment.name, endpoint)
        current = self.store.endpoint(environment.name, endpoint)
        deployment = new_id("dep")
        started = None
        try:
            mv = pick(run)
            was_up = current is not None and target.health(ep).up
            if (
                current
                and was_up
                and current.version == mv.version
                and current.model == mv.model
                and _same(current, resources)
            ):
                text = f"{mv.label} is already live at {current.url} with {resources.describe()}"
                run.emit(EventKind.SUCCEEDED, "", text)
                self.store.finish(run.op_id, OperationState.SUCCEEDED)
                return Outcome(ok=True, text=text, operation=run.op_id, url=current.url)
            with run.step("build", f"building {mv.label} on {target.kind}") as done:
                built = target.build(ep, mv, self.registry, run.target_step("build"))
                done(built.detail or f"{mv.label} built")
            self.store.record(run.op_id, deployment=deployment)
            with run.step("start", f"starting {mv.label} with {resources.describe()}") as done:
                started = target.start(
                    ep, mv, built, resources, deployment, run.target_step("start")
                )
                done(f"model servers up: {started.detail}")
            latency_ms = self._check(run, target, ep, started, built)
            with run.step("switch", "switching traffic to the new deployment") as done:
                old = current.deployment if current else None
                url = target.switch(ep, started.deployment, old)
                before = (
                    f"; the previous deployment (v{current.version}) drains and stops"
                    if current and was_up
                    else ""
                )
                done(f"{endpoint} now serves v{mv.version} with {resources.describe()}{before}")
        except ChatOpsError as exc:
            if started is not None:
                target.stop(ep, started.deployment)
            return self._failed(run, target, ep, current, exc)
        self.store.save_endpoint(
            env=environment.name,
            name=endpoint,
            target=target.kind,
            model=mv.model,
            version=mv.version,
            cpu=resources.cpu,
            memory_mb=resources.memory_mb,
            replicas=resources.replicas,
            gpus=resources.gpus,
            url=url,
            deployment=started.deployment,
        )
        self.store.record(run.op_id, version=mv.version)  # what /rollback goes back to
        self.store.finish(run.op_id, OperationState.SUCCEEDED)
        text = f"{mv.label} is live at {url}"
        run.emit(
            EventKind.SUCCEEDED,
            "",
            text,
            url=url,
            version=mv.version,
            resources=resources.describe(),
            latency_ms=latency_ms,
        )
        return Outcome(
            ok=True,
            text=text,
            operation=run.op_id,
            url=url,
            data={"latency_ms": latency_ms, "resources": resources.describe()},
        )

    @staticmethod
    def _check(run: _Run, target: Target, ep: EndpointRef, started: Started, built: Built) -> float:
        with run.step("check", "health check and smoke test on the input example") as done:
            checked = target.check(ep, started, built)
            if built.example is None:
                done("health check passed (no input example to smoke-test with)")
            else:
                done(
                    f"smoke test answered {_short(checked.prediction)} in "
                    f"{checked.latency_ms:.0f} ms"
                )
        return checked.latency_ms

    def _failed(
        self,
        run: _Run,
        target: Target,
        ep: EndpointRef,
        current: Endpoint | None,
        exc: ChatOpsError,
    ) -> Outcome:
        if current is None:
            serving = f"nothing was serving {ep.name} in {ep.env} before, and nothing serves now"
        elif target.health(ep).up:
            serving = f"{current.model} v{current.version} still serves at {current.url}"
        else:
            serving = f"{current.model} v{current.version} was serving before, but is down now"
        text = exc.message if isinstance(exc, NotFound) else f"failed: {exc.message}"
        self.store.finish(run.op_id, OperationState.FAILED, exc.message)
        run.emit(EventKind.FAILED, "", text, log_tail=exc.log_tail, serving=serving)
        return Outcome(
            ok=False,
            text=f"{text}\n{serving}",
            operation=run.op_id,
            log_tail=exc.log_tail,
            data={"serving": serving},
        )

    # -- status ----------------------------------------------------------------------------
    def status(
        self, *, env: str | None = None, endpoint: str | None = None
    ) -> list[EndpointStatus] | Refusal:
        """Every recorded endpoint (of `env`, or of all environments) with its live health."""
        if env is not None and isinstance(self._env(env), Refusal):
            return self._env(env)  # type: ignore[return-value]
        rows = self.store.endpoints(env)
        if endpoint is not None:
            rows = [r for r in rows if r.name == endpoint]
            if not rows:
                where = f" in {env}" if env else ""
                known = ", ".join(sorted({r.name for r in self.store.endpoints(env)})) or "none"
                return Refusal(f"there is no endpoint `{endpoint}`{where} (endpoints: {known})")
        # every endpoint at once: on a remote target each check is network round trips
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(rows)))) as pool:
            healths = list(
                pool.map(lambda r: self.targets[r.env].health(EndpointRef(r.env, r.name)), rows)
            )
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
                )
            )
        return result

    def close(self) -> None:
        for target in self.targets.values():
            target.close()


def locked_text(env: str, endpoint: str, attempt: LockAttempt) -> str:
    since = f" since {attempt.since:%H:%M} UTC" if attempt.since else ""
    if attempt.sticky:
        return (
            f"{endpoint} in {env} is frozen by {attempt.holder}{since}: {attempt.reason}. "
            f"An admin can lift it with `/unlock {endpoint} in {env}`."
        )
    return (
        f"{endpoint} in {env} is locked by {attempt.holder}{since} for: {attempt.reason}. "
        "It is released when that operation ends; an admin can force it with "
        f"`/unlock {endpoint} in {env}`."
    )


def _same(row: Endpoint, resources: Resources) -> bool:
    return (row.cpu, row.memory_mb, row.replicas, row.gpus) == (
        resources.cpu,
        resources.memory_mb,
        resources.replicas,
        resources.gpus,
    )


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
