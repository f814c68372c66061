"""Operations taken with leases, on both backends: each runs once, however many bot
processes reach for it; a dead holder's operation is taken over, a live one's is not."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from core.store import Hold, OperationState, Store


def queue(store: Store, n: int, **options: object) -> list[str]:
    return [
        store.enqueue(
            kind="deploy",
            env="dev",
            endpoint=f"m{i:02d}",
            requested_by="U1",
            command=f"/deploy m{i:02d} v1",
            **options,  # type: ignore[arg-type]
        ).id
        for i in range(n)
    ]


def test_each_queued_operation_is_taken_by_exactly_one_of_eight_takers(store: Store) -> None:
    ids = queue(store, 20)
    start = threading.Barrier(8)

    def taker(n: int) -> list[str]:
        start.wait()
        taken = []
        while (op := store.claim(f"bot-{n}", lease_s=30)) is not None:
            assert op.owner == f"bot-{n}" and op.state == OperationState.RUNNING
            taken.append(op.id)
        return taken

    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(taker, range(8)))

    everything = [op_id for mine in taken for op_id in mine]
    assert sorted(everything) == sorted(ids)  # all of them, none twice
    ops = [store.operation(op_id) for op_id in ids]
    assert {(o.attempts, o.state) for o in ops if o} == {(1, OperationState.RUNNING)}
    assert {o.owner for o in ops if o} == {f"bot-{n}" for n, mine in enumerate(taken) if mine}


def test_a_live_lease_is_respected_and_a_lapsed_one_taken_over(store: Store) -> None:
    (live,) = queue(store, 1, owner="bot-a", lease_s=30)
    assert store.claim("bot-b", lease_s=30) is None
    assert store.renew([live], "bot-b", lease_s=30) == set()  # not b's to renew
    assert store.renew([live], "bot-a", lease_s=30) == {live}

    (dying,) = queue(store, 1, owner="bot-dead", lease_s=0.2)
    time.sleep(0.4)
    taken = store.claim("bot-b", lease_s=30)
    assert taken is not None and taken.id == dying
    assert (taken.owner, taken.attempts) == ("bot-b", 2)
    assert store.renew([dying], "bot-dead", lease_s=30) == set()  # it lost the operation
    assert store.claim("bot-c", lease_s=30) is None

    store.finish(dying, OperationState.SUCCEEDED)
    assert store.renew([dying], "bot-b", lease_s=30) == set()  # ended: nothing to hold
    assert [o.id for o in store.running()] == [live]


def test_a_finished_operation_is_never_taken_again(store: Store) -> None:
    (op_id,) = queue(store, 1, owner="bot-a", lease_s=0.1)
    store.finish(op_id, OperationState.FAILED, "the build failed")
    time.sleep(0.2)
    assert store.claim("bot-b", lease_s=30) is None
    op = store.operation(op_id)
    assert op is not None and (op.state, op.owner, op.attempts) == ("failed", "bot-a", 1)


def test_a_delivery_is_first_exactly_once_among_eight_fronts(store: Store) -> None:
    start = threading.Barrier(8)

    def deliver(_: int) -> bool:
        start.wait()
        return store.first_delivery("command:13345224609.738")

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(deliver, range(8))) == [False] * 7 + [True]
    assert store.first_delivery("command:13345224609.739") is True


def test_only_the_holder_ends_an_operation_and_one_given_back_is_queued_again(
    store: Store,
) -> None:
    (op_id,) = queue(store, 1, owner="bot-dead", lease_s=0.1)
    time.sleep(0.2)
    taken = store.claim("bot-b", lease_s=30)
    assert taken is not None and taken.id == op_id
    # the process that lost it wakes up and tries to end it: it no longer may
    dead = Hold("bot-dead", 1)
    assert store.finish(op_id, OperationState.FAILED, "late", hold=dead) is False
    assert store.record(op_id, step="switch", hold=dead) is False
    op = store.operation(op_id)
    assert op is not None and (op.state, op.error) == ("running", "")

    store.give_back(op_id, "bot-b")  # b is stopping before it began
    op = store.operation(op_id)
    assert op is not None and (op.state, op.owner, op.attempts) == ("queued", "", 1)
    again = store.claim("bot-c", lease_s=30)
    assert again is not None and (again.owner, again.attempts) == ("bot-c", 2)
    assert store.finish(op_id, OperationState.SUCCEEDED, hold=Hold("bot-b", 2)) is False
    assert store.finish(op_id, OperationState.SUCCEEDED, hold=Hold("bot-c", 2)) is True
