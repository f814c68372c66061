"""Admission's common ground: the environment asked for, whether the actor may act there,
the requirements a change meets before it may lock its endpoint, and the audit row every attempt
leaves, whatever became of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from core import marks
from core.admission.intents import Intent
from core.admission.locker import Locker
from core.admission.policy import check_limits
from core.admission.promotion import Progress, override_hint, progress
from core.admission.roles import Action, Actor, Role, authorize, role_in
from core.audit import AuditLog
from core.config import Environment, Settings
from core.events import Notice, Outcome, Refusal
from core.resources import format_memory
from core.store.models import ApprovalRow
from core.store.repos import Repositories
from core.targets.base import Target

R = TypeVar("R", bound=Outcome | Notice | Refusal)
# what the bot may ask for by itself: roll back what its watch found failing, abort a canary
# past its environment's thresholds
AUTOMATIC = frozenset({Action.ROLLBACK, Action.CANARY})


@dataclass(frozen=True)
class Automatic(Actor):
    """The bot itself, asking for a change because what it watches failed (`why`). Only
    the core makes one, never a front: it is admitted as an admin's command would be, for
    the actions in `AUTOMATIC` only, and audited as automatic."""

    why: str = ""


def audited_as(action: str, automatic: bool) -> str:
    """The audit trail's name for `action`: `auto-rollback` when the bot asked by itself."""
    return f"auto-{action}" if automatic else action


@dataclass(frozen=True)
class Requirement:
    """One admission requirement of one change: `refusal` when it stops the change, else
    `passed` says what it found. A command stops at the first refusal; its plan shows all."""

    name: str
    passed: str = ""
    refusal: Refusal | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def text(self) -> str:
        return self.refusal.text if self.refusal is not None else self.passed


def promotion_hint(
    settings: Settings,
    model: str,
    version: int | None,
    alias: str | None,
    env: str | None,
    *,
    actor: Actor,
) -> str:
    """What someone who may not deploy can do instead: a developer asks the admins with
    `promote`; a viewer, who may not, asks a developer or an admin of the environment."""
    where = settings.environment(env)
    if where is None:
        return ""
    what = f"v{version}" if version is not None else f"@{alias}"
    asking = marks.command(f"promote {model} {what} to {where.name}")
    if role_in(where, actor) >= Role.DEVELOPER:
        return f"ask for it with `{asking}`"
    return (
        f"you may look (`{marks.command('status')}`, `{marks.command('history')}`) but not "
        f"ask for deploys in {where.name}: a developer of {where.name} can ask for it with "
        f"`{asking}`, or an admin deploy it"
    )


class Admission:
    """The requirements every change meets before it may lock its endpoint, the same for the
    command and its plan: the environment, the permission, the gates (limits, promotion
    order), and the audit row each attempt leaves. The Deployer admits with one; the
    Planner asks the same one, changing nothing."""

    def __init__(
        self,
        *,
        settings: Settings,
        audit: AuditLog,
        locker: Locker,
        repos: Repositories,
        targets: dict[str, Target],
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.locker = locker
        self.repos = repos
        self.targets = targets

    def env(self, name: str | None) -> Environment | Refusal:
        env = self.settings.environment(name)
        if env is None:
            known = ", ".join(e.name for e in self.settings.environments)
            return Refusal(f"there is no environment called `{name}` (environments: {known})")
        return env

    def admit(
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
        environment = self.env(env)
        if isinstance(environment, Refusal):
            return self.audited(action, actor, command, env, endpoint, environment)
        if isinstance(actor, Automatic):
            refusal = (
                None
                if action in AUTOMATIC
                else Refusal(f"the bot does not {action.value} by itself, only an admin does")
            )
        else:
            refusal = authorize(environment, approver or actor, action, hint=hint)
        if refusal:
            return self.audited(action, actor, command, env, endpoint, refusal, approver)
        return environment

    def audited(
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
            audited_as(action.value, isinstance(actor, Automatic)),
            actor_id=actor.id,
            actor_name=actor.shown,
            command=command,
            env=env or self.settings.default_environment,
            endpoint=endpoint,
            result=result,
            approver=approver.shown if approver else "",
        )
        return result

    def gates(
        self,
        intent: Intent,
        *,
        deciding: Actor | None = None,
        override: str | None = None,
        promotion: bool = True,
    ) -> list[Requirement]:
        """The requirements `intent` meets once it is known and before its endpoint is locked, in
        the order the command meets them; its plan shows each. A deploy's promotion order is
        checked as `deciding` (the approver, else the actor) asks, with its `override`;
        `promotion=False`: it was decided already (a deploy checks it first, to audit it)."""
        env, wanted = intent.environment, intent.resources
        limits = env.limits
        requirements = []
        if promotion and intent.action is Action.DEPLOY:
            order, _ = self.promotion_check(
                env, intent.model, intent.version, override=override, deciding=deciding
            )
            if order is not None:
                requirements.append(order)
        if intent.action is Action.STOP:  # it frees what the endpoint holds: never too much
            return requirements
        requirements.append(
            Requirement(
                "limits",
                passed=f"{wanted.describe()} is within the limits of {env.name} (at most "
                f"{limits.cpu:g} cpu, {format_memory(limits.memory_mb)}, {limits.replicas} "
                "replicas)",
                refusal=check_limits(env, wanted),
            )
        )
        return requirements

    def promotion(
        self, environment: Environment, model: str, version: int | None, found: Progress | None
    ) -> Requirement:
        """The promotion order of `environment` for `model` v`version` (`found`: how far it
        is along, None for an alias), as the deploy and its plan both meet it."""
        env, order = environment.name, environment.promotion
        assert order is not None
        if version is None or found is None:  # an alias may move between admission and rollout
            alias = Refusal(
                f"{env} takes only versions that served in {order.after} first: name the "
                f"version, not an alias (`{marks.command(f'deploy {model} v<N> to {env}')}`)"
            )
            return Requirement("promotion", refusal=alias)
        if found.met:
            return Requirement(
                "promotion",
                passed=f"{model} v{version} served healthy in {order.after} "
                f"for {found.served_s / 60:.0f} min ({env} requires {order.minutes:g})",
            )
        hint = override_hint(marks.command(f"deploy {model} v{version} to {env}"))
        return Requirement("promotion", refusal=Refusal(f"{found.text}; {hint}"))

    def progress_of(self, environment: Environment, model: str, version: int) -> Progress | None:
        return progress(
            env=environment,
            model=model,
            version=version,
            served=self.repos.served,
            targets=self.targets,
            now=self.repos.clock.now(),
        )

    def order(self, environment: Environment, model: str, version: int) -> Refusal | None:
        """Why `environment`'s promotion order does not let `model` v`version` in yet (where
        it must serve, how long is left); None when it does, or there is no order."""
        found = self.progress_of(environment, model, version)
        return None if found is None or found.met else Refusal(found.text)

    def order_of_request(self, row: ApprovalRow) -> str:
        """Why an approval of `row` must wait for the promotion order of its environment
        ("" when it need not): the request stays pending."""
        environment = self.settings.environment(row.env)
        refusal = environment and self.order(environment, row.model, row.version)
        if not refusal:
            return ""
        hint = override_hint(marks.command(f"approve {row.id}"))
        return f"{refusal.text}: request {row.id} stays pending; {hint}"

    def promotion_check(
        self,
        environment: Environment,
        model: str,
        version: int | None,
        *,
        override: str | None,
        deciding: Actor | None,
    ) -> tuple[Requirement | None, str]:
        """The promotion-order requirement of a deploy of `model` v`version` to `environment`, as
        the deploy and its plan both meet it: with `override` (the reason of `deciding`, who
        decides: the approver, else the actor), refused unless an admin gives a reason, else
        passed as overridden; None without an order. And what an admitted override overrides
        ("" when nothing is overridden), for the audit once the deploy is under way."""
        if override is not None:
            assert deciding is not None, "an override is someone's"
            if no := self.override_refused(environment, model, override, deciding):
                return Requirement("promotion", refusal=no), ""
        if environment.promotion is None:
            return None, ""
        found = None if version is None else self.progress_of(environment, model, version)
        requirement = self.promotion(environment, model, version, found)
        if requirement.refusal is None or override is None or found is None:
            return requirement, ""  # an alias is refused even to an override
        who = marks.person(deciding.shown) if deciding else "someone"
        overridden = (
            f"{who} overrode the promotion order of {environment.name} "
            f"({found.text}): {override.strip()}"
        )
        return Requirement("promotion", passed=overridden), overridden

    def override_refused(
        self, environment: Environment, model: str, override: str, deciding: Actor
    ) -> Refusal | None:
        """Why `deciding` may not override the promotion order of `environment` as asked
        (not an admin there, no reason given); None when they may."""
        env = environment.name
        if role_in(environment, deciding) < Role.ADMIN:
            return Refusal(
                f"only admins of {env} can override its promotion order; ask for the deploy "
                f"with `{marks.command(f'promote {model} v<N> to {env}')}`"
            )
        if not override.strip():
            return Refusal('an override needs a reason: `--override "<reason>"`')
        return None

    def audit_override(
        self,
        overridden: str,
        *,
        actor: Actor,
        approver: Actor | None,
        command: str,
        env: str,
        endpoint: str,
    ) -> None:
        """Audit an override once what it overrides is under way (its operation recorded):
        a deploy refused after the order was overridden overrode nothing."""
        deciding = approver or actor
        self.audit.write(
            "override",
            actor_id=deciding.id,
            actor_name=deciding.shown,
            command=command,
            env=env,
            endpoint=endpoint,
            outcome="overridden",
            detail=overridden,
        )
