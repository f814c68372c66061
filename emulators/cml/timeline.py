"""Statuses that follow the clock: a resource's state is read from a schedule, not pushed
forward by a background thread, so tiny timings stay exact and nothing runs when idle."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Timeline:
    """A schedule of (time, status) steps; the status at ``now`` is the last step reached."""

    def __init__(self, steps: Iterable[tuple[float, str]]) -> None:
        self._steps = sorted(steps, key=_at)
        self._lock = threading.Lock()

    def status(self, now: float) -> str:
        with self._lock:
            reached = [status for at, status in self._steps if at <= now]
            return reached[-1] if reached else self._steps[0][1]

    def reached_at(self, status: str, now: float) -> float | None:
        """When ``status`` was last reached, if it has been by ``now``."""
        with self._lock:
            times = [at for at, s in self._steps if s == status and at <= now]
            return times[-1] if times else None

    def last_change(self, now: float) -> float:
        with self._lock:
            return max((at for at, _ in self._steps if at <= now), default=self._steps[0][0])

    def replan(self, now: float, steps: Iterable[tuple[float, str]]) -> None:
        """Forget what had not happened by ``now`` and follow ``steps`` from there."""
        with self._lock:
            kept = [step for step in self._steps if step[0] <= now]
            self._steps = kept + sorted(steps, key=_at)

    def add(self, steps: Iterable[tuple[float, str]]) -> None:
        with self._lock:
            self._steps = sorted([*self._steps, *steps], key=_at)

    def planned(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._steps)


def _at(step: tuple[float, str]) -> float:
    return step[0]


def stages(start: float, *phases: tuple[str, float]) -> list[tuple[float, str]]:
    """``stages(t, ("pending", 1), ("deploying", 2), ("deployed", 0))`` -> steps at t, t+1, t+3."""
    steps = []
    at = start
    for status, duration in phases:
        steps.append((at, status))
        at += duration
    return steps
