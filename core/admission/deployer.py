"""The Deployer admits every change to what serves, as a recorded operation.

deploy/scale/rollback/stop: authorise -> work out what it would do (`Intents`) -> the
`gates` (limits) -> lock the endpoint (`Locker`) -> record a durable Operation with its brief.
A plan (`core.admission.plans`) goes through the same functions, and changes nothing. The Deployer
runs nothing itself: a caller that waits has the Runner run the operation here and now
(`run`); else any bot process's Runner takes it.
Refusals are audited here; an operation's outcome is audited when it ends.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from core.admission.gates import Admission, Automatic, promotion_hint
from core.admission.gradual import gradual_of
from core.admission.intents import Intent, Intents
from core.admission.locker import Locker
from core.admission.roles import Action, Actor
from core.audit import AuditLog
from core.config import Environment, Settings
from core.drift import DriftGuard
from core.events import EndpointStatus, Notice, Outcome, Refusal, Reporter
from core.execution.run import Brief, where_of
from core.marks import person
from core.oncall.status import endpoint_statuses
from core.store.models import Endpoint, Operation
from core.store.repos import Repositories
from core.targets.base import Target

log = logging.getLogger("chatops.core")
RunHere = Callable[[Operation, Reporter], Outcome]


class Deployer:
    def __init__(
        self,
        *,
        settings: Settings,
        repos: Repositories,
        targets: dict[str, Target],
        locker: Locker,
        audit: AuditLog,
        owner: str,
        run_here: RunHere,
        known_models: Callable[[], list[str]] | None = None,
        drift: DriftGuard | None = None,
    ) -> None:
        self.settings = settings
        self.repos = repos
        self.targets = targets
        self.locker = locker
        self.audit = audit
        self.admission = Admission(
            settings=settings, audit=audit, locker=locker, repos=repos, targets=targets
        )
        self.owner = owner  # this process, in `operations.owner`, for what it runs at once
        self.run_here = run_here
        self.drift = drift  # what /status marks as drifted from its environment's alias
        # what each change would do: the same for the command and for its plan
        self.intents = Intents(repos=repos, locker=locker, known_models=known_models)

    # -- locks -----------------------------------------------------------------------------
    def freeze(
        self, *, endpoint: str, env: str | None, reason: str, actor: Actor, command: str
    ) -> Notice | Refusal:
        """A sticky lock: no rollout of the endpoint until an admin unlocks it."""
        environment = self.admission.admit(Action.LOCK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        result = self.locker.freeze(environment.name, endpoint, holder=actor.shown, reason=reason)
        return self.admission.audited(
            Action.LOCK, actor, command, environment.name, endpoint, result
        )

    def unlock(
        self, *, endpoint: str, env: str | None, actor: Actor, command: str
    ) -> Notice | Refusal:
        """Lift a freeze, or the lock of an operation that no live bot process runs."""
        environment = self.admission.admit(Action.UNLOCK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        result = self.locker.unlock(environment.name, endpoint)
        return self.admission.audited(
            Action.UNLOCK, actor, command, environment.name, endpoint, result
        )

    def cancel(
        self, *, endpoint: str, env: str | None, actor: Actor, command: str
    ) -> Notice | Refusal:
        """Ask the operation under way on the endpoint to stop at its next step, wherever it
        runs: it discards what it started, never switches, ends failed and frees the lock."""
        environment = self.admission.admit(Action.CANCEL, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        name = environment.name
        busy = [
            op
            for op in self.repos.operations.running()
            if (op.env, op.endpoint) == (name, endpoint)
        ]
        if not busy:
            nothing = Refusal(f"nothing is under way on {endpoint} in {name}: nothing to cancel")
            return self.admission.audited(Action.CANCEL, actor, command, name, endpoint, nothing)
        for op in busy:
            self.repos.operations.cancel(op.id, by=actor.shown)
        op = busy[0]
        at = f"at {op.step}" if op.step else op.state
        asked = Notice(
            f"asked {person(op.requested_by)}'s {op.kind} of {endpoint} in {name} ({op.id}, {at}) "
            "to stop at its next step: it discards what it started, ends failed and frees "
            "the endpoint; its thread says when."
        )
        return self.admission.audited(Action.CANCEL, actor, command, name, endpoint, asked)

    def canary(
        self,
        *,
        endpoint: str,
        env: str | None,
        decision: str,
        at: int | None,
        actor: Actor,
        command: str,
    ) -> Notice | Refusal:
        """Promote, hold or abort the canary of the deploy under way on the endpoint (only
        while it is at `at` percent, when given); whichever process runs it acts on it at its
        next look."""
        environment = self.admission.admit(Action.CANARY, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        name = environment.name
        found = [
            (op, share)
            for op in self.repos.operations.running()
            if (op.env, op.endpoint) == (name, endpoint) and (share := op.canary_share) is not None
        ]
        answer: Notice | Refusal
        if not found:
            answer = Refusal(
                f"no canary is under way on {endpoint} in {name}: nothing to {decision}"
            )
        elif at is not None and found[0][1] != at:
            answer = _moved_on(endpoint, name, found[0][1], at)
        else:
            op, share = found[0]
            if self.repos.operations.decide(op.id, decision=decision, by=actor.shown, at=share):
                answer = Notice(canary_told(decision, endpoint, name, share, op.id))
            else:  # it moved on (or ended) between the two reads: the decision would be ignored
                fresh = self.repos.operations.get(op.id)
                now = fresh.canary_share if fresh is not None else None
                answer = (
                    _moved_on(endpoint, name, now, share)
                    if now is not None
                    else Refusal(
                        f"no canary is under way on {endpoint} in {name}: nothing to {decision}"
                    )
                )
        return self.admission.audited(Action.CANARY, actor, command, name, endpoint, answer)

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
        override: str | None = None,
        canary: list[int] | None = None,
        shadow: int | None = None,
    ) -> Outcome | Refusal:
        """Serve `model` at `version` (or `alias`) on the endpoint of the same name in `env`.
        With `approver`, it is that admin's approval of `actor`'s request that is checked.
        `wait=False` queues the operation for any bot process instead of running it here.
        `override`: an admin's reason to deploy against `env`'s promotion order. `canary`
        and `shadow` (unset: the environment's rollout policy) let the new version meet
        traffic step by step before it takes it all."""
        where = self.settings.environment(env)
        if override is not None and where is not None:  # said before "only admins deploy"
            no = self.admission.override_refused(where, model, override, approver or actor)
            if no is not None:
                return self.admission.audited(
                    Action.DEPLOY, actor, command, where.name, model, no, approver
                )
        environment = self.admission.admit(
            Action.DEPLOY,
            actor,
            command,
            env,
            model,
            hint=promotion_hint(self.settings, model, version, alias, env, actor=actor),
            approver=approver,
        )
        if isinstance(environment, Refusal):
            return environment
        gradual = gradual_of(environment, canary, shadow)
        if isinstance(gradual, Refusal):
            return self.admission.audited(
                Action.DEPLOY, actor, command, environment.name, model, gradual, approver
            )
        intent = self.intents.deploy(
            environment, model=model, version=version, alias=alias, actor=actor, approver=approver
        )
        order = ""
        if not isinstance(intent, Refusal):
            check, order = self.admission.promotion_check(
                environment, model, version, override=override, deciding=approver or actor
            )
            if check is not None and check.refusal is not None:
                name, refused = environment.name, check.refusal
                return self.admission.audited(
                    Action.DEPLOY, actor, command, name, model, refused, approver
                )
        return self._operation(
            intent,
            action=Action.DEPLOY,
            environment=environment,
            endpoint=model,
            actor=actor,
            command=command,
            reporter=reporter,
            approver=approver,
            wait=wait,
            overridden=order,
            gradual=gradual,
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
        environment = self.admission.admit(Action.SCALE, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        intent = self.intents.scale(
            environment,
            endpoint=endpoint,
            cpu=cpu,
            memory_mb=memory_mb,
            replicas=replicas,
            gpus=gpus,
            actor=actor,
        )
        return self._operation(
            intent,
            action=Action.SCALE,
            environment=environment,
            endpoint=endpoint,
            actor=actor,
            command=command,
            reporter=reporter,
            wait=wait,
        )

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
        serving: int | None = None,
        to: int | None = None,
    ) -> Outcome | Refusal:
        """Serve again the version that served before the current one. With `serving`, only
        while the endpoint still serves that version (a button offered it for that one, or
        a watch judged that one); with `to`, only when the version before is that one."""
        environment = self.admission.admit(Action.ROLLBACK, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        intent = self.intents.rollback(environment, endpoint=endpoint, actor=actor)
        now = intent.current if isinstance(intent, Intent) else None
        if serving is not None and now is not None and now.version != serving:
            intent = Refusal(
                f"{endpoint} in {environment.name} no longer serves v{serving} (it serves "
                f"v{now.version} now): nothing was rolled back"
            )
        elif to is not None and isinstance(intent, Intent) and intent.version != to:
            intent = Refusal(
                f"{endpoint} in {environment.name} served v{intent.version} before, not "
                f"v{to}: nothing was rolled back"
            )
        return self._operation(
            intent,
            action=Action.ROLLBACK,
            environment=environment,
            endpoint=endpoint,
            actor=actor,
            command=command,
            reporter=reporter,
            wait=wait,
        )

    def stop(
        self,
        *,
        endpoint: str,
        env: str | None,
        actor: Actor,
        command: str,
        reporter: Reporter,
        wait: bool = True,
    ) -> Outcome | Refusal:
        """Stop every deployment of the endpoint; it leaves /status (its history stays) once
        the target confirmed it."""
        environment = self.admission.admit(Action.STOP, actor, command, env, endpoint)
        if isinstance(environment, Refusal):
            return environment
        intent = self.intents.stop(environment, endpoint=endpoint, actor=actor)
        return self._operation(
            intent,
            action=Action.STOP,
            environment=environment,
            endpoint=endpoint,
            actor=actor,
            command=command,
            reporter=reporter,
            wait=wait,
        )

    # -- the shared admission ---------------------------------------------------------------
    def _operation(
        self,
        intent: Intent | Refusal,
        *,
        action: Action,
        environment: Environment,
        endpoint: str,
        actor: Actor,
        command: str,
        reporter: Reporter,
        approver: Actor | None = None,
        wait: bool = True,
        overridden: str = "",
        gradual: tuple[list[int], int] = ([], 0),
    ) -> Outcome | Refusal:
        """Check `intent` (`gates`), lock the endpoint and record the operation; have it run
        here and now (held by this process), or with `wait=False` leave it queued for any
        bot process to take. Every refusal on the way is audited."""
        env = environment.name
        if isinstance(intent, Refusal):
            return self.admission.audited(action, actor, command, env, endpoint, intent, approver)
        automatic = actor.why if isinstance(actor, Automatic) else ""
        if automatic:
            was = f"v{intent.current.version} " if intent.current is not None else ""
            headline = f"{intent.headline} by itself: {was}{automatic}"
            intent = dataclasses.replace(intent, headline=headline)
        for check in self.admission.gates(intent, promotion=False):
            if check.refusal is not None:
                return self.admission.audited(
                    action, actor, command, env, endpoint, check.refusal, approver
                )
        attempt = self.locker.try_lock(env, endpoint, holder=actor.shown, reason=intent.headline)
        if not attempt.acquired:
            locked = self.locker.refusal(env, endpoint, attempt)
            return self.admission.audited(action, actor, command, env, endpoint, locked, approver)
        # what the intent was worked out from may have changed before the lock was ours (an
        # operation that ended meanwhile): acting on it would undo what was just done
        changed = _changed(intent, self.repos.endpoints.get(env, endpoint))
        if changed:
            self.locker.release(env, endpoint, attempt.token)
            return self.admission.audited(action, actor, command, env, endpoint, changed, approver)
        brief = Brief(
            action=action.value,
            model=intent.model,
            version=intent.version,
            alias=intent.alias,
            cpu=intent.resources.cpu,
            memory_mb=intent.resources.memory_mb,
            replicas=intent.resources.replicas,
            gpus=intent.resources.gpus,
            headline=intent.headline,
            actor_id=actor.id,
            actor_name=actor.shown,
            approver=approver.shown if approver else "",
            overridden=overridden,
            automatic=automatic,
            canary=list(gradual[0]),
            shadow=gradual[1],
        )
        try:
            op = self.repos.operations.enqueue(
                kind=action.value,
                env=env,
                endpoint=endpoint,
                requested_by=actor.shown,
                command=command,
                brief=brief.as_dict(),
                reply_to=where_of(reporter),
                lock_token=attempt.token,
                owner=self.owner if wait else "",
                lease_s=self.settings.lease_s,
            )
        except BaseException:
            self.locker.release(env, endpoint, attempt.token)
            raise
        if not isinstance(actor, Automatic):
            # an admin acts on the endpoint: what its watch judged is theirs to decide now
            self.repos.watches.interrupt(
                env, endpoint, detail=f"{actor.shown}'s {action.value} ({op.id}) ended it"
            )
        if overridden:  # only now is it under way: a deploy refused on the way overrode nothing
            self.admission.audit_override(
                overridden,
                actor=actor,
                approver=approver,
                command=command,
                env=env,
                endpoint=endpoint,
            )
        if not wait:
            return Outcome(
                ok=True, text=f"queued: {intent.headline}", operation=op.id, data={"queued": True}
            )
        return self.run_here(op, reporter)

    # -- status ----------------------------------------------------------------------------
    def status(
        self, *, env: str | None = None, endpoint: str | None = None
    ) -> list[EndpointStatus] | Refusal:
        """Every recorded endpoint (of `env`, or of all environments) with its live health,
        and whether its environment's registry alias drifted from what it serves."""
        if env is not None and isinstance(known := self.admission.env(env), Refusal):
            return known
        found = endpoint_statuses(self.repos, self.targets, env=env, endpoint=endpoint)
        if isinstance(found, Refusal) or self.drift is None:
            return found
        marks = self.drift.marks(env=env)
        return [dataclasses.replace(ep, drift=marks.get((ep.env, ep.name), "")) for ep in found]


def canary_told(decision: str, endpoint: str, env: str, share: int, op_id: str) -> str:
    what = {
        "promote": "promoted: the next step begins at its next look",
        "hold": "held at this step past its bake time, until promoted or aborted",
        "abort": (
            "aborted: every request goes back to what serves, the new version stops and the "
            "deploy ends failed"
        ),
    }[decision]
    return (
        f"the canary of {endpoint} in {env} at {share}% ({op_id}) is {what}; its thread says when"
    )


def _moved_on(endpoint: str, env: str, now: int, asked: int) -> Refusal:
    return Refusal(
        f"the canary of {endpoint} in {env} is at {now}% now, no longer at {asked}%: nothing "
        "was done (ask again at this step if it is still wanted)"
    )


def _changed(intent: Intent, now: Endpoint | None) -> Refusal | None:
    """A refusal when the endpoint is no longer what `intent` was worked out from."""
    before = intent.current
    if before is None and now is None:
        return None
    if (
        before is not None
        and now is not None
        and (before.model, before.version, before.resources)
        == (now.model, now.version, now.resources)
    ):
        return None
    what = f"serves {now.model} v{now.version}" if now is not None else "is no longer deployed"
    return Refusal(
        f"{intent.endpoint} in {intent.environment.name} changed while this was being asked "
        f"for (it {what} now): nothing was done; ask again if it is still wanted"
    )
