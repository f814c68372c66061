"""The watch window after a switch, and automatic rollback.

After a deploy or a rollback switches traffic, the endpoint is watched for its environment's
`watch_s`: a health check every `check_s`, and, where the target counts traffic, the error
rate of the version it switched to. Down at two checks in a row, or more than
`max_error_rate` of at least `watch_min_requests` answers failing, and the bot rolls it back
by itself to what served before: a rollback operation it asks for itself, admitted as any
other (it takes the endpoint's lock, so it never runs beside an admin's operation, nor
through a freeze) and run by the Runner under a lease.

A watch holds no lock: an admin may deploy, roll back, scale or stop meanwhile, and a newer
rollout ends the old watch (it watches its own switch instead). A watch is a row in the
state database held by one bot process at a time under a lease; when that process dies,
another takes it over. A rollback a watch asked for is not watched itself, so two failing
versions never take turns; the watch between rollouts (core/sentinel.py) still sees it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import TYPE_CHECKING

from core.alerts import BOT, Alert, AlertKind, Alerts
from core.audit import AuditLog
from core.config import Environment, Settings
from core.errors import ChatOpsError, StoreError
from core.locker import Locker
from core.models import Endpoint, Operation, WatchRow, WatchState, aware
from core.repos import Repositories
from core.run import Plan, span
from core.sentinel import Sentinel
from core.targets.base import EndpointRef, Target

if TYPE_CHECKING:
    from core.runner import Runner

log = logging.getLogger("chatops.core")
CHECK_S = 10.0  # between two checks of a watched endpoint
DOWN_CHECKS = 2  # failed health checks in a row that make an endpoint down
WATCHED = frozenset({"deploy", "rollback"})  # a scale serves the same version: not watched
AUTO_ROLLBACK = "auto-rollback"  # the audit trail's name for a rollback the bot asked for


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
    if env is None or not env.watch_s or op.kind not in WATCHED or op.plan.get("automatic"):
        return
    previous = before.version if before is not None and before.version != version else None
    try:
        fresh = repos.operations.get(op.id)  # where it reports, as its front recorded it
        repos.watches.begin(
            env=op.env,
            endpoint=op.endpoint,
            operation_id=op.id,
            model=str(op.plan.get("model") or op.endpoint),
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
    `start` does rounds in the background."""

    def __init__(
        self,
        *,
        settings: Settings,
        repos: Repositories,
        targets: dict[str, Target],
        locker: Locker,
        audit: AuditLog,
        runner: Runner,
        alerts: Alerts,
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
        self.locker = locker
        self.audit = audit
        self.runner = runner  # runs the rollbacks, reporting where their reply_to says
        self.alerts = alerts
        self.fronts = fronts  # only watches of operations this process can report on
        self.owner = runner.owner
        self.check_s = check_s
        self.poll_s = poll_s
        self.sentinel = Sentinel(
            repos=repos,
            targets=targets,
            alerts=alerts,
            scan_s=scan_s if scan_s is not None else 3 * check_s,
            down_checks=DOWN_CHECKS,
        )
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auto-rollback")
        self._pending: list[Future[None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        self.sentinel.tick(now)

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
            # someone is changing it: not judged meanwhile (their switch ends this watch)
            self.watches.update(w.id, self.owner, checked_at=now)
            return
        ref = EndpointRef(w.env, w.endpoint)
        health = target.health(ref)
        downs = 0 if health.up else w.downs + 1
        if downs >= DOWN_CHECKS:
            self._failed(w, current, f"was down at {downs} checks in a row ({health.detail})")
            return
        elapsed = (now - aware(w.started_at)).total_seconds()
        failing = self._errors(w, env, target, ref, elapsed) if health.up else None
        if failing:
            self._failed(w, current, failing)
            return
        if now >= ends and downs == 0:
            if self.watches.finish(w.id, self.owner, WatchState.CLEAN, f"{w.checks + 1} checks"):
                text = CLEAN.format(label=f"{w.model} v{w.version}", window=span(env.watch_s))
                self.alerts.tell(Alert(AlertKind.CLEAN, w.env, w.endpoint, text, w.reply_to))
            return
        self.watches.update(w.id, self.owner, checks=w.checks + 1, downs=downs, checked_at=now)

    def _errors(
        self, w: WatchRow, env: Environment, target: Target, ref: EndpointRef, elapsed: float
    ) -> str | None:
        """Why the version's error rate fails the watch, or None (too few answers by it to
        judge, a rate within bounds, a target that does not count)."""
        traffic = target.traffic(ref, window_s=max(1.0, min(env.watch_s, elapsed)))
        if not traffic.known or traffic.error_rate is None:
            return None
        served = traffic.by_version.get(w.version, 0) or (
            traffic.requests if traffic.version == w.version else 0
        )
        if served < env.watch_min_requests or traffic.error_rate <= env.max_error_rate:
            return None
        return (
            f"answered {traffic.errors} of {traffic.requests} requests with a server error "
            f"({traffic.error_rate:.1%}, more than max_error_rate {env.max_error_rate:.1%})"
        )

    # -- a failed watch --------------------------------------------------------------------
    def _failed(self, w: WatchRow, current: Endpoint, why: str) -> None:
        """Roll back to what served before, by itself, once (only the holder of the watch
        gets past `finish`); or say why not."""
        state = WatchState.ROLLED_BACK if w.previous is not None else WatchState.FAILED
        if not self.watches.finish(w.id, self.owner, state, why):
            return
        failed = FAILED.format(
            endpoint=w.endpoint, env=w.env, label=f"{w.model} v{w.version}", why=why
        )
        command = COMMAND.format(endpoint=w.endpoint, env=w.env, op=w.operation_id)
        if w.previous is None:
            text = f"{failed} {NOTHING_BEFORE.format(endpoint=w.endpoint, env=w.env)}"
            self._refused(w, command, text)
            return
        headline = HEADLINE.format(
            endpoint=w.endpoint, env=w.env, version=w.version, previous=w.previous, why=why
        )
        attempt = self.locker.try_lock(w.env, w.endpoint, holder=BOT, reason=headline)
        if not attempt.acquired:
            held = self.locker.refusal(w.env, w.endpoint, attempt).text
            self.watches.note(w.id, WatchState.HELD, held)
            text = f"{failed} {HELD.format(held=held, endpoint=w.endpoint, env=w.env)}"
            self._refused(w, command, text)
            return
        # under the lock now, nobody changes the endpoint; an admin may have since the check
        # (a stop, a scale, a deploy): what they did stays, and this watch is over
        now = self.repos.endpoints.get(w.env, w.endpoint)
        if now is None or now.deployment != w.deployment:
            self.locker.release(w.env, w.endpoint, attempt.token)
            self.watches.note(w.id, WatchState.SUPERSEDED, SUPERSEDED)
            log.info("%s in %s changed while its watch decided: not rolled back", w.endpoint, w.env)
            return
        resources = now.resources
        plan = Plan(
            action="rollback",
            model=w.model,
            version=w.previous,
            alias=None,
            cpu=resources.cpu,
            memory_mb=resources.memory_mb,
            replicas=resources.replicas,
            gpus=resources.gpus,
            headline=headline,
            actor_id=BOT,
            actor_name=BOT,
        ).as_dict()
        try:
            op = self.repos.operations.enqueue(
                kind="rollback",
                env=w.env,
                endpoint=w.endpoint,
                requested_by=BOT,
                command=command,
                plan={**plan, "automatic": why, "watch": w.id},
                reply_to=self.alerts.thread_of(w.reply_to, command),
                lock_token=attempt.token,
                owner=self.owner,
                lease_s=self.settings.lease_s,
            )
        except BaseException:
            self.locker.release(w.env, w.endpoint, attempt.token)
            raise
        text = f"{failed} {ROLLING_BACK.format(previous=w.previous, op=op.id)}"
        oncall = self.alerts.tell(
            Alert(AlertKind.ROLLING_BACK, w.env, w.endpoint, text, w.reply_to, w.version)
        )
        self._pending.append(self._pool.submit(self._roll_back, op, w, oncall))

    def _roll_back(self, op: Operation, w: WatchRow, oncall: dict[str, object]) -> None:
        try:
            outcome = self.runner.run(op)
            what = f"{w.endpoint} in {w.env}"
            text = (
                ROLLED_BACK.format(what=what, text=outcome.text)
                if outcome.ok
                else ROLLBACK_FAILED.format(what=what, text=outcome.text)
            )
            self.alerts.tell(
                Alert(
                    AlertKind.ROLLED_BACK,
                    w.env,
                    w.endpoint,
                    text,
                    w.reply_to,
                    w.previous,
                    oncall=dict(oncall),
                    ok=outcome.ok,
                )
            )
        except Exception:
            log.exception("the automatic rollback %s failed unexpectedly", op.id)

    def _refused(self, w: WatchRow, command: str, text: str) -> None:
        """A failed watch that was not rolled back: told, and audited as refused."""
        self.audit.write(
            AUTO_ROLLBACK,
            actor_id=BOT,
            actor_name=BOT,
            command=command,
            env=w.env,
            endpoint=w.endpoint,
            outcome="refused",
            detail=text,
        )
        alert = Alert(AlertKind.NOT_ROLLED_BACK, w.env, w.endpoint, text, w.reply_to, w.version)
        self.alerts.tell(alert)

    # -- in the background -----------------------------------------------------------------
    def settle(self, timeout: float | None = None) -> bool:
        """Wait for the rollbacks under way here; whether they all ended within `timeout`."""
        pending, self._pending = self._pending, []
        _done, not_done = wait(pending, timeout=timeout)
        self._pending.extend(not_done)
        return not not_done

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.tick()
            except Exception:  # a round that failed must not end the watching
                log.exception("a round of watching failed")

    def stop(self) -> None:
        """Check nothing more; let a rollback under way finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)


# -- texts -------------------------------------------------------------------------------
SUPERSEDED = "another operation changed or stopped the endpoint"
LAPSED = "no bot process watched it before its window ended"
CLEAN = "{label} served healthy through its {window} watch: nothing to roll back."
FAILED = ":rotating_light: {endpoint} in {env}: {label} {why}."
NOTHING_BEFORE = (
    "Nothing served {endpoint} before it, so there is nothing to roll back to: deploy "
    "another version, or `/stop {endpoint} in {env}`."
)
HELD = (
    "It was not rolled back by itself, because {held} Once that ends, an admin can type "
    "`/rollback {endpoint} in {env}` if it is still wanted."
)
ROLLING_BACK = "Rolling back to v{previous} by itself ({op})."
HEADLINE = (
    BOT + " is rolling {endpoint} in {env} back from v{version} to v{previous} by itself: "
    "v{version} {why}"
)
COMMAND = "automatic rollback of {endpoint} in {env} (its watch after {op} failed)"
ROLLED_BACK = "{what} is rolled back: {text}"
ROLLBACK_FAILED = "The automatic rollback of {what} failed: {text}"
