"""What the watch windows and the sentinel tell people (core/oncall/watching.py,
core/oncall/sentinel.py), and the port fronts implement to tell it: Slack posts in the
operation's thread and the on-call channel (bot/slack/posting/oncall.py); the console
prints; a headless worker logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.marks import plain
from core.scrub import scrub

log = logging.getLogger("chatops.core")
BOT = "chatops"  # who asked, in the records of what the bot does by itself


class AlertKind(StrEnum):
    CLEAN = "clean"  # a watch ended well: a short word in the operation's thread
    ROLLING_BACK = "rolling_back"  # a watch failed, the bot rolls back: thread and on-call
    ROLLED_BACK = "rolled_back"  # that rollback ended (`ok` says how): on-call
    NOT_ROLLED_BACK = "not_rolled_back"  # a watch failed, no rollback (why in text): both
    DOWN = "down"  # an endpoint went down between rollouts: on-call, with a rollback offer
    UP = "up"  # it is up again (or gone): its announcement loses the offer
    ABORTED = "aborted"  # a canary aborted by itself: on-call (its thread hears the deploy end)


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    env: str
    endpoint: str
    text: str
    # where the operation that switched reported (its thread); {} when nowhere
    where: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # what serves the endpoint (DOWN: what a rollback leaves)
    rollback_to: int | None = None  # DOWN: what a rollback would serve (None: nothing)
    # ROLLED_BACK, UP: where the front showed the alert this one follows
    oncall: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


class Alerts(Protocol):
    """A front's way of telling on-call. `front` names it in the records: an outage is
    announced once per front."""

    @property
    def front(self) -> str: ...

    def tell(self, alert: Alert) -> dict[str, Any]:
        """Show `alert`; where it was shown to on-call ({} when nowhere), for what follows."""
        ...

    def thread_of(self, where: dict[str, Any], command: str) -> dict[str, Any]:
        """Where an operation the bot asks for reports so that it appears in the thread
        `where` names (an operation's `reply_to`); {} when this front has none."""
        ...


class LogAlerts:
    """Alerts as lines: printed by the console, logged by a worker with no front."""

    front = ""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self.say = say or (lambda text: log.warning("%s", text))

    def tell(self, alert: Alert) -> dict[str, Any]:
        self.say(plain(scrub(alert.text)))
        return {}

    def thread_of(self, where: dict[str, Any], command: str) -> dict[str, Any]:
        return {}
