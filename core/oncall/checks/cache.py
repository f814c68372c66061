"""The readiness of a running bot, kept for `status`: checked once in the background when the
bot has warmed up, and again when asked and the last result is older than a few minutes.

    cache = ReadinessCache(lambda: readiness(settings), clock=clock)
    cache.start()        # the first check, in a thread of its own
    cache.latest()       # the last result (None until there is one); never waits on a check

Checks call workspaces and the registry over the network; a command must never wait on them,
so asking only ever starts a check in the background and answers with what is known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.clock import Clock
from core.oncall.checks import Report

log = logging.getLogger("chatops.check")

# how old a result may be before asking for it checks again (in the background)
EVERY_S = 300.0


@dataclass(frozen=True)
class Checked:
    """One readiness report and when it was taken."""

    report: Report
    at: datetime


class ReadinessCache:
    """The last readiness report of this process, refreshed in the background."""

    def __init__(
        self, check: Callable[[], Report], *, clock: Clock, every_s: float = EVERY_S
    ) -> None:
        self._check = check
        self._clock = clock
        self._every_s = every_s
        self._lock = threading.Lock()
        self._latest: Checked | None = None
        self._running = False
        self._closed = False
        self._done = threading.Condition(self._lock)

    def start(self) -> None:
        """Check now, in the background, unless a check is under way or this cache closed."""
        with self._lock:
            if self._running or self._closed:
                return
            self._running = True
        threading.Thread(target=self._run, name="readiness", daemon=True).start()

    def latest(self) -> Checked | None:
        """The last result at once; a result older than `every_s` also starts a new check,
        whose result the next caller gets."""
        with self._lock:
            latest = self._latest
        if latest is not None and (self._clock.now() - latest.at).total_seconds() >= self._every_s:
            self.start()
        return latest

    def wait(self, timeout: float, *, newer_than: datetime | None = None) -> Checked | None:
        """The first result (or the first taken after `newer_than`), once there is one, waiting
        at most `timeout` seconds: for a caller that can afford to wait, never for a command."""

        def there() -> bool:
            latest = self._latest
            return latest is not None and (newer_than is None or latest.at > newer_than)

        with self._done:
            self._done.wait_for(there, timeout)
            return self._latest if there() else None

    def close(self) -> None:
        """No new check starts; one under way ends on its own (its thread is a daemon)."""
        with self._lock:
            self._closed = True

    def _run(self) -> None:
        try:
            report = self._check()
        except Exception as exc:  # a check that raises is a bug: keep the last result
            log.warning("the readiness check failed: %s", type(exc).__name__)
            report = None
        with self._done:
            self._running = False
            if report is not None:
                self._latest = Checked(report=report, at=self._clock.now())
                self._done.notify_all()
