"""Endpoint locks on both backends: one holder at a time, told who holds it; a lapsed lock
is taken over, a freeze never lapses, and only its own token releases an operation's lock."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from core.store import Store


def test_one_of_eight_simultaneous_rollouts_takes_the_endpoint(store: Store) -> None:
    start = threading.Barrier(8)

    def take(n: int) -> tuple[bool, str]:
        start.wait()
        attempt = store.try_lock("prod", "iris", holder=f"admin-{n}", reason=f"r{n}", ttl_s=60)
        return attempt.acquired, attempt.holder

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(take, range(8)))

    winners = [holder for acquired, holder in results if acquired]
    assert len(winners) == 1
    # every loser was told who holds it
    assert {holder for acquired, holder in results if not acquired} == set(winners)
    held = store.lock("prod", "iris")
    assert held is not None and held.holder == winners[0]


def test_a_lapsed_lock_is_taken_over_and_a_freeze_is_not(store: Store) -> None:
    first = store.try_lock("dev", "iris", holder="bot-dead", reason="deploy v2", ttl_s=0.2)
    assert first.acquired
    time.sleep(0.4)
    second = store.try_lock("dev", "iris", holder="ana", reason="deploy v3", ttl_s=60)
    assert second.acquired and second.token != first.token
    # the dead holder's token no longer releases anything
    assert store.release("dev", "iris", first.token) is None
    assert store.release("dev", "iris", second.token) is not None

    frozen = store.try_lock("dev", "iris", holder="ana", reason="audit", ttl_s=None, sticky=True)
    assert frozen.acquired
    time.sleep(0.3)
    refused = store.try_lock("dev", "iris", holder="ben", reason="deploy v4", ttl_s=0.1)
    assert not refused.acquired
    assert (refused.holder, refused.reason, refused.sticky) == ("ana", "audit", True)
    assert refused.since is not None and refused.since.tzinfo is not None
    assert store.release("dev", "iris") is not None  # /unlock needs no token
    assert store.lock("dev", "iris") is None
