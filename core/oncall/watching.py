"""The watch window after a switch, and automatic rollback.

After a deploy or a rollback switches traffic, the endpoint is watched for its environment's
`watch_s`: a health check every `check_s`, and, where the target counts traffic, the answers
of the deployment it switched to, since its switch (never another version's, nor what came
before the switch). Down at two checks in a row, or more than `max_error_rate` of at least
`watch_min_requests` of its own answers failing, and the bot asks the Deployer, as its own
actor (`Automatic`), to roll it back to what served before: admitted as a typed `/rollback`
is (it takes the endpoint's lock, so it never runs beside an admin's operation, nor through a
freeze), audited as automatic, and run here at once.

The watch judges only what it watches, and never undoes an admin:
- an admin's operation on the endpoint during the window ends the watch (the Deployer ends
  it when it admits the operation): what the admin does is theirs to judge;
- the bot never goes back to a version that failed its own watch, nor to the one an admin's
  rollback just moved away from; with no such version to go back to, it tells on-call so.

A watch holds no lock. It is a row in the state database held by one bot process at a time
under a lease; when that process dies, another takes it over. A rollback the bot asked for
is not watched itself, so two failing versions never take turns; the watch between rollouts
(core/oncall/sentinel.py) still sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from core.admission.deployer import Deployer
from core.admission.gates import Automatic, audited_as
from core.config import Environment, Settings
from core.errors import ChatOpsError, StoreError
from core.events import Event, NullReporter, Refusal, Reporter
from core.execution.run import Brief, span
from core.execution.taking import Source, rounds
from core.marks import command, person
from core.oncall.alerts import BOT, Alert, AlertKind, Alerts
from core.oncall.sentinel import Sentinel
from core.outbox import ALERT, Outbox
from core.store.models import Endpoint, Operation, WatchRow, WatchState, aware
from core.store.repos import Repositories
from core.store.repos.operations import OperationRepository
from core.targets.base import EndpointRef, Target

log = logging.getLogger("chatops.core")
CHECK_S = 10.0  # between two checks of a watched endpoint
DOWN_CHECKS = 2  # failed health checks in a row that make an endpoint down
WATCHED = frozenset({"deploy", "rollback"})  # a scale serves the same version: not watched
AUTO_ROLLBACK = audited_as("rollback", True)  # the audit trail's name for the bot's rollback
# how a watch that found its version failing ended
FAILED_STATES = frozenset({WatchState.ROLLED_BACK, WatchState.HELD, WatchState.FAILED})


class Worker(Protocol):
    """What the watch needs of this process's Runner: who it is, and where an operation
    reports (the thread of the front that asked for it)."""

    @property
    def owner(self) -> str: ...

    @property
    def reporter_for(self) -> Callable[[Operation], Reporter]: ...


def begin(
    repos: Repositories,
    settings: Settings,
    op: Operation,
    *,
    version: int,
    deployment: str,
    before: Endpoint | None,
) -> None:
    """Watch what `op` just switched the endpoint to, if its environment watches and `op`
    is a deploy or a rollback people asked for; a failure to record it is logged only
    (the switch is done and stays)."""
    env = settings.environment(op.env)
    if env is None or not env.watch_s or op.kind not in WATCHED:
        return
    brief = Brief.of(op)
    if brief.automatic:
        return
    previous = before.version if before is not None and before.version != version else None
    try:
        fresh = repos.operations.get(op.id)  # where it reports, as its front recorded it
        repos.watches.begin(
            env=op.env,
            endpoint=op.endpoint,
            operation_id=op.id,
            model=brief.model or op.endpoint,
            version=version,
            deployment=deployment,
            previous=previous,
            reply_to=(fresh or op).reply_to or {},
            watch_s=env.watch_s,
        )
    except StoreError as exc:
        log.warning("%s in %s is not watched: %s", op.endpoint, op.env, exc.message)


class Watcher:
    """Checks the watches this process holds, rolls back the failing ones, and runs the
    watch between rollouts; `tick` does one round (tests call it after moving the clock),
    the process's taker loop does them in the background (`sources`)."""

    def __init__(
        self,
        *,
        settings: Settings,
        repos: Repositories,
        targets: dict[str, Target],
        deployer: Deployer,
        runner: Worker,
        alerts: Alerts,
        outbox: Outbox,
        fronts: frozenset[str] = frozenset({""}),
        check_s: float = CHECK_S,
        scan_s: float | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.repos = repos
        self.watches = repos.watches
        self.clock = repos.clock
        self.targets = targets
        self.deployer = deployer  # admits the rollbacks, as any other
        self.runner = runner  # whose reporters tell the rollbacks where their reply_to says
        self.alerts = alerts
        # a verdict's alert is owed in the transaction that records the verdict
        self.outbox = outbox
        self.fronts = fronts  # only watches of operations this process can report on
        self.owner = runner.owner
        self.check_s = check_s
        self.poll_s = poll_s
        self.sentinel = Sentinel(
            repos=repos,
            targets=targets,
            alerts=alerts,
            outbox=outbox,
            scan_s=scan_s if scan_s is not None else 3 * check_s,
            down_checks=DOWN_CHECKS,
        )
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auto-rollback")
        self._pending: list[Future[None]] = []

    # -- one round -------------------------------------------------------------------------
    def tick(self) -> None:
        """Take the watches nobody holds, check those due (a failing one is rolled back in
        the background: `settle` waits for it), then the endpoints between rollouts."""
        now = self.clock.now()
        held = self.watches.claim(self.owner, lease_s=self.settings.lease_s, fronts=self.fronts)
        for watch in held:
            last = aware(watch.checked_at) if watch.checked_at else None
            due = last is None or (now - last).total_seconds() >= self.check_s
            if due or now >= aware(watch.ends_at):
                try:
                    self._check(watch, now)
                except ChatOpsError as exc:  # the next round checks it again
                    log.warning("could not check the watch of %s: %s", watch.endpoint, exc.message)
        while self._tell_owed():
            pass
        self.sentinel.tick(now)

    # -- verdicts told once ----------------------------------------------------------------
    def _owe(self, alert: Alert) -> str:
        """Record `alert` as owed (inside the caller's transaction: the verdict's)."""
        return self.outbox.owe(ALERT, asdict(alert), front=self.alerts.front)

    def _tell_owed(self) -> bool:
        """Tell one verdict a bot process recorded and died before telling; False if none."""
        row = self.outbox.take(ALERT, frozenset({self.alerts.front}))
        if row is None:
            return False
        try:
            alert = Alert(**{**row.payload, "kind": AlertKind(row.payload["kind"])})
        except (KeyError, TypeError, ValueError):
            log.error("alert %s cannot be read by this version: dropped", row.id)
        else:
            log.info("telling %s of %s in %s, left untold", alert.kind, alert.endpoint, alert.env)
            self.sentinel.tell(alert, row.id)
            return True
        self.outbox.sent(row.id)
        return True

    def _check(self, w: WatchRow, now: datetime) -> None:
        env = self.settings.environment(w.env)
        target = self.targets.get(w.env)
        current = self.repos.endpoints.get(w.env, w.endpoint)
        if env is None or target is None or current is None or current.deployment != w.deployment:
            self.watches.finish(w.id, self.owner, WatchState.SUPERSEDED, SUPERSEDED)
            return
        ends = aware(w.ends_at)
        if w.checks == 0 and now >= ends:
            log.warning("nobody watched %s in %s in time: its watch lapsed", w.endpoint, w.env)
            self.watches.finish(w.id, self.owner, WatchState.LAPSED, LAPSED)
            return
        busy = {(op.env, op.endpoint) for op in self.repos.operations.running()}
        if (w.env, w.endpoint) in busy:
            # the operation that switched is ending (an admin's new one ended this watch)
            self.watches.update(w.id, self.owner, checked_at=now)
            return
        ref = EndpointRef(w.env, w.endpoint)
        health = target.health(ref)
        downs = 0 if health.up else w.downs + 1
        if downs >= DOWN_CHECKS:
            self._failed(w, f"was down at {downs} checks in a row ({health.detail})")
            return
        failing = self._errors(w, env, target, ref) if health.up else None
        if failing:
            self._failed(w, failing)
            return
        if now >= ends and downs == 0:
            text = CLEAN.format(label=f"{w.model} v{w.version}", window=span(env.watch_s))
            clean = Alert(AlertKind.CLEAN, w.env, w.endpoint, text, w.reply_to)
            with self.repos.db.session():
                ended = self.watches.finish(
                    w.id, self.owner, WatchState.CLEAN, f"{w.checks + 1} checks"
                )
                owed = self._owe(clean) if ended else ""
            if ended:
                self.sentinel.tell(clean, owed)
            return
        self.watches.update(w.id, self.owner, checks=w.checks + 1, downs=downs, checked_at=now)

    def _errors(
        self, w: WatchRow, env: Environment, target: Target, ref: EndpointRef
    ) -> str | None:
        """Why the watched deployment's own answers since its switch fail the watch, or None
        (too few of them to judge, a rate within bounds, a target that does not count)."""
        traffic = target.traffic(ref, window_s=self.check_s)
        own = traffic.by_deployment.get(w.deployment) if traffic.known else None
        if own is None or own.error_rate is None or own.requests < env.watch_min_requests:
            return None
        if own.error_rate <= env.max_error_rate:
            return None
        return (
            f"answered {own.errors} of {own.requests} requests with a server error "
            f"({own.error_rate:.1%}, more than max_error_rate {env.max_error_rate:.1%})"
        )

    # -- a failed watch --------------------------------------------------------------------
    def _failed(self, w: WatchRow, why: str) -> None:
        """Roll back to what served before, by itself, once (only the holder of the watch
        gets past `finish`); or say why not."""
        back, no = self._back_to(w)
        state = WatchState.ROLLED_BACK if back is not None else WatchState.FAILED
        failed = FAILED.format(
            endpoint=w.endpoint, env=w.env, label=f"{w.model} v{w.version}", why=why
        )
        command = COMMAND.format(endpoint=w.endpoint, env=w.env, op=w.operation_id)
        if back is None:
            # the verdict, its audit row and its alert: one transaction
            text = f"{failed} {no}"
            alert = self._not_rolled_back(w, text)
            with self.repos.db.session():
                if not self.watches.finish(w.id, self.owner, state, why):
                    return
                self.deployer.audit.write(
                    AUTO_ROLLBACK,
                    actor_id=BOT,
                    actor_name=BOT,
                    command=command,
                    env=w.env,
                    endpoint=w.endpoint,
                    outcome="refused",
                    detail=text,
                )
                owed = self._owe(alert)
            self.sentinel.tell(alert, owed)
            return
        if not self.watches.finish(w.id, self.owner, state, why):
            return
        rollback = self._pool.submit(self._roll_back, w, why, back, failed, command)
        # the rollbacks still under way: one that ended is let go (a bot runs for months)
        self._pending = [*(f for f in self._pending if not f.done()), rollback]

    def _back_to(self, w: WatchRow) -> tuple[int | None, str]:
        """The version to roll back to; or None, and why there is none the bot may go to."""
        where = {"endpoint": w.endpoint, "env": w.env, "previous": w.previous}
        if w.previous is None:
            return None, NOTHING_BEFORE.format(**where)
        verdict = self.watches.verdict(w.env, w.endpoint, w.previous)
        if verdict is not None and verdict.state in FAILED_STATES:
            return None, NO_GOING_BACK.format(reason=FAILED_BEFORE.format(**where), **where)
        switched = self.repos.operations.get(w.operation_id)
        if switched is not None and switched.kind == "rollback":  # a person's: ours are unwatched
            reason = MOVED_AWAY.format(who=person(switched.requested_by), op=switched.id, **where)
            return None, NO_GOING_BACK.format(reason=reason, **where)
        return w.previous, ""

    def _roll_back(self, w: WatchRow, why: str, back: int, failed: str, command: str) -> None:
        """Have the Deployer admit the rollback as the bot's own and run it here; tell
        on-call once it is admitted, and again when it ended."""

        def admitted(op_id: str) -> dict[str, Any]:
            text = f"{failed} {ROLLING_BACK.format(previous=back, op=op_id)}"
            alert = Alert(AlertKind.ROLLING_BACK, w.env, w.endpoint, text, w.reply_to, w.version)
            return self.alerts.tell(alert)

        reporter = RollbackReporter(
            where=self.alerts.thread_of(w.reply_to, command),
            reporter_for=self.runner.reporter_for,
            operations=self.repos.operations,
            admitted=admitted,
        )
        try:
            result = self.deployer.rollback(
                endpoint=w.endpoint,
                env=w.env,
                actor=Automatic(id=BOT, name=BOT, why=why),
                command=command,
                reporter=reporter,
                serving=w.version,
                to=back,
            )
            if isinstance(result, Refusal):
                self._not_admitted(w, failed, result)
                return
            if result.elsewhere:  # whoever carries it on reports its end in its thread
                log.info(
                    "the automatic rollback %s goes on in another bot process", result.operation
                )
                return
            oncall = reporter.admitted(result.operation or "")
            what = f"{w.endpoint} in {w.env}"
            text = (
                ROLLED_BACK.format(what=what, text=result.text)
                if result.ok
                else ROLLBACK_FAILED.format(what=what, text=result.text)
            )
            alert = Alert(
                AlertKind.ROLLED_BACK,
                w.env,
                w.endpoint,
                text,
                w.reply_to,
                back,
                oncall=dict(oncall),
                ok=result.ok,
            )
            self.alerts.tell(alert)
        except Exception:
            log.exception(
                "the automatic rollback of %s in %s failed unexpectedly", w.endpoint, w.env
            )

    def _not_admitted(self, w: WatchRow, failed: str, refusal: Refusal) -> None:
        """The Deployer refused the rollback (audited there): told, unless what the watch
        judged no longer serves (someone changed it since: what they did stays)."""
        now = self.repos.endpoints.get(w.env, w.endpoint)
        if now is None or now.deployment != w.deployment:
            self.watches.note(w.id, WatchState.SUPERSEDED, SUPERSEDED)
            log.info("%s in %s changed while its watch decided: not rolled back", w.endpoint, w.env)
            return
        held = self.deployer.locker.held(w.env, w.endpoint) is not None
        why = refusal.text if refusal.text.endswith((".", "!", "?")) else f"{refusal.text}."
        text = f"{failed} {HELD.format(held=why, endpoint=w.endpoint, env=w.env)}"
        alert = self._not_rolled_back(w, text)
        with self.repos.db.session():
            self.watches.note(w.id, WatchState.HELD if held else WatchState.FAILED, refusal.text)
            owed = self._owe(alert)
        self.sentinel.tell(alert, owed)

    @staticmethod
    def _not_rolled_back(w: WatchRow, text: str) -> Alert:
        return Alert(AlertKind.NOT_ROLLED_BACK, w.env, w.endpoint, text, w.reply_to, w.version)

    # -- in the background -----------------------------------------------------------------
    def settle(self, timeout: float | None = None) -> bool:
        """Wait for the rollbacks under way here; whether they all ended within `timeout`."""
        pending, self._pending = self._pending, []
        _done, not_done = wait(pending, timeout=timeout)
        self._pending.extend(not_done)
        return not not_done

    def sources(self) -> list[Source]:
        """What the watch gives its process's one taker loop: a round every `poll_s`."""
        return [rounds("watches", self.tick, self.poll_s)]

    def stop(self) -> None:
        """Let a rollback under way finish (the taker loop asks for no more rounds)."""
        self._pool.shutdown(wait=True)


class RollbackReporter:
    """Where the bot's own rollback reports: the thread its watch reported in (`where`, for
    the Deployer to record), through this process's front; `admitted` is called once, with
    the operation's id, before its first event (the Deployer admitted it)."""

    def __init__(
        self,
        *,
        where: dict[str, Any],
        reporter_for: Callable[[Operation], Reporter],
        operations: OperationRepository,
        admitted: Callable[[str], dict[str, Any]],
    ) -> None:
        self._where = dict(where)
        self._reporter_for = reporter_for
        self._operations = operations
        self._admitted = admitted
        self._to: Reporter | None = None
        self._oncall: dict[str, Any] | None = None

    @property
    def where(self) -> dict[str, Any]:
        return dict(self._where)

    def admitted(self, op_id: str) -> dict[str, Any]:
        """Where on-call was told of the admitted rollback (telling it the first time)."""
        if self._oncall is None:
            self._oncall = self._admitted(op_id)
        return self._oncall

    def report(self, event: Event) -> None:
        self.admitted(event.operation)
        if self._to is None:
            op = self._operations.get(event.operation)
            self._to = self._reporter_for(op) if op is not None else NullReporter()
        self._to.report(event)


# -- texts -------------------------------------------------------------------------------
SUPERSEDED = "another operation changed or stopped the endpoint"
LAPSED = "no bot process watched it before its window ended"
CLEAN = "{label} served healthy through its {window} watch: nothing to roll back."
FAILED = ":rotating_light: {endpoint} in {env}: {label} {why}."
NOTHING_BEFORE = (
    "Nothing served {endpoint} before it, so there is nothing to roll back to: deploy "
    "another version, or `" + command("stop {endpoint} in {env}") + "`."
)
NO_GOING_BACK = (
    "It was not rolled back by itself: {reason} An admin decides what serves now: deploy "
    "another version, or `" + command("stop {endpoint} in {env}") + "`."
)
FAILED_BEFORE = "v{previous}, which served before it, failed its own watch."
MOVED_AWAY = "v{previous}, which served before it, is what {who} rolled back from ({op})."
HELD = (
    "It was not rolled back by itself, because {held} Once that ends, an admin can type "
    "`" + command("rollback {endpoint} in {env}") + "` if it is still wanted."
)
ROLLING_BACK = "Rolling back to v{previous} by itself ({op})."
COMMAND = "automatic rollback of {endpoint} in {env} (its watch after {op} failed)"
ROLLED_BACK = "{what} is rolled back: {text}"
ROLLBACK_FAILED = "The automatic rollback of {what} failed: {text}"
