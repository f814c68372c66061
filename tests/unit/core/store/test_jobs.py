"""The job queue on each backend: one job per delivery, taken by one process at a time, taken
again when its holder's lease lapses, and linked to the operation it recorded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from core.store.jobs import JobQueue, JobState
from core.store.repos import Repositories
from tests.clock import FakeClock

FRONTS, KINDS = frozenset({"slack"}), frozenset({"command"})


class Asked(BaseModel):
    kind: str = "command"
    text: str


def test_a_retried_delivery_records_nothing(repos: Repositories) -> None:
    queue = JobQueue(repos.db)
    first = queue.record(key="command:1.2", front="slack", job=Asked(text="a"), kind="command")
    again = queue.record(key="command:1.2", front="slack", job=Asked(text="a"), kind="command")
    assert first is not None and again is None
    row = queue.get(first)
    assert row is not None and row.payload == {"kind": "command", "text": "a"}


def test_one_taker_per_job_and_a_lapsed_one_is_taken_again(repos: Repositories) -> None:
    queue = JobQueue(repos.db)
    job_id = queue.record(key="k", front="slack", job=Asked(text="a"), kind="command")

    def take(owner: str) -> str | None:
        row = queue.claim(owner, lease_s=60, fronts=FRONTS, kinds=KINDS)
        return row.owner if row else None

    with ThreadPoolExecutor(4) as pool:
        taken = [o for o in pool.map(take, [f"p{i}" for i in range(4)]) if o]
    assert len(taken) == 1
    assert queue.claim("other", lease_s=60, fronts=FRONTS, kinds=KINDS) is None
    # the holder dies: its lease lapses (a negative lease: already lapsed), another takes it
    held = queue.get(str(job_id))
    assert held is not None
    queue.renew([held.id], held.owner, lease_s=-1)
    again = queue.claim("next", lease_s=60, fronts=FRONTS, kinds=KINDS)
    assert again is not None and (again.id, again.attempts) == (job_id, 2)
    queue.finish(held)  # the old holder's late finish changes nothing
    assert queue.unfinished(FRONTS) == 1
    queue.finish(again, JobState.DONE)
    assert queue.unfinished(FRONTS) == 0


def test_the_operation_a_job_recorded_is_found(repos: Repositories) -> None:
    queue = JobQueue(repos.db)
    repos.operations.enqueue(
        kind="deploy",
        env="dev",
        endpoint="iris",
        requested_by="alice",
        command="/deploy iris v1",
        reply_to={"front": "slack", "job": "job-1234567890"},
    )
    found = queue.operation_of("job-1234567890")
    assert found is not None and found.endpoint == "iris"
    assert queue.operation_of("job-0000000000") is None


def test_a_gone_process_leases_end_at_once_and_only_its_own(repos: Repositories) -> None:
    from core.execution.leases import let_lapse

    queue = JobQueue(repos.db)
    mine = queue.record(key="a", front="slack", job=Asked(text="a"), kind="command")
    theirs = queue.record(key="b", front="slack", job=Asked(text="b"), kind="command")
    assert queue.claim("dead", lease_s=60, fronts=FRONTS, kinds=KINDS) is not None
    assert queue.claim("alive", lease_s=60, fronts=FRONTS, kinds=KINDS) is not None
    op = repos.operations.enqueue(
        kind="deploy",
        env="dev",
        endpoint="iris",
        requested_by="alice",
        command="/deploy iris v1",
        owner="dead",
        lease_s=60,
    )
    watch = repos.watches.begin(
        env="dev",
        endpoint="iris",
        operation_id=op.id,
        model="iris",
        version=1,
        deployment="d1",
        previous=None,
        reply_to={},
        watch_s=600,
    )
    assert [w.id for w in repos.watches.claim("dead", lease_s=60, fronts=frozenset({""}))] == [
        watch.id
    ]
    # nothing is free while its holder's lease runs
    assert queue.claim("next", lease_s=60, fronts=FRONTS, kinds=KINDS) is None
    assert repos.operations.claim("next", lease_s=60) is None

    assert let_lapse(repos.db, "dead") == 3  # its job, its operation, its watch

    taken = queue.claim("next", lease_s=60, fronts=FRONTS, kinds=KINDS)
    assert taken is not None and taken.id == mine
    resumed = repos.operations.claim("next", lease_s=60)
    assert resumed is not None and (resumed.id, resumed.attempts) == (op.id, 2)
    watched = repos.watches.claim("next", lease_s=60, fronts=frozenset({""}))
    assert [w.id for w in watched] == [watch.id]
    other = queue.get(theirs or "")
    assert other is not None and other.owner == "alive"  # another process's lease stays


def test_a_job_that_ended_goes_after_the_keeping_time_and_an_unfinished_one_stays(
    repos: Repositories, clock: FakeClock
) -> None:
    queue = JobQueue(repos.db, keep_s=24 * 3600)

    def ran(key: str, state: JobState = JobState.DONE) -> str:
        job_id = queue.record(key=key, front="slack", job=Asked(text=key), kind="command")
        taken = queue.claim("bot", lease_s=60, fronts=FRONTS, kinds=KINDS)
        assert taken is not None and taken.id == job_id
        queue.finish(taken, state)
        return taken.id

    done, given_up = ran("done"), ran("given-up", JobState.ABANDONED)
    # a query nobody took yet (this test takes only commands)
    waiting = queue.record(key="waiting", front="slack", job=Asked(text="w"), kind="query")
    clock.advance(23 * 3600)
    recent = ran("recent")  # a sweep: nothing ended a day ago yet
    assert queue.get(done) is not None
    assert queue.record(key="done", front="slack", job=Asked(text="a"), kind="command") is None
    clock.advance(2 * 3600)  # `done` ended 25 h ago, `recent` 2 h ago
    ran("later")  # the next sweep, as part of finishing a job
    assert queue.get(done) is None and queue.get(given_up) is None
    assert queue.get(recent) is not None
    still = queue.get(str(waiting))
    assert still is not None and still.state == JobState.QUEUED  # never run: kept, however old
