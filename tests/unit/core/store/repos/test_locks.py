"""Endpoint locks on both backends: one holder at a time, told who holds it; a lapsed lock
is taken over, a freeze never lapses, and only its own token releases or rotates a lock."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from core.store.repos import Repositories
from tests.clock import FakeClock


def test_one_of_eight_simultaneous_rollouts_takes_the_endpoint(repos: Repositories) -> None:
    start = threading.Barrier(8)

    def take(n: int) -> tuple[bool, str]:
        start.wait()
        attempt = repos.locks.try_lock(
            "prod", "iris", holder=f"admin-{n}", reason=f"r{n}", ttl_s=60
        )
        return attempt.acquired, attempt.holder

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(take, range(8)))

    winners = [holder for acquired, holder in results if acquired]
    assert len(winners) == 1
    # every loser was told who holds it
    assert {holder for acquired, holder in results if not acquired} == set(winners)
    held = repos.locks.get("prod", "iris")
    assert held is not None and held.holder == winners[0]


def test_eight_takers_of_one_lapsed_lock_leave_one_holder(
    repos: Repositories, clock: FakeClock
) -> None:
    assert repos.locks.try_lock("prod", "iris", holder="dead", reason="r", ttl_s=60).acquired
    clock.advance(61)
    start = threading.Barrier(8)

    def take(n: int) -> str:
        start.wait()
        attempt = repos.locks.try_lock("prod", "iris", holder=f"admin-{n}", reason="", ttl_s=60)
        return attempt.token

    with ThreadPoolExecutor(8) as pool:
        tokens = [t for t in pool.map(take, range(8)) if t]
    assert len(tokens) == 1
    held = repos.locks.get("prod", "iris")
    assert held is not None and held.token == tokens[0]


def test_a_lapsed_lock_is_taken_over_and_a_freeze_is_not(
    repos: Repositories, clock: FakeClock
) -> None:
    locks = repos.locks
    first = locks.try_lock("dev", "iris", holder="bot-dead", reason="deploy v2", ttl_s=600)
    assert first.acquired
    clock.advance(599)
    early = locks.try_lock("dev", "iris", holder="ana", reason="deploy v3", ttl_s=60)
    assert (early.acquired, early.holder) == (False, "bot-dead")
    clock.advance(2)
    second = locks.try_lock("dev", "iris", holder="ana", reason="deploy v3", ttl_s=60)
    assert second.acquired and second.token != first.token
    # the dead holder's token no longer releases anything
    assert locks.release("dev", "iris", first.token) is None
    assert locks.release("dev", "iris", second.token) is not None

    frozen = locks.try_lock("dev", "iris", holder="ana", reason="audit", ttl_s=None, sticky=True)
    assert frozen.acquired
    clock.advance(365 * 24 * 3600)
    refused = locks.try_lock("dev", "iris", holder="ben", reason="deploy v4", ttl_s=0.1)
    assert not refused.acquired
    assert (refused.holder, refused.reason, refused.sticky) == ("ana", "audit", True)
    assert refused.since is not None and refused.since.tzinfo is not None
    assert locks.release("dev", "iris") is not None  # /unlock needs no token
    assert locks.get("dev", "iris") is None


def test_only_the_current_token_rotates_a_lock(repos: Repositories) -> None:
    locks = repos.locks
    held = locks.try_lock("dev", "iris", holder="ana", reason="deploy", ttl_s=60)
    assert locks.rotate("dev", "iris", held.token, "lock-new")
    assert locks.rotate("dev", "iris", held.token, "lock-other") is False
    assert locks.release("dev", "iris", held.token) is None  # the old token is spent
    lock = locks.get("dev", "iris")
    assert lock is not None and (lock.token, lock.holder) == ("lock-new", "ana")
    assert locks.rotate("dev", "wine", "lock-new", "x") is False  # another endpoint
