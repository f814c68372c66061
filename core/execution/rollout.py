"""Carrying out an admitted operation: a rollout (resolve -> build -> start -> check ->
switch) or a stop.

An operation is run by whichever bot process holds its lease, from its recorded brief. Each
step records the remote ids it creates before waiting on them, and the deployment id is
chosen once and recorded, so a process taking over an operation whose holder died finds
the build and the deployment already made instead of making them again. At each step
boundary, and before traffic moves, a run looks whether an admin cancelled it. Whatever
happens, the operation ends succeeded or failed, and its end, the release of its endpoint
lock, its audit row and its final word (owed to whoever asked, in the outbox) are one
transaction: a crash after it leaves nothing untold, a crash before it leaves the operation
to be taken over. An operation older than `operation_timeout_s`, or taken over
`max_attempts` times, is failed with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from core import failpoints
from core.admission.gates import Automatic, audited_as
from core.admission.locker import Locker
from core.audit import AuditLog
from core.clock import Clock
from core.config import Rollout, Settings
from core.errors import (
    Cancelled,
    ChatOpsError,
    ConfigError,
    HandedOver,
    LeaseLost,
    NotFound,
    StepTimeout,
    StoreError,
)
from core.events import OWED, EventKind, Outcome, Reporter
from core.execution import canary, steps
from core.execution.canary import Aborted, Canary
from core.execution.leases import Leases
from core.execution.run import Brief, Run, span, where_of
from core.marks import person
from core.oncall import watching
from core.oncall.alerts import BOT, Alert, AlertKind
from core.outbox import ALERT, FINAL, Outbox
from core.registry.mlflow import ModelVersion, Registry
from core.registry.source import RegistrySource
from core.resources import Resources
from core.scrub import scrub, scrub_value
from core.store.models import Endpoint, Hold, Operation, OperationState, aware
from core.store.repos import Repositories
from core.store.repos.endpoints import Serving
from core.store.repos.served import Interval
from core.targets.base import EndpointRef, Started, Target

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
        locker: Locker,
        audit: AuditLog,
        outbox: Outbox,
        decide: Callable[..., object] | None = None,
    ) -> None:
        self.settings = settings
        # the command table's way to a canary decision (`Deployer.canary`): what the run
        # decides by itself enters as the bot's own command
        self.decide = decide
        self.repos = repos
        self.registry = registry
        self.targets = targets
        self.source = RegistrySource(registry)  # what targets fetch artifacts from
        self.leases = leases
        self.locker = locker
        self.audit = audit
        self.outbox = outbox

    def execute(self, op: Operation, reporter: Reporter) -> Outcome:
        """Run `op`, which this process holds, to its end from wherever it got to; ends it
        succeeded or failed, frees its endpoint, audits it and tells its final word, unless
        another process took it over meanwhile (that one does)."""
        run = self._run_of(op, reporter)
        try:
            outcome = self._carry_out(run, op, reporter)
        except HandedOver:
            outcome = self._handed_over(run)
        except LeaseLost:
            outcome = self._lost(run)
        except ChatOpsError as exc:
            outcome = self._failing(run, op, exc, known=True)
        except Exception as exc:  # a bug must still end the operation, visibly
            outcome = self._failing(run, op, _unexpected(exc, op), known=False)
        finally:
            self._let_go(run)
        return outcome

    # -- the operation, top to bottom ----------------------------------------------------
    def _run_of(self, op: Operation, reporter: Reporter) -> Run:
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
        return run

    def _carry_out(self, run: Run, op: Operation, reporter: Reporter) -> Outcome:
        headline = str(op.brief.get("headline") or f"{person(op.requested_by)}: {op.command}")
        run.emit(EventKind.STARTED, "", headline, resumed=op.attempts > 1)
        where = where_of(reporter)
        if where and not self.repos.operations.set_reply_to(op.id, where, hold=run.hold):
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")
        brief = Brief.of(op)
        target = self.targets.get(op.env)
        if target is None or self.settings.environment(op.env) is None:
            raise ConfigError(f"environment {op.env} is no longer configured here")
        current = self.repos.endpoints.get(op.env, op.endpoint)
        if op.attempts > 1:
            self._may_resume(op, current)
        if op.lock_token:
            run.lock = (op.env, op.endpoint, self._keep_lock(op, brief, current))
        if op.attempts > 1:
            run.emit(
                EventKind.INFO,
                op.step,
                f"resumed after the bot process running it stopped at {op.step or 'the start'} "
                f"(attempt {op.attempts}); what it had already built or started is reused, "
                "not made again",
            )
        if brief.overridden and op.attempts <= 1:
            run.emit(EventKind.INFO, "order", f"promotion order overridden: {brief.overridden}")
        if brief.action == "stop":
            return self._stop(run, op, brief, target, current)
        return self._roll_out(run, op, brief, target, current)

    def _may_resume(self, op: Operation, current: Endpoint | None) -> None:
        """Raise why a taken-over operation must not go on: too old, or taken too often."""
        age = max(0.0, (self.repos.clock.now() - aware(op.created_at)).total_seconds())
        limit = self.settings.operation_timeout_s
        if age > limit:
            # a canary's new version did take traffic: `_end_canary` tells what became of it
            untouched = op.canary_share is None
            raise StepTimeout(
                f"not resumed: it was asked for {span(age)} ago, longer than "
                f"operation_timeout_s ({span(limit)}) allows. "
                + ("Nothing it may have started took traffic. " if untouched else "")
                + "Run the command again if it is still wanted."
            )
        if op.attempts > self.settings.max_attempts:
            raise ChatOpsError(
                f"not resumed: the bot processes running it stopped {op.attempts - 1} "
                f"time{'s' if op.attempts > 2 else ''}, the last at {op.step or 'the start'} "
                f"(max_attempts {self.settings.max_attempts}); look at their logs (memory, "
                "crashes) before running it again"
            )

    def _keep_lock(self, op: Operation, brief: Brief, current: Endpoint | None) -> str:
        """The token of the endpoint lock the operation goes on with; a lock that lapsed or
        was lifted meanwhile is taken again, unless the endpoint changed since it was asked
        for (a ChatOpsError says so)."""
        token = self.locker.keep(op)
        if token is not None:
            return token
        if current is not None and aware(current.updated_at) > aware(op.created_at):
            raise ChatOpsError(
                f"not resumed: while it waited, {op.endpoint} in {op.env} changed to "
                f"{current.model} v{current.version} "
                f"({span(_since(current, self.repos.clock))} ago). "
                "Run the command again if it is still wanted."
            )
        return self.locker.retake(op, holder=brief.actor_name, reason=brief.headline)

    # -- a rollout -----------------------------------------------------------------------
    def _roll_out(
        self, run: Run, op: Operation, brief: Brief, target: Target, current: Endpoint | None
    ) -> Outcome:
        ep = EndpointRef(op.env, op.endpoint)
        resources = brief.resources
        deployment = steps.deployment_id(run, op)
        started: Started | None = None
        try:
            mv = steps.resolve(run, self.registry, op, brief)
            was_up = current is not None and target.health(ep).up
            if current is not None and was_up and steps.serves(current, mv, resources):
                mine = self._switched(op)
                if mine is not None:  # live by this very operation's switch, taken over after
                    refused = self._write_back(run, op, brief, mv, self._before(op, mine))
                    return self._succeeded(run, op, mv, resources, current.url, 0.0, refused)
                return self._already_live(run, op, mv, resources, current)
            built = steps.build(run, target, self.source, ep, mv)
            other = current is not None and (current.model, current.version) != (
                mv.model,
                mv.version,
            )
            answer = steps.served_answer(run, target, ep, built, current, was_up and other)
            served = (
                (current.version, answer) if current is not None and answer is not None else None
            )
            dataset = steps.evaluation(run, self.registry, mv, built) if was_up and other else None
            serving = current.version if current is not None else None
            scored = steps.served_scores(run, target, ep, dataset, serving)
            started = steps.start(run, target, ep, mv, built, resources, deployment)
            tolerance = self._rollout(op).tolerance
            latency_ms = steps.smoke_test(run, target, ep, started, built, served, tolerance)
            if dataset is not None and scored is not None and current is not None:
                versions = (mv, current.version)
                steps.evaluation_diff(
                    run, target, ep, started, dataset, versions, scored, tolerance
                )
            # taken over at its switch, a rollout is past its canary: traffic may have moved
            # to the new version already, and no canary can be held beside that
            if brief.gradual and op.step != "switch":
                if current is not None and was_up:
                    self._canary(run, op, brief, target, ep, mv, started, current)
                else:
                    said = canary.none_held(op, mv, current)
                    if said:
                        run.emit(EventKind.INFO, canary.STEP, said)
            url = steps.switch(run, target, ep, mv, resources, started, current, was_up)
        except LeaseLost:
            raise  # the deployment is the new holder's now: leave it be
        except Exception as exc:
            self._discard(run, target, ep, started)
            failure = exc if isinstance(exc, ChatOpsError) else _unexpected(exc, op)
            return self._failed(run, op, current, failure)
        failpoints.hit("traffic.switched")
        run.confirm()
        # what served before and was down when replaced ended in a failure, not a switch
        down = f"v{current.version} was down when v{mv.version} replaced it" if current else ""
        failed = "" if was_up else down
        if current is not None and brief.automatic:  # its watch found it failing
            failed = f"v{current.version} was rolled back by itself: {brief.automatic}"
        self._record(run, op, target, mv, resources, url, started, failed)
        run.remember(version=mv.version)  # what /rollback goes back to
        failpoints.hit("operation.switched")
        before = (current.model, current.version) if current is not None else None
        refused = self._write_back(run, op, brief, mv, before)
        watching.begin(
            self.repos,
            self.settings,
            op,
            version=mv.version,
            deployment=started.deployment,
            before=current,
        )
        return self._succeeded(run, op, mv, resources, url, latency_ms, refused)

    def _rollout(self, op: Operation) -> Rollout:
        environment = self.settings.environment(op.env)
        return environment.rollout if environment is not None else Rollout()

    def _canary(
        self,
        run: Run,
        op: Operation,
        brief: Brief,
        target: Target,
        ep: EndpointRef,
        mv: ModelVersion,
        started: Started,
        current: Endpoint,
    ) -> None:
        """The new version meets traffic step by step beside what serves (`canary.py`)."""
        try:
            serving_metrics = self.registry.resolve(current.model, version=current.version).metrics
        except Exception:  # the deltas are a nicety: a registry that fails them stops nothing
            serving_metrics = {}
        deadline = aware(op.created_at) + timedelta(seconds=self.settings.operation_timeout_s)
        Canary(
            run=run,
            op=op,
            brief=brief,
            target=target,
            ep=ep,
            mv=mv,
            started=started,
            serving=current.version,
            policy=self._rollout(op),
            clock=self.repos.clock,
            look_s=self.settings.canary_look_s,
            pause=self.leases.pause,
            deadline=deadline,
            metrics=serving_metrics,
            abort=lambda why, share: self._abort(op, why, share),
        ).carry_out()

    def _abort(self, op: Operation, why: str, share: int) -> None:
        """`/canary <endpoint> abort` asked by the bot itself, admitted and audited as one."""
        if self.decide is None:
            return
        try:
            self.decide(
                endpoint=op.endpoint,
                env=op.env,
                decision="abort",
                at=share,
                actor=Automatic(id=BOT, name=BOT, why=why),
                command=f"canary {op.endpoint} abort in {op.env} at {share}% (by itself: {why})",
            )
        except ChatOpsError as exc:  # the abort goes on all the same: only its record failed
            log.error("the canary abort of %s could not be recorded: %s", op.id, exc.message)

    def _end_canary(self, run: Run, op: Operation) -> str:
        """A canary an operation that is not to go on left splitting traffic (its bot
        process died in it): every request back to what serves, the new deployment stopped.
        Never two versions sharing traffic without an operation that owns them. What became
        of it, for the operation's final word ("" when it was in no canary)."""
        fresh = self.repos.operations.get(op.id)
        remote = (fresh.remote or {}) if fresh is not None else {}
        deployment = str(remote.get("deployment") or "")
        target = self.targets.get(op.env)
        share = fresh.canary_share if fresh is not None else None
        if share is None or not deployment or target is None:
            return ""
        if not self.repos.operations.holds(run.op_id, run.hold):
            return ""  # another process runs it now, canary included
        current = self.repos.endpoints.get(op.env, op.endpoint)
        new, old, took = canary.what_it_took(op, remote, share, current)
        try:
            target.discard(EndpointRef(op.env, op.endpoint), deployment, run.target_step("discard"))
        except ChatOpsError as exc:
            log.warning("could not stop %s: %s", deployment, exc.message)
            return f"In its canary {took}; it could not be stopped: {exc.message}"
        said = f"In its canary {took}: every request went back to {old}, and {new} was stopped"
        run.emit(EventKind.INFO, "discard", said)
        return said

    def _switched(self, op: Operation) -> Interval | None:
        """What serves the endpoint, when an operation taken over after its switch was
        recorded made it serve (its write-back and its end may be left); else None."""
        if op.attempts <= 1:
            return None
        mine = self.repos.served.serving(op.env, op.endpoint)
        return mine if mine is not None and mine.operation == op.id else None

    def _before(self, op: Operation, mine: Interval) -> tuple[str, int] | None:
        """The model and version that served the endpoint until `mine` began."""
        just_before = mine.started - timedelta(microseconds=1)
        prior = [i for i in self.repos.served.at(op.endpoint, just_before) if i.env == op.env]
        return (prior[-1].model, prior[-1].version) if prior else None

    def _write_back(
        self,
        run: Run,
        op: Operation,
        brief: Brief,
        mv: ModelVersion,
        before: tuple[str, int] | None,
    ) -> str:
        """Move the environment's alias to what serves now, before the endpoint is let go
        (no one else may switch it meanwhile), taking the serving tag off `before` (what
        served until now); "" when written or when there is nothing to write, else why the
        registry refused."""
        environment = self.settings.environment(op.env)
        alias = environment.alias if environment is not None else None
        if alias is None or brief.action == "scale":  # a scale changes no version
            return ""
        recorded = self.repos.operations.get(op.id)  # its thread, as recorded by now
        value = steps.serving_value(recorded or op, brief, self.repos.clock.now())
        return steps.write_back(
            run, self.registry, env=op.env, alias=alias, mv=mv, value=value, before=before
        )

    def _already_live(
        self, run: Run, op: Operation, mv: ModelVersion, resources: Resources, current: Endpoint
    ) -> Outcome:
        text = f"{mv.label} is already live at {current.url} with {resources.describe()}"
        outcome = Outcome(ok=True, text=text, operation=run.op_id, url=current.url)
        self._end(run, op, OperationState.SUCCEEDED, outcome, EventKind.SUCCEEDED)
        return outcome

    def _discard(self, run: Run, target: Target, ep: EndpointRef, started: Started | None) -> None:
        """Stop the new deployment of a failed or cancelled rollout (it never took all the
        traffic; a canary's share goes back to what serves), while the operation is still
        ours; a failure to stop is logged, the first one told."""
        if started is None or not self.repos.operations.holds(run.op_id, run.hold):
            return
        try:
            target.discard(ep, started.deployment, run.target_step("discard"))
            said = (
                "the new deployment was stopped: every request goes to what served before"
                if isinstance(run.recall("canary_at"), int)
                else "the new deployment was stopped unused"
            )
            run.emit(EventKind.INFO, "discard", said)
        except ChatOpsError as exc:
            log.warning("could not stop %s: %s", started.deployment, exc.message)

    def _record(
        self,
        run: Run,
        op: Operation,
        target: Target,
        mv: ModelVersion,
        resources: Resources,
        url: str,
        started: Started,
        previous_failed: str = "",
    ) -> None:
        """What the endpoint serves now (and, in the served history, since when), written
        only while the operation is still this run's (checked in the same transaction)."""
        serving = Serving(
            env=op.env,
            name=op.endpoint,
            target=target.kind,
            model=mv.model,
            version=mv.version,
            resources=resources,
            url=url,
            deployment=started.deployment,
        )
        if not self.repos.endpoints.save(
            serving, op_id=run.op_id, hold=run.hold, previous_failed=previous_failed
        ):
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")

    def _succeeded(
        self,
        run: Run,
        op: Operation,
        mv: ModelVersion,
        resources: Resources,
        url: str,
        latency_ms: float,
        refused: str = "",
    ) -> Outcome:
        text = f"{mv.label} is live at {url}" + (f"; {refused}" if refused else "")
        outcome = Outcome(
            ok=True,
            text=text,
            operation=run.op_id,
            url=url,
            data={"latency_ms": latency_ms, "resources": resources.describe()},
        )
        self._end(
            run,
            op,
            OperationState.SUCCEEDED,
            outcome,
            EventKind.SUCCEEDED,
            url=url,
            version=mv.version,
            resources=resources.describe(),
            latency_ms=latency_ms,
        )
        return outcome

    # -- a stop --------------------------------------------------------------------------
    def _stop(
        self, run: Run, op: Operation, brief: Brief, target: Target, current: Endpoint | None
    ) -> Outcome:
        """Stop every deployment of the endpoint; it leaves /status only once the target
        confirmed that nothing of it serves (else the run fails and it stays)."""
        ep = EndpointRef(op.env, op.endpoint)
        with run.step("stop", f"stopping every deployment of {op.endpoint} in {op.env}") as done:
            target.stop(ep, run.target_step("stop"))
            done(f"nothing of {op.endpoint} serves any more")
        gone = self.repos.endpoints.delete(op.env, op.endpoint, op_id=run.op_id, hold=run.hold)
        if not gone and not self.repos.operations.holds(run.op_id, run.hold):
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")
        environment = self.settings.environment(op.env)
        alias = environment.alias if environment is not None else None
        refused = ""
        if alias is not None and current is not None:
            refused = steps.unwrite(run, self.registry, env=op.env, alias=alias, served=current)
        where = f" at {current.url}" if current else ""
        served = f"{brief.model} v{brief.version}{where}"
        text = f"{op.endpoint} in {op.env} is stopped (it served {served})."
        if refused:
            text += f" {refused[0].upper()}{refused[1:]}."
        outcome = Outcome(ok=True, text=text, operation=run.op_id)
        self._end(run, op, OperationState.SUCCEEDED, outcome, EventKind.SUCCEEDED)
        return outcome

    # -- the end -------------------------------------------------------------------------
    def _end(
        self,
        run: Run,
        op: Operation,
        state: OperationState,
        outcome: Outcome,
        told: EventKind,
        *,
        error: str = "",
        message: str | None = None,
        alert: Alert | None = None,
        **data: object,
    ) -> bool:
        """End the operation: its state, the release of its endpoint, its audit row and its
        final word (`told`, with `message`, else the outcome's text) are written in one
        transaction, before the final word reaches anyone (who may act on it at once).
        Then it is told (its data naming the outbox row, `OWED`), and marked sent. False if
        another process took it over meanwhile (that one ends it)."""
        # from here this process ends it: the heartbeat must not take the end for a lapse
        self.leases.ended(run.op_id)
        said, shown = scrub(outcome.text if message is None else message), scrub_value(data)
        headline = str(op.brief.get("headline") or f"{person(op.requested_by)}: {op.command}")
        final = {
            "kind": told.value,
            "message": said,
            "data": shown,
            "headline": headline,
            "elapsed_s": time.monotonic() - run.started,
        }
        try:
            with self.repos.db.session():
                ended = self.repos.operations.finish(run.op_id, state, error, hold=run.hold)
                if ended:
                    if run.lock is not None:  # forgotten here only once this commits
                        self.locker.release(*run.lock)
                    self._audit(op, outcome)
                    owed = self.outbox.owe(FINAL, final, front=op.front, operation_id=run.op_id)
                    if alert is not None:  # told by whichever process tells on-call
                        self.outbox.hand_on(
                            ALERT, asdict(alert), front=op.front, operation_id=run.op_id
                        )
        except StoreError as exc:
            # nothing of the end was kept, the lock included: the operation is left to be
            # taken over once its lease lapses, and ended then (what it did is recorded)
            log.error(
                "the end of operation %s could not be recorded (%s): a bot process takes it "
                "over and ends it once its lease lapses",
                run.op_id,
                exc.message,
            )
            run.lock = None  # still held in the database, by the operation, for its taker
            raise LeaseLost(f"operation {run.op_id}: its end could not be recorded") from exc
        if not ended:
            self._lost(run)
            return False
        run.lock = None
        failpoints.hit("operation.ended")
        run.emit(told, "", said, **{**shown, OWED: owed})
        failpoints.hit("operation.told")
        self.outbox.sent(owed)
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
            elsewhere=True,
        )

    @staticmethod
    def _handed_over(run: Run) -> Outcome:
        """This process stops: the operation, its lock and what it made are left as recorded
        for the process that takes it over (the Runner lets its lease lapse now)."""
        run.lost = True
        run.lock = None
        log.info("operation %s handed over at a step boundary: this bot process stops", run.op_id)
        return Outcome(
            ok=False,
            text="this bot process stopped; another takes the operation over where it was",
            operation=run.op_id,
            elsewhere=True,
        )

    def _let_go(self, run: Run) -> None:
        if run.lock is not None:
            self.locker.release(*run.lock)
            run.lock = None

    def _failing(self, run: Run, op: Operation, exc: ChatOpsError, *, known: bool) -> Outcome:
        """`_failed`, for what went wrong outside a rollout's steps; an end that cannot be
        recorded leaves the operation to be taken over."""
        try:
            current = self.repos.endpoints.get(op.env, op.endpoint) if known else None
            ended = self._end_canary(run, op)
            if ended:
                exc = type(exc)(f"{exc.message.rstrip('.')}. {ended}.", log_tail=exc.log_tail)
            return self._failed(run, op, current, exc)
        except LeaseLost:
            return self._lost(run)

    def _failed(
        self, run: Run, op: Operation, current: Endpoint | None, exc: ChatOpsError
    ) -> Outcome:
        serving, down = self._serving(op, current)
        if down and not run.lost:
            # its stretch of serving ended in a failure: the promotion order counts it for
            # nothing
            self.repos.served.failed(
                op.env,
                op.endpoint,
                f"found down after a failed {op.kind}",
                op_id=run.op_id,
                hold=run.hold,
            )
        told = isinstance(exc, NotFound | Cancelled)
        text = exc.message if told else f"failed: {exc.message}"
        alert = None
        if isinstance(exc, Aborted) and exc.by_itself:
            alert = Alert(
                AlertKind.ABORTED,
                op.env,
                op.endpoint,
                f"{op.endpoint} in {op.env}: the canary of {person(op.requested_by)}'s deploy was "
                f"{exc.message}; {serving}",
                where=dict((self.repos.operations.get(op.id) or op).reply_to or {}),
                version=current.version if current is not None else None,
            )
        outcome = Outcome(
            ok=False,
            text=f"{text}\n{serving}",
            operation=run.op_id,
            log_tail=exc.log_tail,
            data={"serving": serving},
        )
        self._end(
            run,
            op,
            OperationState.FAILED,
            outcome,
            EventKind.FAILED,
            error=exc.message,
            message=text,
            alert=alert,
            log_tail=exc.log_tail,
            serving=serving,
        )
        return outcome

    def _serving(self, op: Operation, current: Endpoint | None) -> tuple[str, bool]:
        """What serves the endpoint now, as the target sees it; and whether the target said
        that what served it (other than for a stop) is down."""
        if current is None:
            return (
                f"nothing was serving {op.endpoint} in {op.env} before, and nothing serves now",
                False,
            )
        target = self.targets.get(op.env)
        try:
            up = target is not None and target.health(EndpointRef(op.env, op.endpoint)).up
            asked = target is not None
        except ChatOpsError:
            up = asked = False
        served = f"{current.model} v{current.version}"
        if up:
            return f"{served} still serves at {current.url}", False
        if op.kind == "stop":
            return (
                f"{served} may still serve at {current.url}: the target did not confirm it "
                "stopped, so /status keeps showing it"
            ), False
        return f"{served} was serving before, but is down now", asked

    def _audit(self, op: Operation, outcome: Outcome) -> None:
        # read as recorded: a brief this version cannot read (Brief.of) still ends audited
        automatic = bool(op.brief.get("automatic"))
        self.audit.record(
            audited_as(str(op.brief.get("action") or op.kind), automatic),
            actor_id=str(op.brief.get("actor_id") or ""),
            actor_name=str(op.brief.get("actor_name") or op.requested_by),
            command=op.command,
            env=op.env,
            endpoint=op.endpoint,
            result=outcome,
            approver=str(op.brief.get("approver") or ""),
        )


def _since(endpoint: Endpoint, clock: Clock) -> float:
    return (clock.now() - aware(endpoint.updated_at)).total_seconds()


def _unexpected(exc: Exception, op: Operation) -> ChatOpsError:
    log.error("operation %s met an unexpected %s", op.id, type(exc).__name__, exc_info=exc)
    return ChatOpsError(f"an unexpected {type(exc).__name__}")
