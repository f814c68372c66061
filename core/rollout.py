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

from core.audit import AuditLog
from core.clock import Clock
from core.config import Environment, Settings
from core.errors import ChatOpsError, ConfigError, LeaseLost, NotFound, StepTimeout
from core.events import EventKind, Outcome, Reporter
from core.leases import Leases
from core.models import Endpoint, Hold, LockAttempt, Operation, OperationState, aware, new_id
from core.registry.mlflow import ModelVersion, Registry
from core.repos import Repositories, Serving
from core.run import Plan, Run, span, where_of
from core.targets.base import Built, EndpointRef, Started, Target

log = logging.getLogger("chatops.core")


class Rollouts:
    def __init__(
        self,
        *,
        settings: Settings,
        repos: Repositories,
        registry: Registry,
        targets: dict[str, Target],
        leases: Leases,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.repos = repos
        self.registry = registry
        self.targets = targets
        self.leases = leases
        self.audit = audit

    def execute(self, op: Operation, reporter: Reporter) -> Outcome:
        """Run `op`, which this process holds, to its end from wherever it got to; ends it
        succeeded or failed, frees its endpoint and audits it, unless another process took
        it over meanwhile (that one does)."""
        age = max(0.0, (self.repos.clock.now() - aware(op.created_at)).total_seconds())
        run = Run(
            op_id=op.id,
            reporter=reporter,
            operations=self.repos.operations,
            leases=self.leases,
            hold=Hold.of(op),
            started=time.monotonic() - age,
        )
        if op.lock_token:  # released at the end only while it still carries this token
            run.lock = (op.env, op.endpoint, op.lock_token)
        with self.leases.hold(op.id):
            try:
                headline = str(op.plan.get("headline") or f"{op.requested_by}: {op.command}")
                run.emit(EventKind.STARTED, "", headline, resumed=op.attempts > 1)
                where = where_of(reporter)
                if where and not self.repos.operations.set_reply_to(op.id, where, hold=run.hold):
                    raise LeaseLost(f"operation {op.id} was taken over by another bot process")
                outcome = self._carry_out(run, op, age)
            except LeaseLost:
                outcome = self._lost(run)
            except ChatOpsError as exc:
                outcome = self._failed(run, op, self.repos.endpoints.get(op.env, op.endpoint), exc)
            except Exception as exc:  # a bug must still end the operation, visibly
                log.exception("operation %s failed unexpectedly", op.id)
                unexpected = ChatOpsError(f"an unexpected {type(exc).__name__}")
                outcome = self._failed(run, op, None, unexpected)
            finally:
                self._let_go(run)
        if not run.lost:
            self.audit.record(
                str(op.plan.get("action") or op.kind),
                actor_id=str(op.plan.get("actor_id") or ""),
                actor_name=str(op.plan.get("actor_name") or op.requested_by),
                command=op.command,
                env=op.env,
                endpoint=op.endpoint,
                result=outcome,
                approver=str(op.plan.get("approver") or ""),
            )
        return outcome

    def _finish(self, run: Run, state: OperationState, error: str = "") -> bool:
        """End the operation and free its endpoint, before the final word reaches anyone
        (who may act on it at once); False if another process took it over meanwhile."""
        if not self.repos.operations.finish(run.op_id, state, error, hold=run.hold):
            self._lost(run)
            return False
        self._let_go(run)
        return True

    @staticmethod
    def _lost(run: Run) -> Outcome:
        run.lost = True
        run.lock = None  # the process that took it over holds it now
        log.error(
            "operation %s was taken over by another bot process while this one ran it "
            "(its lease lapsed): that one ends it",
            run.op_id,
        )
        return Outcome(
            ok=False,
            text="another bot process took this operation over and reports how it ends",
            operation=run.op_id,
        )

    def _let_go(self, run: Run) -> None:
        if run.lock is not None:
            self.repos.locks.release(*run.lock)
            run.lock = None

    def _relock(self, op: Operation, plan: Plan, current: Endpoint | None) -> str:
        """The token of the endpoint lock the operation goes on with; a ChatOpsError saying
        why not when it may not go on. A taken-over operation gives its lock a new token, so
        the process it was taken from can no longer release it; a lock that lapsed or was
        lifted meanwhile is taken again, unless the endpoint changed since it was asked for."""
        held = self.repos.locks.get(op.env, op.endpoint)
        if held is not None and held.token == op.lock_token:
            if op.attempts == 1:
                return op.lock_token
            fresh = new_id("lock")
            if not self.repos.locks.rotate(op.env, op.endpoint, op.lock_token, fresh):
                return op.lock_token
            self._keep_token(op, fresh)
            return fresh
        if current is not None and aware(current.updated_at) > aware(op.created_at):
            raise ChatOpsError(
                f"not resumed: while it waited, {op.endpoint} in {op.env} changed to "
                f"{current.model} v{current.version} "
                f"({span(_since(current, self.repos.clock))} ago). "
                "Run the command again if it is still wanted."
            )
        attempt = self.repos.locks.try_lock(
            op.env,
            op.endpoint,
            holder=plan.actor_name,
            reason=plan.headline,
            ttl_s=self.settings.lock_ttl_s,
        )
        if not attempt.acquired:
            raise ChatOpsError(f"not resumed: while it waited, {_holder_text(op, attempt)}")
        self._keep_token(op, attempt.token)  # for whoever takes it over next
        return attempt.token

    def _keep_token(self, op: Operation, token: str) -> None:
        if not self.repos.operations.set_lock_token(op.id, token, hold=Hold.of(op)):
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")

    def _carry_out(self, run: Run, op: Operation, age: float) -> Outcome:
        plan = Plan.of(op)
        environment = self.settings.environment(op.env)
        if environment is None or op.env not in self.targets:
            raise ConfigError(f"environment {op.env} is no longer configured here")
        current = self.repos.endpoints.get(op.env, op.endpoint)
        if op.attempts > 1:
            limit = self.settings.operation_timeout_s
            if age > limit:
                late = StepTimeout(
                    f"not resumed: it was asked for {span(age)} ago, longer than "
                    f"operation_timeout_s ({span(limit)}) allows. Nothing it may have started "
                    "took traffic; run the command again if it is still wanted."
                )
                return self._failed(run, op, current, late)
            if op.attempts > self.settings.max_attempts:
                given_up = ChatOpsError(
                    f"not resumed: the bot processes running it stopped {op.attempts - 1} "
                    f"time{'s' if op.attempts > 2 else ''}, the last at {op.step or 'the start'} "
                    "(max_attempts "
                    f"{self.settings.max_attempts}); look at their logs (memory, crashes) "
                    "before running it again"
                )
                return self._failed(run, op, current, given_up)
        if op.lock_token:
            run.lock = (op.env, op.endpoint, self._relock(op, plan, current))
        if op.attempts > 1:
            run.emit(
                EventKind.INFO,
                op.step,
                f"resumed after the bot process running it stopped at {op.step or 'the start'} "
                f"(attempt {op.attempts}); what it had already built or started is reused, "
                "not made again",
            )
        return self._run_rollout(run, environment, op, plan, current)

    def _resolve(self, run: Run, op: Operation, plan: Plan) -> ModelVersion:
        # an alias resolved once stays resolved: a resumed run must not follow it if it moved
        version = plan.version if plan.version is not None else op.remote.get("resolved")
        alias = None if version is not None else plan.alias
        what = f"v{version}" if version is not None else f"@{alias}"
        with run.step("resolve", f"resolving {plan.model} {what} in the registry") as done:
            mv = self.registry.resolve(plan.model, version=version, alias=alias)
            run.remember(resolved=mv.version)
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(mv.metrics.items()))
            run_ref = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
            done(f"resolved {mv.label} ({run_ref}{', ' + metrics if metrics else ''})")
        return mv

    def _run_rollout(
        self,
        run: Run,
        environment: Environment,
        op: Operation,
        plan: Plan,
        current: Endpoint | None,
    ) -> Outcome:
        target = self.targets[environment.name]
        ep = EndpointRef(environment.name, op.endpoint)
        resources = plan.resources
        # chosen once and recorded first: a resumed operation starts (finds) the same one
        deployment = str(op.remote.get("deployment") or "")
        if not deployment:
            deployment = new_id("dep")
            run.remember(deployment=deployment)
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
            with run.step("start", f"starting {mv.label} with {resources.describe()}") as done:
                started = target.start(
                    ep, mv, built, resources, deployment, run.target_step("start")
                )
                done(f"model servers up: {started.detail}")
            latency_ms = self._check(run, target, ep, started, built)
            run.confirm()  # traffic moves next: only while the operation is still ours
            with run.step("switch", "switching traffic to the new deployment") as done:
                old = current.deployment if current else None
                url = target.switch(ep, started.deployment, old)
                before = (
                    f"; the previous deployment (v{current.version}) drains and stops"
                    if current and was_up
                    else ""
                )
                done(f"{op.endpoint} now serves v{mv.version} with {resources.describe()}{before}")
        except LeaseLost:
            raise  # the deployment is the new holder's now: leave it be
        except Exception as exc:
            failure = exc if isinstance(exc, ChatOpsError) else _unexpected(exc, op)
            if started is not None and self.repos.operations.holds(run.op_id, run.hold):
                try:
                    target.stop(ep, started.deployment)
                except ChatOpsError as stop_failed:  # the failure to tell is the first one
                    log.warning("could not stop %s: %s", started.deployment, stop_failed.message)
            return self._failed(run, op, current, failure)
        serving = Serving(
            env=environment.name,
            name=op.endpoint,
            target=target.kind,
            model=mv.model,
            version=mv.version,
            resources=resources,
            url=url,
            deployment=started.deployment,
        )
        if not self.repos.endpoints.save(serving, op_id=run.op_id, hold=run.hold):
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")
        run.remember(version=mv.version)  # what /rollback goes back to
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
    def _check(run: Run, target: Target, ep: EndpointRef, started: Started, built: Built) -> float:
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
        self, run: Run, op: Operation, current: Endpoint | None, exc: ChatOpsError
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


def _since(endpoint: Endpoint, clock: Clock) -> float:
    return (clock.now() - aware(endpoint.updated_at)).total_seconds()


def _holder_text(op: Operation, attempt: LockAttempt) -> str:
    what = "froze" if attempt.sticky else "took"
    return (
        f"{attempt.holder} {what} {op.endpoint} in {op.env} for: {attempt.reason}. "
        "Run the command again once it is free, if it is still wanted."
    )


def _unexpected(exc: Exception, op: Operation) -> ChatOpsError:
    log.error("operation %s met an unexpected %s", op.id, type(exc).__name__, exc_info=exc)
    return ChatOpsError(f"an unexpected {type(exc).__name__}")


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
