"""Who may do what, per environment: deny by default, the core decides for every front.

    viewer      everyone who can reach the bot: /status, /history, /help
    developer   /register, /promote (and what viewers do)
    admin       /deploy, /scale, /rollback, /stop, /lock, /unlock, /cancel, /alias, approve
                and reject (and all else)

Membership is by platform user id (`U0123ABCD`) or by group handle (`@mlops-admins`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from core.config import Environment
from core.events import Refusal


class Role(IntEnum):
    VIEWER = 0
    DEVELOPER = 1
    ADMIN = 2


class Action(StrEnum):
    DEPLOY = "deploy"
    SCALE = "scale"
    ROLLBACK = "rollback"
    STOP = "stop"
    UNLOCK = "unlock"
    CANCEL = "cancel"
    CANARY = "canary"
    LOCK = "lock"
    ALIAS = "alias"
    APPROVE = "approve"
    REJECT = "reject"
    REGISTER = "register"
    PROMOTE = "promote"
    STATUS = "status"
    HISTORY = "history"
    HELP = "help"


NEEDS: dict[Action, Role] = {
    Action.DEPLOY: Role.ADMIN,
    Action.SCALE: Role.ADMIN,
    Action.ROLLBACK: Role.ADMIN,
    Action.STOP: Role.ADMIN,
    Action.UNLOCK: Role.ADMIN,
    Action.CANCEL: Role.ADMIN,
    Action.CANARY: Role.ADMIN,
    Action.LOCK: Role.ADMIN,
    Action.ALIAS: Role.ADMIN,
    Action.APPROVE: Role.ADMIN,
    Action.REJECT: Role.ADMIN,
    Action.REGISTER: Role.DEVELOPER,
    Action.PROMOTE: Role.DEVELOPER,
    Action.STATUS: Role.VIEWER,
    Action.HISTORY: Role.VIEWER,
    Action.HELP: Role.VIEWER,
}


# how a refusal names an action that is no verb of its own
SAID = {Action.ALIAS: "move its registry alias"}


@dataclass(frozen=True)
class Actor:
    """Who asks: the front's user id, how to name them, and the groups it found them in."""

    id: str
    name: str = ""
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def shown(self) -> str:
        return self.name or self.id


def role_in(env: Environment, actor: Actor) -> Role:
    def member(entries: list[str]) -> bool:
        for entry in entries:
            if entry.startswith("@"):
                if entry[1:] in actor.groups:
                    return True
            elif entry == actor.id:
                return True
        return False

    if member(env.admins):
        return Role.ADMIN
    if member(env.developers):
        return Role.DEVELOPER
    return Role.VIEWER


def authorize(env: Environment, actor: Actor, action: Action, *, hint: str = "") -> Refusal | None:
    """None when `actor` may do `action` in `env`; else a refusal that says who may, and
    `hint` (what the actor can do instead)."""
    needed = NEEDS[action]
    if role_in(env, actor) >= needed:
        return None
    who = "admins" if needed is Role.ADMIN else "developers and admins"
    text = f"only {who} of {env.name} can {SAID.get(action, action.value)}"
    return Refusal(f"{text} — {hint}" if hint else text)
