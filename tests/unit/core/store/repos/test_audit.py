"""The audit trail as stored: newest first, `since` compares instants whatever the time zone
of the backend's session or of the question."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.store.repos import Repositories
from tests.clock import FakeClock

KOLKATA = timezone(timedelta(hours=5, minutes=30))
NEW_YORK = timezone(timedelta(hours=-5))


def audit(repos: Repositories, at: datetime | None, endpoint: str = "iris") -> None:
    repos.audit.add(
        at=at,
        actor_id="U1",
        actor_name="ana",
        action="deploy",
        command=f"/deploy {endpoint}",
        env="prod",
        endpoint=endpoint,
        outcome="allowed",
        detail=at.isoformat() if at else "",
    )


def instant(moment: datetime) -> datetime:
    """The same instant, comparable whatever the backend returned (SQLite: naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@pytest.mark.parametrize("url", ["sqlite", "postgresql", "postgresql-kolkata"], indirect=True)
def test_audit_is_newest_first_and_since_counts_instants(repos: Repositories) -> None:
    base = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for hours, endpoint in [(0, "iris"), (1, "iris"), (2, "wine"), (3, "iris"), (3, "iris")]:
        audit(repos, base + timedelta(hours=hours), endpoint)

    every = repos.audit.entries()
    assert [instant(e.at) for e in every] == [base + timedelta(hours=h) for h in (3, 3, 2, 1, 0)]
    assert every[0].id > every[1].id  # same moment: the later write first
    assert len(repos.audit.entries(limit=2)) == 2
    assert {e.endpoint for e in repos.audit.entries(endpoint="wine")} == {"wine"}

    # one instant, three spellings: 10:00 UTC == 15:30 in Kolkata == 05:00 in New York
    for since in (
        base + timedelta(hours=1),
        datetime(2026, 11, 1, 15, 30, tzinfo=KOLKATA),
        datetime(2026, 11, 1, 5, 0, tzinfo=NEW_YORK),
    ):
        found = repos.audit.entries(since=since)
        assert [instant(e.at) for e in found] == [base + timedelta(hours=h) for h in (3, 3, 2, 1)]
    assert repos.audit.entries(since=base + timedelta(hours=3, seconds=1)) == []


@pytest.mark.parametrize("url", ["sqlite", "postgresql-kolkata"], indirect=True)
def test_an_entry_is_stamped_with_the_clocks_now(repos: Repositories, clock: FakeClock) -> None:
    clock.advance(-7 * 24 * 3600)  # a week ago
    week_ago = clock.now()
    audit(repos, None)
    clock.advance(7 * 24 * 3600)
    (entry,) = repos.audit.entries(since=(week_ago - timedelta(minutes=1)).astimezone(NEW_YORK))
    assert abs(instant(entry.at) - week_ago) < timedelta(seconds=1)
    assert repos.audit.entries(since=week_ago + timedelta(hours=1)) == []
