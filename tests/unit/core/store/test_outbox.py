"""The outbox on each backend, and the one transaction it is written in: what several
repositories write inside one session commits or rolls back as one; a row owed is sent by
its process, or taken by one other process once the first is gone, never after it was sent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from core.errors import ChatOpsError
from core.outbox import ANSWER, FINAL, Outbox
from core.store.models import OperationState
from core.store.repos import Repositories
from tests.clock import FakeClock

SLACK = frozenset({"slack"})


def outbox(repos: Repositories, owner: str, max_attempts: int = 3) -> Outbox:
    return Outbox(repos.outbox, owner=owner, lease_s=30, max_attempts=max_attempts)


def test_writes_inside_one_session_commit_or_roll_back_together(repos: Repositories) -> None:
    op = repos.operations.enqueue(
        kind="deploy", env="dev", endpoint="iris", requested_by="a", command="/deploy iris v1"
    )
    attempt = repos.locks.try_lock("dev", "iris", holder="a", reason="deploy", ttl_s=60)
    assert attempt.acquired
    token = attempt.token
    with pytest.raises(ChatOpsError), repos.db.session():
        repos.operations.finish(op.id, OperationState.SUCCEEDED)
        repos.locks.release("dev", "iris", token)
        outbox(repos, "bot-a").owe(FINAL, {"message": "live"}, operation_id=op.id)
        raise ChatOpsError("the process fails before the end is committed")
    # nothing of the end was kept: the operation is still to be ended, its lock held
    assert repos.operations.get(op.id).state == OperationState.QUEUED  # type: ignore[union-attr]
    assert repos.locks.get("dev", "iris") is not None
    assert repos.outbox.of_operation(op.id) == []
    with repos.db.session():
        repos.operations.finish(op.id, OperationState.SUCCEEDED)
        repos.locks.release("dev", "iris", token)
        outbox(repos, "bot-a").owe(FINAL, {"message": "live"}, operation_id=op.id)
    assert repos.operations.get(op.id).state == OperationState.SUCCEEDED  # type: ignore[union-attr]
    assert repos.locks.get("dev", "iris") is None
    assert len(repos.outbox.of_operation(op.id)) == 1


def test_a_row_is_taken_by_another_process_only_once_its_own_is_gone(
    repos: Repositories, clock: FakeClock
) -> None:
    mine, other = outbox(repos, "bot-a"), outbox(repos, "bot-b")
    owed = mine.owe(ANSWER, {"message": {"text": "hi"}}, front="slack", job_id="job-1")
    assert other.take(ANSWER, SLACK) is None  # its process holds it, and sends it
    assert mine.answered("job-1") and not mine.answered("job-2")
    clock.advance(31)  # it died: its lease lapsed
    assert other.take(FINAL, SLACK) is None  # not a final word
    assert other.take(ANSWER, frozenset({"console"})) is None  # nor for that front
    taken = other.take(ANSWER, SLACK)
    assert taken is not None and taken.id == owed and taken.payload["message"]["text"] == "hi"
    other.sent(owed)
    clock.advance(31)
    assert other.take(ANSWER, SLACK) is None  # sent: never again


def test_a_front_that_saw_its_worker_die_frees_what_it_owed_at_once(repos: Repositories) -> None:
    mine, other = outbox(repos, "bot-a"), outbox(repos, "bot-b")
    kept = mine.owe(ANSWER, {"message": {}}, front="slack", job_id="job-1")
    sent = mine.owe(ANSWER, {"message": {}}, front="slack", job_id="job-2")
    mine.sent(sent)
    assert repos.outbox.let_lapse("bot-a") == 1  # the unsent one only
    taken = other.take(ANSWER, SLACK)
    assert taken is not None and taken.id == kept


def test_two_processes_never_take_one_row(repos: Repositories, clock: FakeClock) -> None:
    outbox(repos, "bot-a").owe(FINAL, {}, front="slack", operation_id="op-1")
    clock.advance(31)
    takers = [outbox(repos, f"bot-{n}") for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda o: o.take(FINAL, SLACK), takers))
    assert len([t for t in taken if t is not None]) == 1


def test_a_row_that_cannot_be_sent_is_given_up_after_max_attempts(
    repos: Repositories, clock: FakeClock
) -> None:
    outbox(repos, "bot-a").owe(FINAL, {}, front="slack", operation_id="op-1")
    taken = []
    for n in range(4):
        clock.advance(31)  # each taker dies before sending it
        taken.append(outbox(repos, f"bot-{n}", max_attempts=2).take(FINAL, SLACK))
    assert [t is not None for t in taken] == [True, False, False, False]
    assert repos.outbox.unsent() == []


def test_rows_sent_long_ago_are_forgotten_and_unsent_ones_kept(
    repos: Repositories, clock: FakeClock
) -> None:
    mine = outbox(repos, "bot-a")
    old = mine.owe(ANSWER, {}, front="slack", job_id="job-1")
    mine.sent(old)
    kept = mine.owe(ANSWER, {}, front="slack", job_id="job-2")
    clock.advance(3600)
    assert repos.outbox.forget_sent_before(clock.now()) == 1
    assert not mine.answered("job-1") and mine.answered("job-2")
    assert [r.id for r in repos.outbox.of_job("job-2")] == [kept]


def test_answers_sent_over_the_keeping_time_ago_go_as_others_are_sent(
    repos: Repositories, clock: FakeClock
) -> None:
    mine = outbox(repos, "bot-a")  # keeps what it sent a day (the settings' default)

    def answer(job: str) -> str:
        row = mine.owe(ANSWER, {}, front="slack", job_id=job)
        mine.sent(row)
        return row

    answer("job-1")  # the first sent in a process sweeps: nothing is old yet
    unsent = mine.owe(ANSWER, {}, front="slack", job_id="job-2")
    clock.advance(23 * 3600)
    answer("job-3")
    assert mine.answered("job-1")
    clock.advance(2 * 3600)  # job-1's answer was sent 25 h ago, job-3's 2 h ago
    answer("job-4")  # the next sweep, as part of sending
    assert not mine.answered("job-1") and mine.answered("job-3")
    assert [r.id for r in repos.outbox.of_job("job-2")] == [unsent]  # owed: kept


def test_only_a_jobs_own_answer_means_it_answered(repos: Repositories) -> None:
    """What a job said on the way (a verdict shown on a request) does not end it: taken
    again, it runs its command again; its own answer does."""
    mine = outbox(repos, "bot-a")
    mine.owe(ANSWER, {"message": {"text": "approved"}, "final": False}, job_id="job-1")
    assert not mine.answered("job-1")
    mine.owe(ANSWER, {"message": {"text": "refused"}, "final": True}, job_id="job-1")
    assert mine.answered("job-1")
