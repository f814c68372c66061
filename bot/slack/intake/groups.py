"""Slack user groups as role members: `@handle` entries resolved to user ids, cached.

Only the handles the settings name are fetched (usergroups.list, then usergroups.users.list
per handle), and the answer is trusted for `ttl_s`. A workspace whose plan has no user groups
answers `plan_upgrade_required`: that is said once, loudly, and roles fall back to user ids.

When a refresh fails (`missing_scope`, Slack down), the last answer is trusted for a short
grace (`grace_s`) past its TTL, then membership is unknown and counts for nobody: a user
removed from a group never keeps its rights because Slack stopped answering.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk.errors import SlackApiError

from bot.slack.posting.poster import Poster

log = logging.getLogger("chatops.slack")

NO_GROUPS = (
    "this Slack workspace has no user groups (plan_upgrade_required): role entries given as "
    "@handles ({handles}) match nobody; list user ids instead"
)


class GroupDirectory:
    def __init__(
        self,
        poster: Poster,
        handles: Iterable[str],
        *,
        ttl_s: float = 300.0,
        grace_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poster = poster
        self.handles = {h.lstrip("@") for h in handles}
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.clock = clock
        self.available = True
        self._members: dict[str, frozenset[str]] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def groups_of(self, user: str) -> frozenset[str]:
        """The configured handles whose group has `user` as a member."""
        members = self._current()
        return frozenset(handle for handle, users in members.items() if user in users)

    def check(self) -> None:
        """Fetch now (at start-up), so a missing feature is reported before anyone asks."""
        self._current()

    def _current(self) -> dict[str, frozenset[str]]:
        with self._lock:
            fresh = self._fetched_at is not None and self.clock() - self._fetched_at < self.ttl_s
            if not self.handles or not self.available or fresh:
                return self._members
            try:
                self._members = self._fetch()
            except SlackApiError as exc:
                if exc.response.get("error") == "plan_upgrade_required":
                    self.available = False
                    self._members = {}
                    log.warning(
                        NO_GROUPS.format(handles=", ".join(f"@{h}" for h in sorted(self.handles)))
                    )
                else:
                    return self._stale(str(exc.response.get("error")))
            self._fetched_at = self.clock()
            return self._members

    def _stale(self, error: str) -> dict[str, frozenset[str]]:
        """After a failed refresh: the last answer within the grace, else nobody (fail
        closed); tried again on the next command either way."""
        age = None if self._fetched_at is None else self.clock() - self._fetched_at
        if age is not None and age < self.ttl_s + self.grace_s:
            log.warning(
                "could not read user groups (%s): trusting the answer of %.0f s ago for at "
                "most %.0f s more",
                error,
                age,
                self.ttl_s + self.grace_s - age,
            )
            return self._members
        log.error(
            "could not read user groups (%s): group membership is unknown, so @handles in "
            "roles grant nothing until Slack answers again",
            error,
        )
        self._members = {}
        self._fetched_at = None
        return self._members

    def _fetch(self) -> dict[str, frozenset[str]]:
        listed = self.poster.call("usergroups.list")
        ids = {g.get("handle"): g.get("id") for g in listed.get("usergroups", [])}
        members: dict[str, frozenset[str]] = {}
        for handle in sorted(self.handles):
            group_id = ids.get(handle)
            if group_id is None:
                log.warning("no Slack user group with the handle @%s", handle)
                continue
            users = self.poster.call("usergroups.users.list", usergroup=group_id)
            members[handle] = frozenset(users.get("users", []))
        return members
