"""A clock tests move by hand: TTLs, leases and expiries lapse when a test says so, at once,
instead of after a sleep."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Frozen at `start` when given; else the real time plus however far it was advanced
    (so rows written one after another still come out in order)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._offset = timedelta()
        self._guard = threading.Lock()

    def now(self) -> datetime:
        with self._guard:
            base = self._start if self._start is not None else datetime.now(UTC)
            return base + self._offset

    def advance(self, seconds: float) -> None:
        with self._guard:
            self._offset += timedelta(seconds=seconds)
