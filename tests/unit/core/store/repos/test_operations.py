"""Operations taken with leases, on both backends: each runs once, however many bot
processes reach for it; a dead holder's operation is taken over, a live one's is not; every
write a run makes is fenced by its hold."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.store.models import Hold, OperationState
from core.store.repos import Repositories
from tests.clock import FakeClock
from tests.unit.core.store.repos.helpers import queue, taken


def test_operations_and_events_round_trip_in_order(repos: Repositories) -> None:
    ops = repos.operations
    first, second = queue(repos, 2)
    ops.record(first, step="build", remote={"build_id": "b-1"})
    ops.record(first, step="deploy", remote={"deployment_id": "d-7", "note": {"häß": ["ü", 1]}})
    messages = [f"step {i}: ✓ “quoted” 'single' ; DROP TABLE events" for i in range(12)]
    for i, message in enumerate(messages):
        ops.add_event(first if i % 3 else second, "progress", f"s{i}", message)
    ops.finish(first, OperationState.SUCCEEDED)
    ops.finish(second, OperationState.FAILED, "build failed: out of memory")

    op = ops.get(first)
    assert op is not None
    assert (op.state, op.step, op.error) == ("succeeded", "deploy", "")
    assert op.remote == {"build_id": "b-1", "deployment_id": "d-7", "note": {"häß": ["ü", 1]}}
    assert op.finished_at is not None
    failed = ops.get(second)
    assert failed is not None
    assert (failed.state, failed.error) == ("failed", "build failed: out of memory")
    assert [e.message for e in ops.events(first)] == [m for i, m in enumerate(messages) if i % 3]
    assert [e.step for e in ops.events(second)] == ["s0", "s3", "s6", "s9"]
    assert [o.id for o in ops.recent()] == [second, first]
    assert ops.get("op-none") is None


def test_each_queued_operation_is_taken_by_exactly_one_of_eight_takers(
    repos: Repositories,
) -> None:
    ids = queue(repos, 20)
    start = threading.Barrier(8)

    def taker(n: int) -> list[str]:
        start.wait()
        taken = []
        while (op := repos.operations.claim(f"bot-{n}", lease_s=30)) is not None:
            assert op.owner == f"bot-{n}" and op.state == OperationState.RUNNING
            taken.append(op.id)
        return taken

    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(taker, range(8)))

    everything = [op_id for mine in taken for op_id in mine]
    assert sorted(everything) == sorted(ids)  # all of them, none twice
    ops = [repos.operations.get(op_id) for op_id in ids]
    assert {(o.attempts, o.state) for o in ops if o} == {(1, OperationState.RUNNING)}
    assert {o.owner for o in ops if o} == {f"bot-{n}" for n, mine in enumerate(taken) if mine}


def test_a_live_lease_is_respected_and_a_lapsed_one_taken_over(
    repos: Repositories, clock: FakeClock
) -> None:
    ops = repos.operations
    (live,) = queue(repos, 1, owner="bot-a", lease_s=3600)
    assert ops.claim("bot-b", lease_s=30) is None
    assert ops.renew([live], "bot-b", lease_s=3600) == set()  # not b's to renew
    assert ops.renew([live], "bot-a", lease_s=3600) == {live}

    (dying,) = queue(repos, 1, owner="bot-dead", lease_s=60)
    clock.advance(59)
    assert ops.claim("bot-b", lease_s=3600) is None  # not yet
    clock.advance(2)
    taken = ops.claim("bot-b", lease_s=3600)
    assert taken is not None and taken.id == dying
    assert (taken.owner, taken.attempts) == ("bot-b", 2)
    assert ops.renew([dying], "bot-dead", lease_s=30) == set()  # it lost the operation
    assert ops.claim("bot-c", lease_s=30) is None

    ops.finish(dying, OperationState.SUCCEEDED)
    assert ops.renew([dying], "bot-b", lease_s=30) == set()  # ended: nothing to hold
    assert [o.id for o in ops.running()] == [live]


def test_a_renewed_lease_outlives_its_first_term(repos: Repositories, clock: FakeClock) -> None:
    (op_id,) = queue(repos, 1, owner="bot-a", lease_s=30)
    clock.advance(20)
    assert repos.operations.renew([op_id], "bot-a", lease_s=30) == {op_id}
    clock.advance(20)  # 40 s after it was taken, 20 s after the renewal
    assert repos.operations.claim("bot-b", lease_s=30) is None


def test_a_finished_operation_is_never_taken_again(repos: Repositories, clock: FakeClock) -> None:
    (op_id,) = queue(repos, 1, owner="bot-a", lease_s=30)
    repos.operations.finish(op_id, OperationState.FAILED, "the build failed")
    clock.advance(3600)
    assert repos.operations.claim("bot-b", lease_s=30) is None
    op = repos.operations.get(op_id)
    assert op is not None and (op.state, op.owner, op.attempts) == ("failed", "bot-a", 1)


def test_only_the_holder_ends_an_operation_and_one_given_back_is_queued_again(
    repos: Repositories, clock: FakeClock
) -> None:
    ops = repos.operations
    (op_id,) = queue(repos, 1, owner="bot-dead", lease_s=30)
    clock.advance(31)
    taken = ops.claim("bot-b", lease_s=30)
    assert taken is not None and taken.id == op_id
    # the process that lost it wakes up and tries to end it: it no longer may
    dead = Hold("bot-dead", 1)
    assert ops.finish(op_id, OperationState.FAILED, "late", hold=dead) is False
    assert ops.record(op_id, step="switch", hold=dead) is False
    op = ops.get(op_id)
    assert op is not None and (op.state, op.error, op.step) == ("running", "", "")

    ops.give_back(op_id, "bot-b")  # b is stopping before it began
    op = ops.get(op_id)
    assert op is not None and (op.state, op.owner, op.attempts) == ("queued", "", 1)
    again = ops.claim("bot-c", lease_s=30)
    assert again is not None and (again.owner, again.attempts) == ("bot-c", 2)
    assert ops.finish(op_id, OperationState.SUCCEEDED, hold=Hold("bot-b", 2)) is False
    assert ops.finish(op_id, OperationState.SUCCEEDED, hold=Hold("bot-c", 2)) is True


def test_a_stale_hold_writes_no_step_reply_target_or_lock_token(
    repos: Repositories, clock: FakeClock
) -> None:
    ops = repos.operations
    op_id, mine = taken(repos, "bot-a")
    assert ops.record(op_id, step="build", remote={"build": "b-1"}, hold=mine)
    assert ops.set_reply_to(op_id, {"channel": "C1", "ts": "1.0"}, hold=mine)
    assert ops.set_lock_token(op_id, "lock-a", hold=mine)

    clock.advance(31)
    over = ops.claim("bot-b", lease_s=30)
    assert over is not None and over.id == op_id
    assert ops.record(op_id, step="switch", remote={"build": "b-2"}, hold=mine) is False
    assert ops.set_reply_to(op_id, {"channel": "C2"}, hold=mine) is False
    assert ops.set_lock_token(op_id, "lock-stale", hold=mine) is False

    op = ops.get(op_id)
    assert op is not None
    assert (op.step, op.remote, op.lock_token) == ("build", {"build": "b-1"}, "lock-a")
    assert op.reply_to == {"channel": "C1", "ts": "1.0"}
    # the new holder writes as before
    assert ops.set_reply_to(op_id, {"ts": "2.0"}, hold=Hold.of(over))
    after = ops.get(op_id)
    assert after is not None and after.reply_to == {"channel": "C1", "ts": "2.0"}


@pytest.mark.parametrize("round_", range(5))
def test_a_takeover_and_the_old_holders_write_never_both_land(
    repos: Repositories, clock: FakeClock, round_: int
) -> None:
    """The old holder writes its step while a new one takes the operation over: the step is
    written only if the write came before the takeover, never after it."""
    ops = repos.operations
    op_id, mine = taken(repos, "bot-a")
    clock.advance(31)
    start = threading.Barrier(2)
    wrote: list[bool] = []

    def write() -> None:
        start.wait()
        wrote.append(ops.record(op_id, step="switch", hold=mine))

    def take() -> None:
        start.wait()
        ops.claim("bot-b", lease_s=30)

    threads = [threading.Thread(target=write), threading.Thread(target=take)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    op = ops.get(op_id)
    assert op is not None and (op.owner, op.attempts) == ("bot-b", 2)  # the takeover lands
    assert wrote == [op.step == "switch"]


def test_previous_version_is_the_last_other_version_that_succeeded(repos: Repositories) -> None:
    ops = repos.operations
    for version, state in [(1, "succeeded"), (2, "succeeded"), (3, "failed"), (2, "succeeded")]:
        op = ops.enqueue(
            kind="deploy", env="dev", endpoint="iris", requested_by="U1", command="/deploy"
        )
        ops.record(op.id, remote={"version": version})
        ops.finish(op.id, OperationState(state))
    assert ops.previous_version("dev", "iris", 2) == 1
    assert ops.previous_version("dev", "iris", 1) == 2
    assert ops.previous_version("prod", "iris", 2) is None


def test_a_canary_decision_is_recorded_only_while_the_canary_is_at_its_share(
    repos: Repositories,
) -> None:
    ops = repos.operations
    (op_id,) = queue(repos, 1)
    assert not ops.decide(op_id, decision="abort", by="U1", at=10)  # not in its canary yet
    ops.record(op_id, step="canary", remote={"canary_at": 10})
    assert not ops.decide(op_id, decision="abort", by="U1", at=50)
    assert ops.get(op_id).gate is None  # type: ignore[union-attr]
    assert ops.decide(op_id, decision="hold", by="U1", at=10)
    ops.record(op_id, step="canary", remote={"canary_at": 50})  # it moved on meanwhile
    assert not ops.decide(op_id, decision="abort", by="U2", at=10)
    assert ops.get(op_id).gate == {"decision": "hold", "by": "U1", "at": 10}  # type: ignore[union-attr]
