"""Admission's common ground: the environment asked for, whether the actor may act there,
the checks a change meets before it may lock its endpoint, and the audit row every attempt
leaves, whatever became of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from core.audit import AuditLog
from core.config import Environment, Settings
from core.events import Notice, Outcome, Refusal
from core.intents import Intent
from core.locker import Locker
from core.policy import check_limits
from core.resources import format_memory
from core.roles import Action, Actor, authorize

R = TypeVar("R", bound=Outcome | Notice | Refusal)


@dataclass(frozen=True)
class Check:
    """One admission check of one change: `refusal` when it stops the change, else
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
    settings: Settings, model: str, version: int | None, alias: str | None, env: str | None
) -> str:
    """What someone who may not deploy can do instead: ask the admins with `/promote`."""
    where = settings.environment(env)
    what = f"v{version}" if version is not None else f"@{alias}"
    return f"ask for it with `/promote {model} {what} to {where.name}`" if where else ""


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

    def gates(self, intent: Intent) -> list[Check]:
        """The checks `intent` meets once it is known and before its endpoint is locked, in
        the order the command meets them; its plan shows each."""
        env, wanted = intent.environment, intent.resources
        limits = env.limits
        return [
            Check(
                "limits",
                passed=f"{wanted.describe()} is within the limits of {env.name} (at most "
                f"{limits.cpu:g} cpu, {format_memory(limits.memory_mb)}, {limits.replicas} "
                "replicas)",
                refusal=check_limits(env, wanted),
            ),
        ]
