"""Deliveries: a request is handed on once among any number of fronts; old keys are
forgotten after the keeping time, by the clock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from core.store.repos import Repositories
from core.store.repos.deliveries import DeliveryRepository
from tests.clock import FakeClock


def test_a_delivery_is_first_exactly_once_among_eight_fronts(repos: Repositories) -> None:
    start = threading.Barrier(8)

    def deliver(_: int) -> bool:
        start.wait()
        return repos.deliveries.first("command:13345224609.738")

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(deliver, range(8))) == [False] * 7 + [True]
    assert repos.deliveries.first("command:13345224609.739") is True


def test_keys_are_forgotten_after_the_keeping_time(repos: Repositories, clock: FakeClock) -> None:
    deliveries = DeliveryRepository(repos.db, keep_s=24 * 3600)
    assert deliveries.first("command:1")
    clock.advance(23 * 3600)
    assert deliveries.first("command:2")
    assert deliveries.first("command:1") is False  # a retry within a day is still refused
    clock.advance(2 * 3600)  # command:1 is 25 h old, command:2 is 2 h old
    assert deliveries.first("command:3")  # sweeps now and then: this call does
    assert deliveries.first("command:1") is True  # forgotten: a new delivery
    assert deliveries.first("command:2") is False


def test_a_long_key_is_cut_to_the_column_and_still_recognised(repos: Repositories) -> None:
    key = "action:" + "x" * 400
    assert repos.deliveries.first(key)
    assert repos.deliveries.first(key) is False
