"""How long finished rows are kept, and when the older ones are deleted.

Jobs that ended, outbox rows sent and remembered deliveries are kept `keep_s` (the settings'
`keep_done_s`), then deleted by whichever repository writes such rows anyway: the first time it
writes in a process, then every twenty-fourth of `keep_s`. No loop of its own, and a table
never holds much more than `keep_s` of them.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from core.store.models import KEEP_DONE_S


class Retention:
    def __init__(self, keep_s: float = KEEP_DONE_S) -> None:
        self.keep_s = keep_s
        self._swept_at: datetime | None = None
        self._guard = threading.Lock()

    def due(self, now: datetime) -> datetime | None:
        """When a sweep is due at `now` (it is then taken as done): the moment before which
        finished rows go. None when the last sweep was less than a 24th of `keep_s` ago."""
        with self._guard:
            if self._swept_at is not None and now - self._swept_at < timedelta(
                seconds=self.keep_s / 24
            ):
                return None
            self._swept_at = now
        return now - timedelta(seconds=self.keep_s)
