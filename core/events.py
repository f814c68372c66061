"""What an operation tells the people who follow it, and the results it ends with."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from core.marks import plain
from core.targets.base import Traffic


class EventKind(StrEnum):
    STARTED = "started"  # the operation began (message: who does what)
    STEP = "step"  # a step began
    DONE = "done"  # a step finished well
    INFO = "info"  # something worth saying inside a step
    SUCCEEDED = "succeeded"  # the operation ended well (message: the end state)
    FAILED = "failed"  # the operation ended badly (message: cause; data: log_tail, serving)
    CARD = "card"  # a canary step as it stands (data: both versions side by side), kept current


# in the data of a final event (SUCCEEDED, FAILED): the id of the outbox row it is owed as
OWED = "owed"
# ... and, when another bot process tells it again because the one that ended the operation
# died before marking it sent (perhaps after sending it), True: what a reporter would post
# anew it first looks for, by that id, where it posts
RETOLD = "retold"


@dataclass(frozen=True)
class Event:
    operation: str
    kind: EventKind
    step: str
    message: str
    elapsed_s: float
    data: dict[str, Any] = field(default_factory=dict)


class Reporter(Protocol):
    """Turns events into something people see: console lines, a Slack thread."""

    def report(self, event: Event) -> None: ...


@runtime_checkable
class Addressed(Protocol):
    """A reporter that can say where it reports (a Slack channel and thread), so a bot process
    resuming the operation after a crash reports in the same place."""

    @property
    def where(self) -> dict[str, Any]: ...


class NullReporter:
    def report(self, event: Event) -> None:
        pass


class LogReporter:
    """Events as log lines: for operations no front tells (a headless `chatops worker`)."""

    def __init__(self, logger: str = "chatops.operations") -> None:
        self.log = logging.getLogger(logger)

    def report(self, event: Event) -> None:
        where = f" [{event.step}]" if event.step else ""
        self.log.info("%s %s%s: %s", event.operation, event.kind, where, plain(event.message))


@dataclass(frozen=True)
class Refusal:
    """The bot will not do what was asked; `text` says why and what to do instead."""

    text: str
    ok: bool = False


@dataclass(frozen=True)
class Notice:
    """Done at once, nothing to follow: the text says what changed (a lock, an unlock)."""

    text: str
    ok: bool = True


@dataclass(frozen=True)
class Outcome:
    """How an operation ended."""

    ok: bool
    text: str
    operation: str | None = None
    url: str = ""
    log_tail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    # not ended here: another bot process carries the operation on and tells its end
    elsewhere: bool = False


@dataclass(frozen=True)
class EndpointStatus:
    env: str
    name: str
    model: str
    version: int
    resources: str
    replicas: int
    up: bool
    since: datetime
    url: str
    target: str
    detail: str = ""
    # an operation changing it now: "deploy by alice, at build (attempt 2)"
    underway: str = ""
    # what it answered over the last minutes, as its target counts (or why it cannot)
    traffic: Traffic | None = None
    # its environment's registry alias names another version: "@prod names v7"
    drift: str = ""
