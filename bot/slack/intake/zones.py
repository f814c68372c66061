"""Each person's time zone, as Slack keeps it (`users.info` -> `user.tz`), cached: times a
person types without a zone are read in theirs, and times shown to them are in theirs.

Only a command that reads or shows a time asks. A user Slack does not answer for (no
`users:read` scope, Slack down, a zone this machine does not know) reads times in UTC, and
the answer says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.posting.poster import Poster
from core.moments import UTC_ZONE, Zone, zone_named

log = logging.getLogger("chatops.slack")


class ZoneDirectory:
    def __init__(
        self,
        poster: Poster,
        *,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poster = poster
        self.ttl_s = ttl_s
        self.clock = clock
        self._zones: dict[str, tuple[Zone, float]] = {}
        self._lock = threading.Lock()

    def zone_of(self, user: str) -> Zone:
        """The zone `user` set in Slack; UTC when Slack gives none this machine knows."""
        with self._lock:
            known = self._zones.get(user)
            if known is not None and self.clock() - known[1] < self.ttl_s:
                return known[0]
        try:
            info = self.poster.call("users.info", user=user)
        except (SlackApiError, SlackClientError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc)
            log.warning("users.info failed (%s): times are in UTC for %s", error, user)
            return UTC_ZONE  # not kept: asked again next time
        name = str((info.get("user") or {}).get("tz") or "")
        zone = zone_named(name) or UTC_ZONE
        with self._lock:
            self._zones[user] = (zone, self.clock())
        return zone
