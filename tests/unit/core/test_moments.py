"""A moment as people type it, read in their zone when it names none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.moments import moment, zone_named

NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
PARIS = zone_named("Europe/Paris")
NEW_YORK = zone_named("America/New_York")


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("2026-12-01 14:00", datetime(2026, 12, 1, 13, 0, tzinfo=UTC)),  # CET is UTC+1
        ("2026-12-01T14:00", datetime(2026, 12, 1, 13, 0, tzinfo=UTC)),
        ("2026-12-01 9:05:30", datetime(2026, 12, 1, 8, 5, 30, tzinfo=UTC)),
        ("2026-07-01 14:00", datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),  # CEST is UTC+2
        ("2026-12-01T14:00Z", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),
        ("2026-12-01t14:00z", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),
        ("2026-12-01T14:00+05:30", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),
        ("2h ago", NOW - timedelta(hours=2)),
        ("30 min ago", NOW - timedelta(minutes=30)),
        ("3 days ago", NOW - timedelta(days=3)),
        ("now", NOW),
        ("yesterday 14:00", datetime(2026, 12, 5, 13, 0, tzinfo=UTC)),
        ("today 9:30", datetime(2026, 12, 6, 8, 30, tzinfo=UTC)),
    ],
)
def test_each_accepted_form_names_one_instant_in_the_askers_zone(
    text: str, meant: datetime
) -> None:
    assert PARIS is not None
    found = moment(text)
    assert found is not None, text
    assert found.instant(NOW, PARIS.tz) == meant


def test_yesterday_is_the_askers_yesterday() -> None:
    # 01:00 UTC on the 6th is still the 5th in New York: its yesterday is the 4th
    assert NEW_YORK is not None
    late = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    found = moment("yesterday 14:00")
    assert found is not None
    assert found.instant(late, NEW_YORK.tz) == datetime(2026, 12, 4, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "2026-13-01 14:00",
        "2026-12-32",
        "2026-12-01 25:00",
        "2026-12-01 14:00+25:00",
        "01/12/2026 14:00",
        "2 fortnights ago",
        "2h",
        "ago",
        "yesterday 24:00",
        "tomorrow 14:00",
        "99999999 days ago",
    ],
)
def test_anything_else_is_no_moment(text: str) -> None:
    assert moment(text) is None


def test_a_zone_this_machine_does_not_know_is_none() -> None:
    assert zone_named("Mars/Olympus_Mons") is None
    assert zone_named("../../etc/passwd") is None
    assert zone_named("") is None
