"""One operation in flight: its brief, where its events go, and the hold that lets it write.

Every write a run makes about its operation (the step it is at, the remote ids its steps
created) is fenced by its hold (owner and attempt): once another bot process has taken the
operation over, the next write fails with `LeaseLost` and the run stops where it is, so two
processes never drive one operation.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from core import failpoints
from core.errors import Cancelled, ChatOpsError, HandedOver, LeaseLost
from core.events import Addressed, Event, EventKind, Reporter
from core.execution.leases import Leases
from core.resources import Resources
from core.scrub import scrub, scrub_value
from core.store.models import Hold, Operation
from core.store.repos.operations import OperationRepository
from core.targets.base import Step

log = logging.getLogger("chatops.core")


@dataclass(frozen=True)
class Brief:
    """What a rollout is to do and for whom, kept with its operation: any bot process can
    carry it out from this alone."""

    action: str  # deploy, scale, rollback or stop
    model: str
    version: int | None
    alias: str | None
    cpu: float
    memory_mb: int
    replicas: int
    gpus: int
    headline: str
    actor_id: str
    actor_name: str
    approver: str = ""
    overridden: str = ""  # who overrode the promotion order, what it said, and why
    automatic: str = ""  # why the bot asked for it by itself ("" when a person asked)
    # a deploy's canary: percent of requests the new version answers, step by step, before
    # it takes them all; and percent copied to it (shadow), its answers compared
    canary: list[int] = field(default_factory=list)
    shadow: int = 0

    @property
    def gradual(self) -> bool:
        """Whether the new version meets traffic step by step before the switch."""
        return bool(self.canary or self.shadow)

    @classmethod
    def of(cls, op: Operation) -> Brief:
        """The operation's brief; one this version of the bot cannot read is an error that
        ends the operation (fields it does not know are left aside)."""
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in op.brief.items() if k in known})
        except TypeError as exc:
            raise ChatOpsError(
                "its plan was recorded by another version of the bot and cannot be read here"
            ) from exc

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def resources(self) -> Resources:
        return Resources(
            cpu=self.cpu, memory_mb=self.memory_mb, replicas=self.replicas, gpus=self.gpus
        )


@dataclass
class Run:
    op_id: str
    reporter: Reporter
    operations: OperationRepository
    leases: Leases
    hold: Hold
    started: float  # time.monotonic() when the operation was asked for
    lost: bool = False  # another process took it over: it is no longer ours to end
    lock: tuple[str, str, str] | None = None  # (env, endpoint, token) while held

    def emit(self, kind: EventKind, step: str, message: str, **data: object) -> None:
        message, data = scrub(message), scrub_value(data)
        self.operations.add_event(self.op_id, kind, step, message)
        elapsed = time.monotonic() - self.started
        try:
            self.reporter.report(Event(self.op_id, kind, step, message, elapsed, dict(data)))
        except Exception:  # telling people must never stop the work itself
            log.exception("reporting %s of %s failed", kind, self.op_id)

    def card(self, message: str, data: dict[str, Any]) -> None:
        """Show where a long step stands (a canary's both versions): fronts keep one card
        current in place. Not recorded: the step's own events are."""
        elapsed = time.monotonic() - self.started
        event = Event(self.op_id, EventKind.CARD, "", scrub(message), elapsed, scrub_value(data))
        try:
            self.reporter.report(event)
        except Exception:  # telling people must never stop the work itself
            log.exception("reporting the card of %s failed", self.op_id)

    def remember(self, *, step: str | None = None, **remote: Any) -> None:
        """Record the step and remote ids, while the operation is still this run's."""
        if self.leases.lost(self.op_id) or not self.operations.record(
            self.op_id, step=step, remote=remote, hold=self.hold
        ):
            raise LeaseLost(f"operation {self.op_id} was taken over by another bot process")

    def recall(self, key: str) -> object:
        """What the operation recorded under `key` so far (by this run or one before it)."""
        op = self.operations.get(self.op_id)
        return (op.remote or {}).get(key) if op is not None else None

    def confirm(self) -> None:
        """Raise `LeaseLost` unless the operation is still this run's (asked of the
        database: before a step that cannot be undone)."""
        if not self.operations.holds(self.op_id, self.hold):
            raise LeaseLost(f"operation {self.op_id} was taken over by another bot process")

    def go_on(self) -> None:
        """Raise `Cancelled` if an admin cancelled the operation (`/cancel`), from whichever
        process: the request is in the database."""
        op = self.operations.get(self.op_id)
        by = op.cancelled_by if op is not None else None
        if by:
            raise Cancelled(f"cancelled by {by}")

    def target_step(self, name: str) -> Step:
        def say(text: str) -> None:
            if self.leases.lost(self.op_id):
                raise LeaseLost(f"operation {self.op_id} was taken over by another bot process")
            self.emit(EventKind.INFO, name, text)

        return Step(say=say, remember=self.remember, recall=self.recall)

    @contextmanager
    def step(
        self, name: str, doing: str, *, cancellable: bool = True
    ) -> Iterator[Callable[[str], None]]:
        """A step: recorded, then told as begun and as done (with the text given to the
        function it yields). Not `cancellable`: a step after traffic moved, which a
        cancelled operation still takes (there is nothing left to cancel)."""
        self.remember(step=name)
        failpoints.hit("step.recorded")
        if self.leases.handing_over:  # the step is recorded: whoever takes it over begins here
            raise HandedOver(f"operation {self.op_id} was left at {name}: this process stops")
        if cancellable:
            self.go_on()  # every step boundary is where a cancelled operation stops
        self.emit(EventKind.STEP, name, doing)
        begun = time.monotonic()
        done: list[str] = []
        yield done.append
        took = time.monotonic() - begun
        self.emit(EventKind.DONE, name, (done[-1] if done else doing) + f" ({_ms(took)})")


def where_of(reporter: Reporter) -> dict[str, Any]:
    """Where `reporter` reports, for whoever resumes the operation to report there too."""
    return dict(reporter.where) if isinstance(reporter, Addressed) else {}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def span(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 2 h 5 min."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
