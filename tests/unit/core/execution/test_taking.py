"""The one taker loop of a process: every source asked in turn, none waiting behind another,
nothing taken without a free slot, rounds at their pace, a bad source not ending the loop."""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.errors import StoreError
from core.execution.taking import Source, Taker, rounds

WAIT_S = 10.0


def test_a_source_busy_on_all_its_slots_does_not_keep_another_from_being_taken() -> None:
    release = threading.Event()
    deploys: list[str] = []
    answered = threading.Event()

    def deploy() -> Callable[[], None]:
        def run() -> None:
            deploys.append("deploy")
            release.wait(WAIT_S)  # a deploy runs on until the test ends

        return run

    def status() -> Callable[[], None] | None:
        return answered.set if len(deploys) == 2 else None

    taker = Taker([Source("deploys", deploy, slots=2), Source("statuses", status)], poll_s=0.01)
    taker.start()
    try:
        assert answered.wait(WAIT_S), "a status was never answered while deploys ran"
        assert len(deploys) == 2  # never more than its slots, though it always had more
    finally:
        release.set()
        taker.stop()


def test_nothing_is_taken_without_a_free_slot() -> None:
    release = threading.Event()
    taken: list[str] = []
    claims: list[int] = []
    two_running = threading.Event()

    def take() -> Callable[[], None]:
        claims.append(1)

        def run() -> None:
            taken.append("job")
            if len(taken) == 2:
                two_running.set()
            release.wait(WAIT_S)

        return run

    taker = Taker([Source("jobs", take, slots=2)], poll_s=0.01).start()
    try:
        assert two_running.wait(WAIT_S)
        for _ in range(5):
            taker.nudge()
        # a row claimed here but not run would wait for a slot while another process could run it
        assert len(claims) == 2
    finally:
        release.set()
        taker.stop()


def test_a_round_is_asked_at_most_once_in_its_interval() -> None:
    now = [0.0]
    done = threading.Event()
    runs: list[float] = []

    def run() -> None:
        runs.append(now[0])
        done.set()

    taker = Taker([rounds("watches", run, every_s=5.0)], poll_s=0.01, clock=lambda: now[0])
    taker.start()
    try:
        assert done.wait(WAIT_S)
        done.clear()
        for _ in range(20):
            taker.nudge()
        assert not done.wait(0.2)  # the clock has not moved: no second round
        now[0] = 5.0
        taker.nudge()
        assert done.wait(WAIT_S)
    finally:
        taker.stop()
    assert runs == [0.0, 5.0]


def test_a_source_that_fails_does_not_end_the_loop() -> None:
    ran = threading.Event()
    failures = iter([StoreError("database is locked"), RuntimeError("a bad row")])

    def broken() -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure

    def take_broken() -> Callable[[], None]:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return lambda: None

    taker = Taker(
        [
            Source("broken takes", take_broken),
            rounds("broken rounds", broken, every_s=0.0),
            Source("fine", lambda: ran.set),
        ],
        poll_s=0.01,
    ).start()
    try:
        assert ran.wait(WAIT_S)
    finally:
        taker.stop()


def test_hand_over_says_whether_what_ran_ended_in_time() -> None:
    release = threading.Event()
    started = threading.Event()

    def take() -> Callable[[], None]:
        def run() -> None:
            started.set()
            release.wait(WAIT_S)

        return run

    taker = Taker([Source("deploys", take)], poll_s=0.01).start()
    assert started.wait(WAIT_S)
    assert taker.hand_over(0.05) is False  # still mid-step
    release.set()
