"""Operations taken from the database: a queued deploy runs once wherever a Runner takes it;
one its bot left behind too long, or too often, ends failed with why and lets go of its
endpoint instead of staying "in progress"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from commands.base import StatusReport
from core.events import Event, EventKind, Notice, Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder, make_settings
from tests.scenarios.test_deploy_scale_status import ADMIN, COLUMNS, ROWS, run


@pytest.fixture
def strict(
    tmp_path: Path, registry_uri: str, zygote: Zygote, clock: FakeClock
) -> Iterator[Runtime]:
    """A bot that gives up on operations older than 1 s or taken over more than once."""
    settings = make_settings(
        tmp_path / "state", registry_uri, operation_timeout_s=1.0, max_attempts=1
    )
    rt = Runtime(settings, zygote=zygote, clock=clock)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


def test_a_queued_deploy_runs_once_where_a_runner_takes_it(runtime: Runtime) -> None:
    asked = Recorder()
    queued = runtime.deployer.deploy(
        model="iris", version=1, actor=ADMIN, command="/deploy iris v1", reporter=asked, wait=False
    )
    assert isinstance(queued, Outcome) and queued.data == {"queued": True}
    assert queued.operation is not None
    assert asked.events == []  # nothing ran yet
    # the endpoint is taken from the moment it is queued
    second = run(runtime, "/scale iris 2cpu")
    assert isinstance(second, Refusal)
    assert plain(second.text).startswith("iris in dev is locked by alice since ")
    again = run(runtime, "/deploy iris v2")
    assert isinstance(again, Refusal) and "is locked by alice" in plain(again.text)

    seen = Recorder()
    runner = runtime.worker(reporter_for=lambda _op: seen)
    assert runner.run_pending() == 1
    assert runner.run_pending() == 0  # nothing runs twice

    assert seen.events[0].kind is EventKind.STARTED
    assert seen.events[-1].kind is EventKind.SUCCEEDED
    op = runtime.repos.operations.get(queued.operation)
    assert op is not None and (op.state, op.attempts, op.owner) == (
        "succeeded",
        1,
        runner.owner,
    )
    endpoint = runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 1
    answer = httpx.post(
        endpoint.url,
        json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        timeout=10,
    )
    assert answer.status_code == 200
    assert runtime.repos.locks.get("dev", "iris") is None
    outcomes = [(a.action, a.outcome) for a in runtime.repos.audit.entries(endpoint="iris")]
    assert outcomes.count(("deploy", "succeeded")) == 1


def abandoned(runtime: Runtime) -> str:
    """A deploy whose bot process took it and died at once (its lease has lapsed)."""
    queued = runtime.deployer.deploy(
        model="iris",
        version=1,
        actor=ADMIN,
        command="/deploy iris v1",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.operation
    taken = runtime.repos.operations.claim("a-bot-that-died", lease_s=-1)
    assert taken is not None and taken.id == queued.operation
    return queued.operation


def taken_over(runtime: Runtime, clock: FakeClock, *, after: float) -> Recorder:
    """What a bot process taking over the abandoned operation `after` seconds on reports."""
    clock.advance(after)
    seen = Recorder()
    assert runtime.worker(reporter_for=lambda _op: seen).run_pending() == 1
    return seen


def test_an_operation_left_past_its_timeout_is_failed_and_lets_go(
    strict: Runtime, clock: FakeClock
) -> None:
    op_id = abandoned(strict)
    seen = taken_over(strict, clock, after=1.2)

    assert seen.events[-1].kind is EventKind.FAILED
    assert "longer than operation_timeout_s (1 s) allows" in seen.events[-1].message
    op = strict.repos.operations.get(op_id)
    assert op is not None and op.state == "failed" and "operation_timeout_s" in op.error
    assert strict.repos.locks.get("dev", "iris") is None  # the endpoint is free again
    assert strict.repos.endpoints.get("dev", "iris") is None  # and nothing was started
    assert strict.repos.operations.running() == []
    assert run(strict, "/deploy iris v1").ok


def test_an_operation_whose_bots_keep_dying_is_given_up(strict: Runtime, clock: FakeClock) -> None:
    op_id = abandoned(strict)
    seen = taken_over(strict, clock, after=0.2)

    assert seen.events[-1].kind is EventKind.FAILED
    assert (
        "the bot processes running it stopped 1 time, the last at the start (max_attempts 1)"
        in seen.events[-1].message
    )
    op = strict.repos.operations.get(op_id)
    assert op is not None and (op.state, op.attempts) == ("failed", 2)
    assert strict.repos.locks.get("dev", "iris") is None
    audit = strict.repos.audit.entries(endpoint="iris")
    assert [(a.action, a.outcome, a.operation_id) for a in audit] == [("deploy", "failed", op_id)]


def test_status_shows_what_is_under_way_on_an_endpoint(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    queued = runtime.deployer.deploy(
        model="iris",
        version=2,
        actor=ADMIN,
        command="/deploy iris v2",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome)
    report = run(runtime, "/status iris")
    assert isinstance(report, StatusReport)
    (iris,) = report.endpoints
    assert (iris.version, plain(iris.underway)) == (1, "deploy by alice, queued")

    runtime.worker(reporter_for=lambda _op: Recorder()).run_pending()
    report = run(runtime, "/status iris")
    assert isinstance(report, StatusReport)
    (iris,) = report.endpoints
    assert (iris.version, iris.underway) == (2, "")


def test_a_taken_over_operation_respects_a_freeze_made_while_its_bot_was_away(
    runtime: Runtime, clock: FakeClock
) -> None:
    op_id = abandoned(runtime)
    assert isinstance(run(runtime, "/unlock iris"), Notice)  # an admin lifts its lock...
    assert isinstance(run(runtime, "/lock iris quarter-end audit"), Notice)  # ...and freezes
    seen = taken_over(runtime, clock, after=0.2)

    failed = seen.events[-1]
    assert failed.kind is EventKind.FAILED
    assert plain(failed.message) == (
        "failed: not resumed: while it waited, alice froze iris in dev for: quarter-end "
        "audit. Run the command again once it is free, if it is still wanted."
    )
    assert runtime.repos.endpoints.get("dev", "iris") is None
    held = runtime.repos.locks.get("dev", "iris")
    assert held is not None and held.sticky  # the freeze stands
    op = runtime.repos.operations.get(op_id)
    assert op is not None and op.state == "failed"


def test_a_taken_over_operation_whose_lock_was_lifted_takes_it_again(
    runtime: Runtime, clock: FakeClock
) -> None:
    op_id = abandoned(runtime)
    first = runtime.repos.operations.get(op_id)
    assert first is not None
    assert isinstance(run(runtime, "/unlock iris"), Notice)
    taken_over(runtime, clock, after=0.2)
    op = runtime.repos.operations.get(op_id)
    assert op is not None and (op.state, op.attempts) == ("succeeded", 2)
    # the lock it took again is kept with it, for whoever might take it over next
    assert op.lock_token and op.lock_token != first.lock_token
    assert runtime.repos.locks.get("dev", "iris") is None


def test_a_resumed_deploy_of_an_alias_serves_what_it_resolved_before(
    runtime: Runtime, clock: FakeClock
) -> None:
    queued = runtime.deployer.deploy(
        model="iris",
        alias="champion",  # v2 in the registry now
        actor=ADMIN,
        command="/deploy iris @champion",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.operation
    assert runtime.repos.operations.claim("a-bot-that-died", lease_s=0.1) is not None
    # it resolved @champion when it pointed at v1, then died; the alias moved since
    runtime.repos.operations.record(queued.operation, step="build", remote={"resolved": 1})
    seen = taken_over(runtime, clock, after=0.2)

    assert "resolving iris v1 in the registry" in seen.text
    endpoint = runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 1


class LockWatcher(Recorder):
    """Notes whether the endpoint was still locked when the final word arrived."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self.locked_at_end: bool | None = None

    def report(self, event: Event) -> None:
        super().report(event)
        if event.kind in (EventKind.SUCCEEDED, EventKind.FAILED):
            self.locked_at_end = self.runtime.repos.locks.get("dev", "iris") is not None


@pytest.mark.parametrize("line", ["/deploy iris v1", "/deploy crasher v1"])
def test_the_endpoint_is_free_when_the_final_word_arrives(runtime: Runtime, line: str) -> None:
    watcher = LockWatcher(runtime)
    run(runtime, line, watcher)
    assert watcher.locked_at_end is False  # whoever reads it may /scale at once


def test_a_taken_over_operation_never_undoes_a_newer_rollout(
    runtime: Runtime, clock: FakeClock
) -> None:
    op_id = abandoned(runtime)  # iris v1, asked for first
    assert isinstance(run(runtime, "/unlock iris"), Notice)
    assert run(runtime, "/deploy iris v2").ok  # someone else's, while it waited
    seen = taken_over(runtime, clock, after=0.2)

    assert "not resumed: while it waited, iris in dev changed to iris v2" in seen.text
    endpoint = runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 2
    op = runtime.repos.operations.get(op_id)
    assert op is not None and op.state == "failed"


class Usurper(Recorder):
    """At the start step, another bot process takes the operation over (as if this one had
    stalled past its lease)."""

    def __init__(self, runtime: Runtime, clock: FakeClock) -> None:
        super().__init__()
        self.runtime = runtime
        self.clock = clock

    def report(self, event: Event) -> None:
        super().report(event)
        if event.kind is EventKind.STEP and event.step == "start":
            self.clock.advance(self.runtime.settings.lease_s + 1)  # its lease lapses
            taken = self.runtime.repos.operations.claim("bot-b", lease_s=60)
            assert taken is not None and taken.id == event.operation


def test_a_run_whose_operation_was_taken_over_stops_and_says_nothing_more(
    runtime: Runtime, clock: FakeClock
) -> None:
    watcher = Usurper(runtime, clock)
    outcome = run(runtime, "/deploy iris v1", watcher)

    assert isinstance(outcome, Outcome) and not outcome.ok
    assert "another bot process took this operation over" in outcome.text
    kinds = [e.kind for e in watcher.events]
    assert EventKind.SUCCEEDED not in kinds and EventKind.FAILED not in kinds
    op = runtime.repos.operations.get(outcome.operation or "")
    assert op is not None and (op.state, op.owner, op.attempts) == ("running", "bot-b", 2)
    assert runtime.repos.endpoints.get("dev", "iris") is None  # it never switched traffic
    assert runtime.repos.locks.get("dev", "iris") is not None  # the new holder's to release
    assert runtime.repos.audit.entries(endpoint="iris") == []  # the new holder audits it
