"""Carrying out a rollout the Deployer queued: resolve -> build -> start -> check -> switch.

An operation is run by whichever bot process holds its lease, from its recorded plan. Each
step records the remote ids it creates before waiting on them, and the deployment id is
chosen once and recorded, so a process taking over an operation whose holder died finds
the build and the deployment already made instead of making them again. Whatever happens,
the operation ends succeeded or failed, its endpoint lock is released and its audit row
written; an operation older than `operation_timeout_s`, or taken over `max_attempts` times,
is failed with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from core.audit import AuditLog
from core.config import Environment, Settings
from core.errors import ChatOpsError, ConfigError, NotFound, StepTimeout
from core.events import Addressed, Event, EventKind, Outcome, Reporter
from core.leases import Leases
from core.registry.mlflow import ModelVersion, Registry
from core.resources import Resources
from core.store import (
    Endpoint,
    LockAttempt,
    Operation,
    OperationState,
    Store,
    aware,
    new_id,
    utcnow,
)
from core.targets.base import Built, EndpointRef, Started, Step, Target

log = logging.getLogger("chatops.core")


@dataclass(frozen=True)
class Plan:
    """What a rollout is to do and for whom, kept with its operation: any bot process can
    carry it out from this alone."""

    action: str  # deploy, scale or rollback
    model: str
    version: int | None
    alias: str | None
    cpu: float
    memory_mb: int
    replicas: int
    gpus: int
    headline: str
    actor_id: str
    actor_name: str
    approver: str = ""

    @classmethod
    def of(cls, op: Operation) -> Plan:
        return cls(**op.plan)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def resources(self) -> Resources:
        return Resources(
            cpu=self.cpu, memory_mb=self.memory_mb, replicas=self.replicas, gpus=self.gpus
        )


@dataclass
class _Run:
    """One operation in flight: where its events go and when it began."""

    op_id: str
    reporter: Reporter
    store: Store
    started: float
    lost: bool = False  # another process took it over: it is no longer ours to end
    lock: tuple[str, str, str | None] | None = None  # (env, endpoint, token) while held

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


def where_of(reporter: Reporter) -> dict[str, Any]:
    """Where `reporter` reports, for whoever resumes the operation to report there too."""
    return dict(reporter.where) if isinstance(reporter, Addressed) else {}


class Rollouts:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        registry: Registry,
        targets: dict[str, Target],
        leases: Leases,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.targets = targets
        self.leases = leases
        self.audit = audit

    def execute(self, op: Operation, reporter: Reporter) -> Outcome:
        """Run `op`, which this process holds, to its end from wherever it got to."""
        plan = Plan.of(op)
        age = (utcnow() - aware(op.created_at)).total_seconds()
        run = _Run(op.id, reporter, self.store, time.monotonic() - max(0.0, age))
        run.lock = (op.env, op.endpoint, op.lock_token or None)
        resumed = op.attempts > 1
        with self.leases.hold(op.id):
            try:
                run.emit(EventKind.STARTED, "", plan.headline, resumed=resumed)
                where = where_of(reporter)
                if where:
                    self.store.set_reply_to(op.id, where)
                hold = self._relock(op, plan) if resumed else None
                if isinstance(hold, LockAttempt):
                    run.lock = None  # not ours to release
                    current = self.store.endpoint(op.env, op.endpoint)
                    taken = ChatOpsError(
                        "while its bot process was away, " + locked_text(op.env, op.endpoint, hold)
                    )
                    outcome = self._failed(run, op, current, taken)
                else:
                    if hold is not None:
                        run.lock = (op.env, op.endpoint, hold)
                    outcome = self._carry_out(run, op, plan, age)
            except Exception as exc:  # a bug must still end the operation, visibly
                log.exception("operation %s failed unexpectedly", op.id)
                outcome = self._failed(
                    run, op, None, ChatOpsError(f"an unexpected {type(exc).__name__}")
                )
            finally:
                self._let_go(run)
        self.audit.record(
            plan.action,
            actor_id=plan.actor_id,
            actor_name=plan.actor_name,
            command=op.command,
            env=op.env,
            endpoint=op.endpoint,
            result=outcome,
            approver=plan.approver,
        )
        return outcome

    def _finish(self, run: _Run, state: OperationState, error: str = "") -> bool:
        """End the operation and free its endpoint, before the final word reaches anyone
        (who may act on it at once); False if another process took it over meanwhile."""
        if not self.store.finish(run.op_id, state, error, owner=self.leases.owner):
            self._lost(run)
            return False
        self._let_go(run)
        return True

    @staticmethod
    def _lost(run: _Run) -> None:
        run.lost = True
        run.lock = None  # the process that took it over holds it now
        log.error(
            "operation %s was taken over by another bot process while this one ran it "
            "(its lease lapsed): that one ends it",
            run.op_id,
        )

    def _let_go(self, run: _Run) -> None:
        if run.lock is not None:
            env, endpoint, token = run.lock
            if token is not None:
                self.store.release(env, endpoint, token)
            run.lock = None

    def _relock(self, op: Operation, plan: Plan) -> str | LockAttempt:
        """The endpoint lock a taken-over operation goes on with: still its own, or taken
        again if it lapsed or an admin lifted it; who holds it, if someone else does now."""
        held = self.store.lock(op.env, op.endpoint)
        if held is not None and held.token == op.lock_token:
            return op.lock_token
        attempt = self.store.try_lock(
            op.env,
            op.endpoint,
            holder=plan.actor_name,
            reason=plan.headline,
            ttl_s=self.settings.lock_ttl_s,
        )
        if not attempt.acquired:
            return attempt
        # kept with the operation, so a process taking it over next finds it its own
        self.store.set_lock_token(op.id, attempt.token)
        return attempt.token

    def _carry_out(self, run: _Run, op: Operation, plan: Plan, age: float) -> Outcome:
        environment = self.settings.environment(op.env)
        if environment is None or op.env not in self.targets:
            raise ConfigError(f"environment {op.env} is no longer configured")
        current = self.store.endpoint(op.env, op.endpoint)
        if op.attempts > 1:
            limit = self.settings.operation_timeout_s
            if age > limit:
                late = StepTimeout(
                    f"it was still unfinished {age:.0f} s after it was asked for, past "
                    f"operation_timeout_s ({limit:g} s), when its bot process stopped"
                )
                return self._failed(run, op, current, late)
            if op.attempts > self.settings.max_attempts:
                return self._failed(
                    run,
                    op,
                    current,
                    ChatOpsError(
                        f"its bot process stopped {op.attempts - 1} times while running it; "
                        "not trying again"
                    ),
                )
            run.emit(
                EventKind.INFO,
                op.step,
                f"resumed after the bot process running it stopped (attempt {op.attempts}); "
                f"it had got to {op.step or 'the start'}: what its steps made is found again, "
                "not made twice",
            )
        return self._run_rollout(run, environment, op, plan, current)

    def _resolve(self, run: _Run, op: Operation, plan: Plan) -> ModelVersion:
        # an alias resolved once stays resolved: a resumed run must not follow it if it moved
        version = plan.version if plan.version is not None else op.remote.get("resolved")
        alias = None if version is not None else plan.alias
        what = f"v{version}" if version is not None else f"@{alias}"
        with run.step("resolve", f"resolving {plan.model} {what} in the registry") as done:
            mv = self.registry.resolve(plan.model, version=version, alias=alias)
            self.store.record(run.op_id, resolved=mv.version)
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(mv.metrics.items()))
            run_ref = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
            done(f"resolved {mv.label} ({run_ref}{', ' + metrics if metrics else ''})")
        return mv

    def _run_rollout(
        self,
        run: _Run,
        environment: Environment,
        op: Operation,
        plan: Plan,
        current: Endpoint | None,
    ) -> Outcome:
        target = self.targets[environment.name]
        ep = EndpointRef(environment.name, op.endpoint)
        resources = plan.resources
        # chosen once: a resumed operation starts (finds) the same deployment
        deployment = str(op.remote.get("deployment") or new_id("dep"))
        started = None
        try:
            mv = self._resolve(run, op, plan)
            was_up = current is not None and target.health(ep).up
            if (
                current
                and was_up
                and current.version == mv.version
                and current.model == mv.model
                and current.resources == resources
            ):
                text = f"{mv.label} is already live at {current.url} with {resources.describe()}"
                if self._finish(run, OperationState.SUCCEEDED):
                    run.emit(EventKind.SUCCEEDED, "", text)
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
                done(f"{op.endpoint} now serves v{mv.version} with {resources.describe()}{before}")
        except ChatOpsError as exc:
            if started is not None:
                target.stop(ep, started.deployment)
            return self._failed(run, op, current, exc)
        if not self.store.holds(run.op_id, self.leases.owner):
            self._lost(run)
            return Outcome(ok=False, text="taken over by another bot process", operation=op.id)
        self.store.save_endpoint(
            env=environment.name,
            name=op.endpoint,
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
        text = f"{mv.label} is live at {url}"
        if self._finish(run, OperationState.SUCCEEDED):
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
        self, run: _Run, op: Operation, current: Endpoint | None, exc: ChatOpsError
    ) -> Outcome:
        target = self.targets.get(op.env)
        if current is None:
            serving = (
                f"nothing was serving {op.endpoint} in {op.env} before, and nothing serves now"
            )
        elif target is not None and target.health(EndpointRef(op.env, op.endpoint)).up:
            serving = f"{current.model} v{current.version} still serves at {current.url}"
        else:
            serving = f"{current.model} v{current.version} was serving before, but is down now"
        text = exc.message if isinstance(exc, NotFound) else f"failed: {exc.message}"
        if self._finish(run, OperationState.FAILED, exc.message):
            run.emit(EventKind.FAILED, "", text, log_tail=exc.log_tail, serving=serving)
        return Outcome(
            ok=False,
            text=f"{text}\n{serving}",
            operation=run.op_id,
            log_tail=exc.log_tail,
            data={"serving": serving},
        )


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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
