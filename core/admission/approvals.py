"""Developer requests to serve a version, and the admin decisions on them.

A request is bound to one version of one model in one environment; it can be decided once
(pending -> approved | rejected), by an admin of that environment who is not the requester,
before it expires. Approval deploys exactly that version, by the approver's authority.

`settle` is the one decision flow every front runs: decide, let the front show the verdict,
carry it out; it answers with a value each front renders (`Decided`, `Held` or a `Refusal`).
An approval is not taken while the endpoint is frozen or locked: the request stays pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.admission.deployer import Deployer
from core.admission.roles import Action, Actor, authorize
from core.config import Settings
from core.errors import NotFound, RegistryError
from core.events import Outcome, Refusal, Reporter
from core.marks import command, person
from core.registry.mlflow import ModelVersion, Registry
from core.store.models import ApprovalRow, aware
from core.store.repos import Repositories
from core.versions import listed_metrics


@dataclass(frozen=True)
class ApprovalRequested:
    """A request is open: fronts show it with its evidence and ways to decide."""

    approval: ApprovalRow
    candidate: ModelVersion
    live: ModelVersion | None
    ok: bool = True
    production: bool = False  # approving asks to confirm first

    @property
    def text(self) -> str:
        a = self.approval
        lines = [f"{person(a.requester_name)} asks to deploy {a.model} v{a.version} to {a.env}"]
        if a.reason:
            lines.append(f"Why: {a.reason}")
        lines.append(f"Candidate v{a.version}: {metrics_text(self.candidate)}")
        if self.live is not None:
            lines.append(f"Live now v{self.live.version}: {metrics_text(self.live)}")
        else:
            lines.append(f"Nothing of {a.model} serves in {a.env} yet.")
        lines.append(
            f"An admin of {a.env} decides with `{command(f'approve {a.id}')}` or "
            f"`{command(f'reject {a.id}')}` "
            f"(open until {a.expires_at:%Y-%m-%d %H:%M} UTC)."
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class Decided:
    approval: ApprovalRow
    approved: bool
    outcome: Outcome | Refusal | None = None  # the deploy that approval started

    @property
    def ok(self) -> bool:
        return self.outcome is None or self.outcome.ok

    @property
    def text(self) -> str:
        a = self.approval
        verb = "approved" if self.approved else "rejected"
        line = f"{person(a.decided_by)} {verb} deploying {a.model} v{a.version} to {a.env}"
        if a.decision_reason:
            line += f": {a.decision_reason}"
        if self.outcome is not None:
            line += f"\n{self.outcome.text}"
        return line


@dataclass(frozen=True)
class Held(Refusal):
    """An approval not taken because the endpoint cannot be deployed now (frozen, or held by
    a running operation): the request stays pending; the requester and the request's
    message are to be told, as well as the admin who tried."""

    approval: ApprovalRow | None = None
    approver: str = ""

    @property
    def requester_text(self) -> str:
        a = self.approval
        if a is None:
            return self.text
        return (
            f"{person(a.requester_name)} {person(self.approver)} approved deploying {a.model} "
            f"v{a.version} to {a.env}, but it cannot be deployed now: {self.text}"
        )


@dataclass(frozen=True)
class Undecided(Refusal):
    """A decision not taken (not allowed, decided already, expired, no such request): the
    request as it stands, when there is one, so a front can show what became of it."""

    approval: ApprovalRow | None = None


def expired_text(row: ApprovalRow) -> str:
    return (
        f"this request expired at {row.expires_at:%Y-%m-%d %H:%M} UTC, undecided: ask again "
        f"with `{command(f'promote {row.model} v{row.version} to {row.env}')}`"
    )


def metrics_text(mv: ModelVersion) -> str:
    if not mv.metrics:
        return "no metrics logged"
    return listed_metrics(mv.metrics, digits=4)


class Approvals:
    def __init__(
        self,
        *,
        settings: Settings,
        repos: Repositories,
        registry: Registry,
        deployer: Deployer,
    ) -> None:
        self.settings = settings
        self.repos = repos
        self.registry = registry
        self.deployer = deployer
        self.audit = deployer.audit

    def request(
        self, *, model: str, version: int, env: str | None, actor: Actor, reason: str, command: str
    ) -> ApprovalRequested | Refusal:
        """Open a request for `model` v`version` in `env`, with the evidence to decide on."""
        environment = self.settings.environment(env)
        name = environment.name if environment else (env or "")
        if environment is None:
            known = ", ".join(e.name for e in self.settings.environments)
            unknown = Refusal(f"there is no environment called `{env}` (environments: {known})")
            return self._refused(actor, "promote", command, name, model, unknown)
        refusal: Refusal | None = authorize(environment, actor, Action.PROMOTE)
        if refusal is None and not environment.admins:
            refusal = Refusal(
                f"{environment.name} has no admins, so nobody could approve this request: ask "
                f"whoever runs the bot to name admins of {environment.name}"
            )
        if refusal is None:
            try:
                candidate = self.registry.resolve(model, version=version)
            except (NotFound, RegistryError) as exc:
                refusal = Refusal(exc.message)
        if refusal is not None:
            return self._refused(actor, "promote", command, name, model, refusal)
        live_row = self.repos.endpoints.get(environment.name, model)
        live = None
        if live_row is not None:
            try:
                live = self.registry.resolve(live_row.model, version=live_row.version)
            except (NotFound, RegistryError):
                live = None
        row = self.repos.approvals.open(
            model=model,
            version=candidate.version,
            env=environment.name,
            requester_id=actor.id,
            requester_name=actor.shown,
            reason=reason,
            command=command,
            ttl_s=self.settings.approval_ttl_s,
        )
        self._audit(
            actor,
            "promote",
            command,
            environment.name,
            model,
            "requested",
            detail=f"request {row.id}",
        )
        return ApprovalRequested(
            approval=row, candidate=candidate, live=live, production=environment.is_production
        )

    def deploy_or_request(
        self,
        *,
        model: str,
        version: int | None,
        alias: str | None,
        env: str | None,
        actor: Actor,
        command: str,
        reporter: Reporter,
        canary: list[int] | None = None,
        shadow: int | None = None,
    ) -> ApprovalRequested | Outcome | Refusal:
        """What a caller that only says "serve this" gets (MLflow's `create_deployment`): the
        deploy when `actor` may deploy in `env`; when they may only ask, a request for the
        admins (of a version number: an alias may move before it is decided); else the
        deploy's own refusal."""
        environment = self.settings.environment(env)
        may_ask = (
            environment is not None
            and version is not None
            and authorize(environment, actor, Action.DEPLOY) is not None
            and authorize(environment, actor, Action.PROMOTE) is None
        )
        if may_ask and version is not None:
            return self.request(
                model=model, version=version, env=env, actor=actor, reason="", command=command
            )
        return self.deployer.deploy(
            model=model,
            version=version,
            alias=alias,
            env=env,
            actor=actor,
            command=command,
            reporter=reporter,
            canary=canary,
            shadow=shadow,
        )

    def settle(
        self,
        approval_id: str,
        *,
        actor: Actor,
        approve: bool,
        reason: str = "",
        command: str,
        shown: Callable[[Decided], Reporter],
        resume: bool = False,
        override: str | None = None,
    ) -> Decided | Refusal:
        """Decide on a request and carry the decision out. `shown` is called once the
        decision is recorded, before anything is deployed: the front shows the verdict and
        gives the reporter the deploy reports to. `resume`: the same approver's approval,
        recorded by a bot process that stopped before it deployed, is carried out.
        `override`: the approver's reason to deploy against the promotion order."""
        decided = self.decide(
            approval_id,
            actor=actor,
            approve=approve,
            reason=reason,
            command=command,
            resume=resume,
            override=override,
        )
        if isinstance(decided, Held):
            return decided
        if isinstance(decided, Refusal):
            return Undecided(decided.text, approval=self.repos.approvals.get(approval_id))
        return self.carry_out(decided, approver=actor, reporter=shown(decided), override=override)

    def decide(
        self,
        approval_id: str,
        *,
        actor: Actor,
        approve: bool,
        reason: str = "",
        command: str,
        resume: bool = False,
        override: str | None = None,
    ) -> Decided | Refusal:
        """Approve or reject a pending request (deploying it is `carry_out`); refusals say
        why not. An approval while the endpoint is frozen or locked, or of a version the
        promotion order does not let in yet (unless `override` says why it should), is
        `Held`: the request stays pending."""
        action = Action.APPROVE if approve else Action.REJECT
        row = self.repos.approvals.get(approval_id)
        if row is None:
            missing = Refusal(f"there is no approval request `{approval_id}`")
            return self._refused(actor, action.value, command, "", "", missing)
        environment = self.settings.environment(row.env)
        refusal: Refusal | None = (
            authorize(environment, actor, action)
            if environment
            else Refusal(f"the environment {row.env} of this request is no longer configured")
        )
        if refusal is None and actor.id == row.requester_id:
            refusal = Refusal(
                f"you asked for this deploy yourself: another admin of {row.env} "
                f"must {action.value} it"
            )
        if (
            resume
            and approve
            and refusal is None
            and (row.state, row.decided_by)
            == (
                "approved",
                actor.shown,
            )
        ):  # this approver's, recorded by a bot process that stopped before deploying it
            return Decided(approval=row, approved=True)
        if refusal is None and row.state == "expired":
            refusal = Refusal(expired_text(row))
        elif refusal is None and row.state != "pending":
            when = f" at {row.decided_at:%Y-%m-%d %H:%M} UTC" if row.decided_at else ""
            refusal = Refusal(
                f"this request was already {row.state} by {person(row.decided_by)}{when}"
            )
        if refusal is None and self.repos.approvals.expired(row):
            self.repos.approvals.decide(row.id, state="expired", by="", reason="expired")
            refusal = Refusal(expired_text(row))
        if refusal is None and approve and override is not None and environment is not None:
            # refused by the deploy anyway: refused before the request is approved for nothing
            refusal = self.deployer.admission.override_refused(
                environment, row.model, override, actor
            )
        if refusal is None and approve:
            held = self._held(row, actor) or self._out_of_order(row, actor, override)
            if held is not None:
                self._refused(actor, action.value, command, row.env, row.model, held)
                return held
        if refusal is None and not self.repos.approvals.decide(
            row.id, state="approved" if approve else "rejected", by=actor.shown, reason=reason
        ):
            latest = self.repos.approvals.get(row.id)
            state = latest.state if latest else "decided"
            by = person(latest.decided_by) if latest else "someone else"
            refusal = Refusal(f"this request was already {state} by {by}")
        if refusal is not None:
            return self._refused(actor, action.value, command, row.env, row.model, refusal)
        decided = self.repos.approvals.get(row.id)
        assert decided is not None
        self._audit(
            actor,
            action.value,
            command,
            row.env,
            row.model,
            "approved" if approve else "rejected",
            detail=reason or f"request {row.id}",
        )
        return Decided(approval=decided, approved=approve)

    def withdraw(self, approval_id: str, *, reason: str) -> bool:
        """Close a pending request nobody can see (the front could not show it): no admin
        could decide it, so it must not stay pending until it expires."""
        return self.repos.approvals.decide(
            approval_id, state="withdrawn", by="chatops", reason=reason
        )

    def decidable(self, actor: Actor, *, limit: int = 10) -> list[ApprovalRow]:
        """Open requests `actor` may decide (an admin of their environment who did not ask)."""
        found = []
        for row in self.repos.approvals.listed(state="pending", limit=100):
            environment = self.settings.environment(row.env)
            if (
                environment is not None
                and row.requester_id != actor.id
                and not self.repos.approvals.expired(row)
                and authorize(environment, actor, Action.APPROVE) is None
            ):
                found.append(row)
        return found[:limit]

    def lookup(self, approval_id: str) -> ApprovalRow | None:
        """The request with that id, whatever became of it."""
        return self.repos.approvals.get(approval_id)

    def expired_request(self, approval_id: str) -> ApprovalRow | None:
        """The request, when it expired undecided (its message is to say so)."""
        row = self.repos.approvals.get(approval_id)
        return row if row is not None and row.state == "expired" else None

    def asked_by(self, actor: Actor, *, limit: int = 5) -> list[ApprovalRow]:
        """`actor`'s own requests, newest first, whatever became of them."""
        return self.repos.approvals.listed(requester_id=actor.id, limit=limit)

    def shown_at(self, approval_id: str, where: dict[str, Any]) -> None:
        """Remember where a front shows the request (Slack: channel, ts), to update it."""
        self.repos.approvals.set_where(approval_id, where)

    def carry_out(
        self,
        decided: Decided,
        *,
        approver: Actor,
        reporter: Reporter,
        override: str | None = None,
    ) -> Decided:
        """Deploy what an approval names, on the approver's authority (against the promotion
        order with `override`, the approver's reason); a rejection is kept."""
        if not decided.approved:
            return decided
        row = decided.approval
        outcome = self.deployer.deploy(
            model=row.model,
            version=row.version,
            env=row.env,
            actor=Actor(id=row.requester_id, name=row.requester_name),
            command=row.command,
            reporter=reporter,
            approver=approver,
            override=override,
        )
        return Decided(approval=row, approved=True, outcome=outcome)

    def _out_of_order(self, row: ApprovalRow, actor: Actor, override: str | None) -> Held | None:
        """Not yet, by the promotion order of the request's environment (unless overridden)."""
        why = "" if override is not None else self.deployer.admission.order_of_request(row)
        return Held(text=why, approval=row, approver=actor.shown) if why else None

    def _held(self, row: ApprovalRow, actor: Actor) -> Held | None:
        lock = self.deployer.locker.held(row.env, row.model)
        if lock is None:
            return None
        since = f" since {aware(lock.since):%H:%M} UTC"
        why = (
            f"{row.model} in {row.env} is frozen by {person(lock.holder)}{since}: "
            f"{lock.reason}. Once an admin lifts it with "
            f"`{command(f'unlock {row.model} in {row.env}')}`, approve again"
            if lock.sticky
            else f"{row.model} in {row.env} is locked by {person(lock.holder)}{since} for: "
            f"{lock.reason}. Once that operation ends, approve again"
        )
        return Held(
            text=f"{why}: request {row.id} stays pending (until "
            f"{row.expires_at:%Y-%m-%d %H:%M} UTC).",
            approval=row,
            approver=actor.shown,
        )

    def _audit(
        self,
        actor: Actor,
        action: str,
        command: str,
        env: str,
        endpoint: str,
        outcome: str,
        *,
        detail: str = "",
    ) -> None:
        self.audit.write(
            action,
            actor_id=actor.id,
            actor_name=actor.shown,
            command=command,
            env=env,
            endpoint=endpoint,
            outcome=outcome,
            detail=detail,
        )

    def _refused(
        self, actor: Actor, action: str, command: str, env: str, endpoint: str, refusal: Refusal
    ) -> Refusal:
        self._audit(actor, action, command, env, endpoint, "refused", detail=refusal.text)
        return refusal
