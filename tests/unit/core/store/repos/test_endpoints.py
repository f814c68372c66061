"""The endpoints repository: one row per (environment, name); a rollout's write of it is
fenced by the run's hold, in the same transaction."""

from __future__ import annotations

import pytest

from core.resources import Resources
from core.store.models import Hold, OperationState
from core.store.repos import Repositories
from tests.clock import FakeClock
from tests.unit.core.store.repos.helpers import serving, taken


def test_endpoints_upsert_on_env_and_name(repos: Repositories) -> None:
    endpoints = repos.endpoints
    assert endpoints.save(serving())
    assert endpoints.save(
        serving(version=2, resources=Resources(cpu=0.5, memory_mb=1024), deployment="d-2")
    )
    assert endpoints.save(serving(env="prod", resources=Resources(cpu=1, memory_mb=512, gpus=1)))

    dev = endpoints.get("dev", "iris")
    assert dev is not None
    assert (dev.version, dev.cpu, dev.deployment, dev.gpus) == (2, 0.5, "d-2", 0)
    assert [(e.env, e.name) for e in endpoints.every()] == [("dev", "iris"), ("prod", "iris")]
    assert [e.gpus for e in endpoints.every("prod")] == [1]
    assert endpoints.get("staging", "iris") is None


def test_since_is_the_clocks_time_of_the_last_save(repos: Repositories, clock: FakeClock) -> None:
    repos.endpoints.save(serving())
    first = repos.endpoints.get("dev", "iris")
    clock.advance(3600)
    repos.endpoints.save(serving(version=2))
    second = repos.endpoints.get("dev", "iris")
    assert first is not None and second is not None
    assert (second.since - first.since).total_seconds() == pytest.approx(3600, abs=5)


def test_a_run_saves_its_endpoint_only_while_it_holds_its_operation(
    repos: Repositories, clock: FakeClock
) -> None:
    op_id, mine = taken(repos, "bot-a")
    assert repos.endpoints.save(serving(version=1), op_id=op_id, hold=mine)

    clock.advance(31)  # bot-a stalls past its lease; bot-b takes the operation over
    over = repos.operations.claim("bot-b", lease_s=30)
    assert over is not None and over.id == op_id
    assert repos.endpoints.save(serving(version=2), op_id=op_id, hold=mine) is False
    assert repos.endpoints.delete("dev", "iris", op_id=op_id, hold=mine) is False
    kept = repos.endpoints.get("dev", "iris")
    assert kept is not None and kept.version == 1  # the stale write changed nothing

    assert repos.endpoints.save(serving(version=3), op_id=op_id, hold=Hold.of(over))
    now = repos.endpoints.get("dev", "iris")
    assert now is not None and now.version == 3


def test_a_fenced_save_of_an_unknown_or_ended_operation_changes_nothing(
    repos: Repositories,
) -> None:
    assert repos.endpoints.save(serving(), op_id="op-none", hold=Hold("bot-a", 1)) is False
    op_id, mine = taken(repos, "bot-a")
    assert repos.operations.finish(op_id, OperationState.SUCCEEDED, hold=mine)
    assert repos.endpoints.save(serving(), op_id=op_id, hold=mine) is False
    assert repos.endpoints.every() == []


def test_a_fence_needs_both_the_operation_and_the_hold(repos: Repositories) -> None:
    with pytest.raises(ValueError, match="both the operation and its hold"):
        repos.endpoints.save(serving(), hold=Hold("bot-a", 1))
    assert repos.endpoints.every() == []
