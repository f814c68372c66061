"""The counts a local endpoint keeps of its traffic: shared memory a worker writes and its host
reads, on a clock the test moves (the same memory the real processes share)."""

from __future__ import annotations

import os

import pytest

from bot.text import traffic as shown
from core.targets.base import Answered, Traffic
from core.targets.local import traffic
from core.targets.local.traffic import BUCKET_S, Counts, Region, Tally


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def worker(region: Region, clock: Clock) -> Tally:
    """The worker's side of `region`, as a worker maps it from its own descriptor."""
    return Tally(os.dup(region.fd), clock=clock)


def answer(tally: Tally, clock: Clock, *, status: int = 200, ms: float = 2.0) -> None:
    began = clock.now
    clock.now += ms / 1000
    tally.record(status, began)


def test_the_host_reads_what_a_worker_counted_over_the_window(clock: Clock) -> None:
    region = Region()
    tally = worker(region, clock)
    for _ in range(7):
        answer(tally, clock)
    answer(tally, clock, status=503)
    answer(tally, clock, status=404)  # a client's mistake, not an error of the endpoint

    counts = traffic.read(region.cells, clock.now, 300)
    assert (counts.requests, counts.errors) == (9, 1)


def test_requests_older_than_the_window_leave_it_and_their_bucket_is_reused(
    clock: Clock,
) -> None:
    region = Region()
    tally = worker(region, clock)
    start = clock.now
    for _ in range(5):
        answer(tally, clock, status=500)
    clock.now += 200
    for _ in range(3):
        answer(tally, clock)

    assert traffic.read(region.cells, clock.now, 300).requests == 8
    assert traffic.read(region.cells, clock.now, 60).requests == 3
    clock.now += 150  # the first five are 350 s old now
    assert traffic.read(region.cells, clock.now, 300).requests == 3
    clock.now = start + traffic.KEPT * BUCKET_S  # the ring came round to the first bucket
    answer(tally, clock)
    counts = traffic.read(region.cells, clock.now, 300)
    assert (counts.requests, counts.errors) == (4, 0)  # not 9 with 5 errors


def test_percentiles_come_from_the_histogram_to_within_a_slot(clock: Clock) -> None:
    region = Region()
    tally = worker(region, clock)
    for ms in [1.0] * 90 + [5.0] * 9 + [250.0]:
        answer(tally, clock, ms=ms)
    counts = traffic.read(region.cells, clock.now, 300)

    p50, p99 = counts.percentile_ms(0.5), counts.percentile_ms(0.99)
    assert p50 == pytest.approx(1.0, rel=0.1)
    assert p99 == pytest.approx(5.0, rel=0.1)
    assert counts.percentile_ms(1.0) == pytest.approx(250.0, rel=0.1)
    assert Counts().percentile_ms(0.5) is None


def test_workers_add_up_per_version_and_the_busiest_version_is_named(clock: Clock) -> None:
    old, new, other = Region(), Region(), Region()
    for region, n, errors in ((old, 4, 1), (new, 6, 0), (other, 5, 2)):
        tally = worker(region, clock)
        for i in range(n):
            answer(tally, clock, status=500 if i < errors else 200, ms=3.0)
    found = traffic.gather([(1, old), (2, new), (2, other)], clock.now, 300)
    reply = {
        "ok": True,
        "window_s": 300,
        "span_s": 120,
        "versions": {str(v): c.as_dict() for v, c in found.items()},
    }

    seen = traffic.summary(reply, 300)
    assert (seen.known, seen.requests, seen.errors) == (True, 15, 3)
    assert (seen.version, seen.by_version) == (2, {1: 4, 2: 11})
    assert seen.p50_ms == pytest.approx(3.0, rel=0.1)
    assert seen.per_minute == 7.5  # 15 requests over the two minutes it served
    assert shown(seen) == (
        "7.5 req/min over the last 2 min · 20.0% errors (3 of 15) · p50 2.9 ms · p99 2.9 ms · "
        "served by v2 (11), v1 (4)"
    )


def test_a_worker_totals_what_it_answered_since_it_took_the_traffic_whatever_the_window(
    clock: Clock,
) -> None:
    region = Region()
    tally = worker(region, clock)
    for _ in range(3):
        answer(tally, clock, status=500)
    clock.now += 2 * traffic.LONGEST_S  # its buckets are long reused: the totals stay
    answer(tally, clock)
    answer(tally, clock, status=404)

    assert traffic.read(region.cells, clock.now, 300).requests == 2
    assert region.totals() == (5, 3)


def test_each_deployments_answers_since_its_switch_are_reported_apart() -> None:
    reply = {
        "ok": True,
        "window_s": 10,
        "span_s": 10,
        "versions": {},
        "deployments": {
            "iris-v1-a": {"version": 1, "requests": 100, "errors": 60},
            "iris-v2-b": {"version": 2, "requests": 40, "errors": 1},
        },
    }
    seen = traffic.summary(reply, 10)
    assert seen.by_deployment == {
        "iris-v1-a": Answered(version=1, requests=100, errors=60),
        "iris-v2-b": Answered(version=2, requests=40, errors=1),
    }
    assert seen.by_deployment["iris-v2-b"].error_rate == 0.025


def test_a_dead_workers_counts_are_kept_until_no_window_can_hold_them(clock: Clock) -> None:
    region = Region()
    answer(worker(region, clock), clock)
    assert not traffic.stale(region, clock.now + traffic.LONGEST_S - BUCKET_S)
    assert traffic.stale(region, clock.now + traffic.LONGEST_S + BUCKET_S)


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (None, "no server process of it is running"),
        ({"ok": False, "error": "unknown op 'traffic'"}, "stop the endpoint and deploy it again"),
        ({"ok": False, "error": "KeyError: 'x'"}, "did not say (KeyError: 'x')"),
    ],
)
def test_a_host_that_cannot_count_says_why(reply: dict[str, object] | None, detail: str) -> None:
    seen = traffic.summary(reply, 300)
    assert not seen.known and seen.per_minute is None
    assert detail in seen.detail and detail in shown(seen)


def test_no_requests_is_said_plainly() -> None:
    quiet = Traffic(window_s=300, known=True, span_s=300)
    assert shown(quiet) == "no requests over the last 5 min"
