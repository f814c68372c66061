"""Pieces of the CML target that need no workspace: the poller's backoff and where the model
service lives."""

from __future__ import annotations

from core.targets.cml.poller import Poller
from core.targets.cml.serving import model_service_url


def test_the_poller_backs_off_from_the_first_interval_to_the_cap() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    poller = Poller(initial_s=1, max_s=10, sleep=sleep, clock=lambda: now[0])
    polled = poller.until(lambda: now[0], lambda t: t >= 60, timeout_s=100)

    assert polled.done and polled.polls == len(slept) + 1
    assert slept[:7] == [1, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10]
    assert set(slept[7:]) == {10}
    timed_out = poller.until(lambda: now[0], lambda _t: False, timeout_s=2.5)
    assert not timed_out.done and timed_out.waited_s == 2.5


def test_the_model_service_lives_beside_the_workspace() -> None:
    assert model_service_url("https://ml-1a2b.abc.cloudera.site") == (
        "https://modelservice.ml-1a2b.abc.cloudera.site/model"
    )
    assert model_service_url("https://ml-1a2b.abc.cloudera.site/api/v2") == (
        "https://modelservice.ml-1a2b.abc.cloudera.site/model"
    )
    assert model_service_url("http://127.0.0.1:8090") == "http://127.0.0.1:8090/model"
    assert model_service_url("http://localhost:8090/") == "http://localhost:8090/model"
