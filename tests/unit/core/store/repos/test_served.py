"""The served history: each switch closes what served the endpoint and opens what serves it
now, in the transaction that saves the endpoint (fenced alike); stops and failures close it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.store.models import Hold
from core.store.repos import Repositories
from tests.clock import FakeClock
from tests.unit.core.store.repos.helpers import serving, taken


def _stretches(repos: Repositories, version: int) -> list[tuple[str, float | None]]:
    now = repos.clock.now()
    return [
        (i.end, round(i.seconds(now)) if i.ended else None)
        for i in repos.served.intervals("dev", "iris", version)
    ]


def test_switches_stops_and_failures_close_what_served(
    repos: Repositories, clock: FakeClock
) -> None:
    repos.endpoints.save(serving(version=1))
    clock.advance(600)
    repos.endpoints.save(serving(version=2))
    clock.advance(60)
    repos.endpoints.save(serving(version=1), previous_failed="v2 was down when v1 replaced it")
    clock.advance(120)
    repos.endpoints.delete("dev", "iris")

    assert _stretches(repos, 1) == [("switched", 600), ("stopped", 120)]
    assert _stretches(repos, 2) == [("failed", 60)]
    (failed,) = repos.served.intervals("dev", "iris", 2)
    assert failed.detail == "v2 was down when v1 replaced it"
    assert repos.served.serving("dev", "iris") is None

    repos.endpoints.save(serving(version=3))
    clock.advance(30)
    assert repos.served.failed("dev", "iris", "rolled back by itself")
    assert _stretches(repos, 3) == [("failed", 30)]
    assert repos.served.failed("dev", "iris", "again") is False  # nothing serves it now


def test_a_stale_run_writes_no_history(repos: Repositories, clock: FakeClock) -> None:
    op_id, mine = taken(repos, "bot-a")
    assert repos.endpoints.save(serving(version=1), op_id=op_id, hold=mine)
    clock.advance(31)  # bot-a stalls past its lease; bot-b takes the operation over
    over = repos.operations.claim("bot-b", lease_s=30)
    assert over is not None

    assert repos.endpoints.save(serving(version=2), op_id=op_id, hold=mine) is False
    assert repos.served.failed("dev", "iris", "down", op_id=op_id, hold=mine) is False
    assert repos.served.intervals("dev", "iris", 2) == []
    current = repos.served.serving("dev", "iris")
    assert current is not None and (current.version, current.end) == (1, "")

    assert repos.served.failed("dev", "iris", "down", op_id=op_id, hold=Hold.of(over))
    with pytest.raises(ValueError):
        repos.served.failed("dev", "iris", "down", op_id=op_id)


def test_what_served_at_a_moment_includes_its_start_and_not_its_end(
    repos: Repositories, clock: FakeClock
) -> None:
    assert repos.served.begins() is None
    repos.endpoints.save(serving(version=1))
    clock.advance(600)
    repos.endpoints.save(serving(version=2))
    clock.advance(60)
    repos.endpoints.delete("dev", "iris")
    (one,), (two,) = (repos.served.intervals("dev", "iris", v) for v in (1, 2))
    first, second, stopped = one.started, two.started, two.ended
    assert stopped is not None

    def versions(moment: datetime) -> list[int]:
        return [i.version for i in repos.served.at("iris", moment)]

    assert repos.served.begins() == first
    assert versions(first - timedelta(seconds=1)) == []
    assert versions(first) == [1]
    assert versions(second) == [2]  # v1 ended as v2 began: one version at a time
    assert versions(second - timedelta(seconds=1)) == [1]
    assert versions(stopped) == []
    assert repos.served.at("other", second) == []
