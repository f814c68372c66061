"""Waiting on CML: one poller with backoff for every remote wait (registrations, builds,
deployments, stops), so the load a target puts on a workspace is set in one place."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Polled(Generic[T]):
    """The last value read; `done` is False when the deadline came first."""

    value: T
    done: bool
    waited_s: float
    polls: int


class Poller:
    """Reads until a value is done, waiting `initial_s` between reads at first and `factor`
    times longer after each read, up to `max_s`; never sleeps past the deadline."""

    def __init__(
        self,
        *,
        initial_s: float = 1.0,
        max_s: float = 10.0,
        factor: float = 1.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1:
            raise ValueError("poll intervals must grow from initial_s > 0 to max_s >= initial_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._sleep = sleep
        self._clock = clock

    def until(
        self,
        read: Callable[[], T],
        done: Callable[[T], bool],
        *,
        timeout_s: float,
        seen: Callable[[T], None] | None = None,
    ) -> Polled[T]:
        """Reads at once, then with backoff until `done(value)` or `timeout_s`; `seen` hears
        every value read."""
        begun = self._clock()
        deadline = begun + timeout_s
        delay = self.initial_s
        polls = 0
        while True:
            value = read()
            polls += 1
            if seen is not None:
                seen(value)
            now = self._clock()
            if done(value):
                return Polled(value, True, now - begun, polls)
            if now >= deadline:
                return Polled(value, False, now - begun, polls)
            self._sleep(min(delay, deadline - now))
            delay = min(self.max_s, delay * self.factor)
