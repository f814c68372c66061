"""Admission's common ground: the environment asked for, whether the actor may act there,
and the audit row every attempt leaves, whatever became of it."""

from __future__ import annotations

from typing import TypeVar

from core.audit import AuditLog
from core.config import Environment, Settings
from core.events import Notice, Outcome, Refusal
from core.locker import Locker
from core.roles import Action, Actor, authorize

R = TypeVar("R", bound=Outcome | Notice | Refusal)


class Admission:
    """What every admitting command shares; the Deployer is one."""

    settings: Settings
    audit: AuditLog
    locker: Locker

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
