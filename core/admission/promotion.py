"""The promotion order: an environment may take a version only once it served healthy in
another one (`Environment.promotion`: `after`, `minutes`) long enough.

How it is counted, as on-call reads it: the minutes a version served in `after` add up over
every stretch it served there (redeploys and scales start a new stretch, they do not reset
the count), but only since its last failure there — a stretch that ended in a failure (found
down, or rolled back by itself) wipes what came before it. The stretch serving now counts only
while the endpoint answers its health check (when the target cannot be asked, the record is
trusted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from core.config import Environment
from core.errors import ChatOpsError
from core.marks import command
from core.store.repos.served import Interval, ServedRepository
from core.targets.base import EndpointRef, Target


@dataclass(frozen=True)
class Progress:
    """How far `model` v`version` is along the order of `env`: what it served in `after`."""

    model: str
    version: int
    env: str
    after: str
    needed_s: float
    served_s: float  # healthy, since the last failure
    ever_served: bool
    failure: Interval | None  # the last stretch that ended in a failure
    down_now: bool  # it serves in `after` now, but does not answer its health check

    @property
    def met(self) -> bool:
        # with no minutes to wait, it must still have served healthy there (since its last
        # failure, and not only while down)
        return self.served_s >= self.needed_s and self.served_s > 0

    @property
    def again(self) -> str:
        """The deploy that makes the version serve where it must first."""
        return command(f"deploy {self.model} v{self.version} to {self.after}")

    @property
    def text(self) -> str:
        """Where and how long, for a refusal (or a plan)."""
        what = f"{self.model} v{self.version}"
        needed = f"of the {_minutes(self.needed_s)} {self.env} requires"
        if not self.ever_served:
            return (
                f"{what} has not served in {self.after} yet — deploy it there first: "
                f"`{self.again}` ({self.env} takes a "
                f"version only after {_minutes(self.needed_s)} of healthy serving in "
                f"{self.after})"
            )
        to_go = f"({_to_go(self.needed_s - self.served_s)})"
        if self.failure is not None:
            assert self.failure.ended is not None
            failed = (
                f"{what} failed in {self.after} at {self.failure.ended:%Y-%m-%d %H:%M} UTC "
                f"({self.failure.detail or 'ended in a failure'})"
            )
            if self.served_s <= 0 and not self.down_now:
                return (
                    f"{failed} and has not served healthy there since — deploy it there "
                    f"again: `{self.again}` "
                    f"({_minutes(self.needed_s)} {self.env} requires to go)"
                )
            since = f"{failed}; since then it has served healthy there for"
        else:
            since = f"{what} has served in {self.after} for"
        line = f"{since} {_minutes(self.served_s, floor=True)} {needed} {to_go}"
        if self.down_now:
            line += (
                f"; it is down in {self.after} now, so its current stretch does not count "
                "until it answers again"
            )
        return line


def progress(
    *,
    env: Environment,
    model: str,
    version: int,
    served: ServedRepository,
    targets: dict[str, Target],
    now: datetime,
) -> Progress | None:
    """Where `model` v`version` stands on `env`'s promotion order; None when `env` has none."""
    order = env.promotion
    if order is None:
        return None
    intervals = served.intervals(order.after, model, version)
    failures = [i for i, interval in enumerate(intervals) if interval.failed]
    failure = intervals[failures[-1]] if failures else None
    since = intervals[failures[-1] + 1 :] if failures else intervals
    total = 0.0
    down_now = False
    for interval in since:
        if interval.ended is None and not _up(targets.get(order.after), interval):
            down_now = True
            continue
        total += interval.seconds(now)
    return Progress(
        model=model,
        version=version,
        env=env.name,
        after=order.after,
        needed_s=order.minutes * 60,
        served_s=total,
        ever_served=bool(intervals),
        failure=failure,
        down_now=down_now,
    )


def override_hint(command: str) -> str:
    """How an admin deploys anyway: `command` (a `core.marks.command`) with an override and
    a reason."""
    return f'an admin may override it with a reason: `{command} --override "<reason>"`'


def _up(target: Target | None, interval: Interval) -> bool:
    """Whether what serves the interval's endpoint answers its health check now; the record
    is trusted when the target cannot say."""
    if target is None:
        return True
    try:
        health = target.health(EndpointRef(interval.env, interval.endpoint))
    except ChatOpsError:
        return True
    return health.up


def _minutes(seconds: float, *, floor: bool = False) -> str:
    minutes = seconds / 60
    if floor:
        return f"{math.floor(minutes + 1e-9)} min"
    return f"{minutes:g} min"


def _to_go(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute to go"
    return f"{math.ceil(seconds / 60 - 1e-9)} min to go"
