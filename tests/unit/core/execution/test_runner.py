"""The Runner on a real SQLite store and the real MLflow registry, driving a recording target:
it runs each operation once, under its lease; a cancel stops it at the next step boundary;
the heartbeat's alarm is raised only for an operation really taken over."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.admission.roles import Actor
from core.config import Environment, Settings
from core.events import EventKind, Outcome
from core.execution.leases import Leases
from core.registry.mlflow import Registry
from core.resources import Resources
from core.runtime import Core, wire
from core.store.models import AuditRow
from core.store.repos import Repositories
from tests.conftest import Recorder
from tests.recording import RecordingTarget

ADMIN = Actor(id="console", name="alice")


@pytest.fixture
def target() -> RecordingTarget:
    return RecordingTarget()


@pytest.fixture
def core(tmp_path: Path, registry_uri: str, target: RecordingTarget) -> Iterator[Core]:
    settings = Settings(
        state_dir=tmp_path,
        mlflow_tracking_uri=registry_uri,
        environments=[Environment(name="dev", default=Resources(cpu=1, memory_mb=512))],
    )
    wired = wire(
        settings=settings,
        repos=Repositories.open(f"sqlite:///{tmp_path / 'state.db'}"),
        registry=Registry(tracking_uri=registry_uri),
        targets={"dev": target},  # type: ignore[dict-item]
    )
    yield wired
    wired.close()


def queue(core: Core) -> str:
    queued = core.deployer.deploy(
        model="iris",
        version=1,
        actor=ADMIN,
        command="/deploy iris v1",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.operation
    return queued.operation


def test_a_queued_operation_is_run_once_under_this_process_lease(
    core: Core, target: RecordingTarget
) -> None:
    op_id = queue(core)
    seen = Recorder()
    runner = core.worker(reporter_for=lambda _op: seen)
    assert runner.run_pending() == 1
    assert runner.run_pending() == 0

    assert target.calls == ["build", "start", "smoke_test", "switch"]
    op = core.repos.operations.get(op_id)
    assert op is not None and (op.state, op.owner, op.attempts) == ("succeeded", runner.owner, 1)
    assert core.leases.held == set()  # nothing left for the heartbeat
    assert core.repos.locks.get("dev", "iris") is None
    assert seen.events[-1].kind is EventKind.SUCCEEDED


def test_an_operation_cancelled_before_it_is_taken_starts_nothing(
    core: Core, target: RecordingTarget
) -> None:
    op_id = queue(core)
    core.repos.operations.cancel(op_id, by="bob")  # as /cancel does, from any process
    seen = Recorder()
    assert core.worker(reporter_for=lambda _op: seen).run_pending() == 1

    assert target.calls == []
    assert seen.events[-1].kind is EventKind.FAILED
    assert seen.events[-1].message == "cancelled by bob"
    op = core.repos.operations.get(op_id)
    assert op is not None and (op.state, op.error) == ("failed", "cancelled by bob")
    assert core.repos.locks.get("dev", "iris") is None


def test_a_cancel_during_the_check_discards_the_new_deployment_and_never_switches(
    core: Core, target: RecordingTarget
) -> None:
    op_id = queue(core)
    target.during["smoke_test"] = lambda: core.repos.operations.cancel(op_id, by="bob")
    seen = Recorder()
    assert core.worker(reporter_for=lambda _op: seen).run_pending() == 1

    op = core.repos.operations.get(op_id)
    assert op is not None and op.state == "failed"
    deployment = op.remote["deployment"]
    assert target.calls == ["build", "start", "smoke_test", f"discard {deployment}"]
    assert seen.events[-1].data["serving"] == (
        "nothing was serving iris in dev before, and nothing serves now"
    )
    assert core.repos.endpoints.get("dev", "iris") is None
    assert core.repos.locks.get("dev", "iris") is None


def test_the_lease_alarm_is_raised_when_another_process_took_the_operation_over(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    op_id = queue(core)
    mine = Leases(core.repos.operations, lease_s=30, owner="bot-a")
    assert (
        core.repos.operations.claim("bot-a", lease_s=-1) is not None
    )  # bot-a stalled: lease lapsed
    assert core.repos.operations.claim("bot-b", lease_s=30) is not None  # and bot-b took it over
    caplog.set_level(logging.ERROR, logger="chatops.core")
    with mine.hold(op_id):
        mine.beat()
        assert mine.lost(op_id)
    mine.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"the lease of {op_id} lapsed: another bot process may have taken it"
    ]


def test_no_lease_alarm_for_an_operation_this_process_ended(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    op_id = queue(core)
    mine = Leases(core.repos.operations, lease_s=30, owner="bot-a")
    assert core.repos.operations.claim("bot-a", lease_s=30) is not None
    caplog.set_level(logging.ERROR, logger="chatops.core")
    with mine.hold(op_id):
        mine.ended(op_id)
        core.repos.operations.finish(op_id, "succeeded")  # type: ignore[arg-type]
        mine.beat()  # the final word is still being sent
        assert not mine.lost(op_id)
    mine.close()
    assert caplog.records == []


def test_a_process_that_hands_over_leaves_the_operation_at_the_next_step_for_another_to_finish(
    core: Core, target: RecordingTarget, tmp_path: Path, registry_uri: str
) -> None:
    op_id = queue(core)
    target.during["start"] = core.leases.hand_over  # the process is told to stop mid-start
    seen = Recorder()
    assert core.worker(reporter_for=lambda _op: seen).run_pending() == 1

    # the step under way ended; the next one was recorded and not begun
    assert target.calls == ["build", "start"]
    op = core.repos.operations.get(op_id)
    assert op is not None and (op.state, op.step, op.attempts) == ("running", "check", 1)
    assert core.repos.locks.get("dev", "iris") is not None  # kept for whoever goes on
    assert not [e for e in seen.events if e.kind in (EventKind.FAILED, EventKind.SUCCEEDED)]
    assert core.repos.audit.entries(limit=5) == []  # audited once, by whoever ends it

    # its lease ended at once: another process takes it now, not a lease later
    other = wire(
        settings=core.settings,
        repos=core.repos,
        registry=core.registry,
        targets={"dev": target},  # type: ignore[dict-item]
    )
    taken = other.worker().take()
    assert taken is not None and (taken.id, taken.attempts) == (op_id, 2)
    other.runner.run(taken, Recorder())
    op = core.repos.operations.get(op_id)
    assert op is not None and op.state == "succeeded"
    assert target.calls[-2:] == ["smoke_test", "switch"]
    assert core.repos.locks.get("dev", "iris") is None
    other.leases.close()


def test_an_end_that_cannot_be_recorded_is_taken_over_and_ended_not_failed(
    core: Core, target: RecordingTarget
) -> None:
    """The transaction that ends a deploy fails (SQLite busy past its timeout, a dropped
    PostgreSQL connection): the deploy is not called failed, its lock is not lost; the
    process that takes it over ends it, once."""
    op_id = queue(core)
    refused: list[bool] = []

    def busy(session: Session) -> None:
        ending = [o for o in session.new if isinstance(o, AuditRow) and o.outcome == "succeeded"]
        if ending and not refused:
            refused.append(True)
            raise OperationalError("COMMIT", {}, Exception("database is locked"))

    event.listen(core.repos.db._sessions, "before_commit", busy)
    seen = Recorder()
    runner = core.worker(reporter_for=lambda _op: seen)
    runner.run_pending()
    op = core.repos.operations.get(op_id)
    assert refused and op is not None and op.state == "running"
    assert core.repos.locks.get("dev", "iris") is not None  # still the operation's
    assert not [e for e in seen.events if e.kind in (EventKind.SUCCEEDED, EventKind.FAILED)]

    core.repos.operations.let_lapse(runner.owner)  # its lease lapses
    runner.run_pending()
    op = core.repos.operations.get(op_id)
    assert op is not None and (op.state, op.attempts) == ("succeeded", 2)
    assert core.repos.locks.get("dev", "iris") is None
    rows = [e for e in core.repos.audit.entries() if e.operation_id == op_id]
    assert [r.outcome for r in rows] == ["succeeded"]
    assert [e.kind for e in seen.events].count(EventKind.SUCCEEDED) == 1
