"""Admission's common ground: the environment asked for, whether the actor may act there,
and the audit row every attempt leaves, whatever became of it."""

from __future__ import annotations

import concurrent.futures
import difflib
import logging
from collections.abc import Callable
from typing import TypeVar

from core.audit import AuditLog
from core.config import Environment, Settings
from core.errors import ChatOpsError
from core.events import Notice, Outcome, Refusal
from core.locker import Locker
from core.models import ApprovalRow
from core.promotion import order_refusal, override_hint
from core.repos import Repositories
from core.roles import Action, Actor, Role, authorize, role_in
from core.targets.base import Target

R = TypeVar("R", bound=Outcome | Notice | Refusal)
log = logging.getLogger("chatops.core")
MODEL_CHECK_S = 2.0  # the longest a deploy waits to learn whether the registry has its model


class Admission:
    """What every admitting command shares; the Deployer is one."""

    settings: Settings
    repos: Repositories
    targets: dict[str, Target]
    audit: AuditLog
    locker: Locker
    known_models: Callable[[], list[str]] | None
    _asking: concurrent.futures.ThreadPoolExecutor

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

    def _absent(
        self, action: Action, actor: Actor, command: str, env: str, endpoint: str, text: str
    ) -> Refusal:
        """`text` (the endpoint is not there to act on), unless the operation holding it says
        more (a first deploy under way); audited."""
        refusal = self.locker.in_the_way(env, endpoint) or Refusal(text)
        return self._audited(action, actor, command, env, endpoint, refusal)

    def order(self, environment: Environment, model: str, version: int) -> Refusal | None:
        """Why `environment`'s promotion order does not let `model` v`version` in yet (where
        it must serve, how long is left); None when it does, or there is no order."""
        return order_refusal(
            env=environment,
            model=model,
            version=version,
            served=self.repos.served,
            targets=self.targets,
            now=self.repos.clock.now(),
        )

    def order_of_request(self, row: ApprovalRow) -> str:
        """Why an approval of `row` must wait for the promotion order of its environment
        ("" when it need not): the request stays pending."""
        environment = self.settings.environment(row.env)
        refusal = environment and self.order(environment, row.model, row.version)
        if not refusal:
            return ""
        hint = override_hint(f"/approve {row.id}")
        return f"{refusal.text}: request {row.id} stays pending; {hint}"

    def _may_override(
        self,
        actor: Actor,
        command: str,
        environment: Environment,
        model: str,
        override: str,
        approver: Actor | None = None,
    ) -> Refusal | None:
        """Why the promotion order of `environment` may not be overridden as asked (not an
        admin there, no reason given), audited; None when it may."""
        env = environment.name
        refusal = None
        if role_in(environment, approver or actor) < Role.ADMIN:
            refusal = Refusal(
                f"only admins of {env} can override its promotion order; ask for the deploy "
                f"with `/promote {model} v<N> to {env}`"
            )
        elif not override.strip():
            refusal = Refusal('an override needs a reason: `--override "<reason>"`')
        if refusal is None:
            return None
        return self._audited(Action.DEPLOY, actor, command, env, model, refusal, approver)

    def _in_order(
        self,
        actor: Actor,
        command: str,
        environment: Environment,
        model: str,
        version: int | None,
        *,
        override: str | None,
        approver: Actor | None = None,
    ) -> str | Refusal:
        """Empty when `environment`'s promotion order lets `model` v`version` in (or it has
        none); when an admin overrides it with a reason, what was overridden and why
        (audited as an override); else the refusal, audited."""
        env, deciding = environment.name, approver or actor
        if override is not None and (
            no := self._may_override(actor, command, environment, model, override, approver)
        ):
            return no
        order = environment.promotion
        if order is None:
            return ""
        if version is None:  # an alias may move between this check and the rollout
            alias = Refusal(
                f"{env} takes only versions that served in {order.after} first: name the "
                f"version, not an alias (`/deploy {model} v<N> to {env}`)"
            )
            return self._audited(Action.DEPLOY, actor, command, env, model, alias, approver)
        refusal = self.order(environment, model, version)
        if refusal is None:
            return ""
        if override is None:
            hint = override_hint(f"/deploy {model} v{version} to {env}")
            refused = Refusal(f"{refusal.text}; {hint}")
            return self._audited(Action.DEPLOY, actor, command, env, model, refused, approver)
        overridden = (
            f"{deciding.shown} overrode the promotion order of {env} ({refusal.text}): "
            f"{override.strip()}"
        )
        self.audit.write(
            "override",
            actor_id=deciding.id,
            actor_name=deciding.shown,
            command=command,
            env=env,
            endpoint=model,
            outcome="overridden",
            detail=overridden,
        )
        return overridden

    def _unknown_model(self, model: str) -> Refusal | None:
        """A refusal naming the closest registered model when the registry has no `model`;
        None when it has it, or cannot say now (the rollout's first step reports that)."""
        if self.known_models is None:
            return None
        # a registry slow to answer is not waited for here: the rollout's first step waits
        # for it, reporting in the thread meanwhile
        asked = self._asking.submit(self.known_models)
        try:
            names = asked.result(timeout=MODEL_CHECK_S)
        except concurrent.futures.TimeoutError:
            log.info("the registry did not list its models within %s s: deploying", MODEL_CHECK_S)
            return None
        except ChatOpsError as exc:
            log.info("could not list the registered models before a deploy: %s", exc.message)
            return None
        if model in names:
            return None
        close = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean `{close[0]}`?"
        elif names:
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            hint = f"registered models: {', '.join(names[:10])}{more}"
        else:
            hint = "the registry is empty"
        return Refusal(f"there is no model called `{model}` in the registry ({hint})")
