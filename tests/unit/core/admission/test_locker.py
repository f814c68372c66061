"""The Locker on a real SQLite store: what /unlock may lift, and what it must leave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.admission.locker import Locker
from core.events import Notice, Refusal
from core.marks import plain
from core.store.repos import Repositories
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repos(tmp_path: Path, clock: FakeClock) -> Iterator[Repositories]:
    opened = Repositories.open(f"sqlite:///{tmp_path / 'state.db'}", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def locker(repos: Repositories) -> Locker:
    return Locker(repos, ttl_s=3600)


def running_deploy(repos: Repositories, locker: Locker, *, lease_s: float) -> str:
    """A deploy admitted by bot `bot-a`, whose lease lasts `lease_s`."""
    attempt = locker.try_lock("dev", "iris", holder="alice", reason="alice is deploying iris v2")
    assert attempt.acquired
    op = repos.operations.enqueue(
        kind="deploy",
        env="dev",
        endpoint="iris",
        requested_by="alice",
        command="/deploy iris v2",
        lock_token=attempt.token,
        owner="bot-a",
        lease_s=lease_s,
    )
    repos.operations.record(op.id, step="build")
    return op.id


def test_the_lock_of_an_operation_a_live_bot_runs_is_not_lifted(
    repos: Repositories, locker: Locker
) -> None:
    op_id = running_deploy(repos, locker, lease_s=60)
    refused = locker.unlock("dev", "iris")
    assert isinstance(refused, Refusal)
    assert f"for: alice is deploying iris v2 ({op_id}, at build)" in plain(refused.text)
    assert "(at the latest until " in plain(refused.text)
    assert "`/cancel iris in dev`" in plain(refused.text)
    assert repos.locks.get("dev", "iris") is not None


def test_the_lock_of_an_operation_whose_bot_died_is_lifted(
    repos: Repositories, locker: Locker, clock: FakeClock
) -> None:
    running_deploy(repos, locker, lease_s=60)
    clock.advance(61)  # bot-a stopped renewing: its lease lapsed
    lifted = locker.unlock("dev", "iris")
    assert isinstance(lifted, Notice)
    assert (
        plain(lifted.text)
        == "iris in dev is unlocked (it was held by alice for: alice is deploying iris v2)."
    )
    assert repos.locks.get("dev", "iris") is None


def test_the_lock_an_ended_operation_left_is_lifted(repos: Repositories, locker: Locker) -> None:
    op_id = running_deploy(repos, locker, lease_s=60)
    repos.operations.finish(op_id, "succeeded")  # type: ignore[arg-type]
    assert isinstance(locker.unlock("dev", "iris"), Notice)


def test_a_freeze_is_lifted_and_told_to_whoever_tries_meanwhile(locker: Locker) -> None:
    assert isinstance(locker.freeze("dev", "iris", holder="bob", reason="audit"), Notice)
    attempt = locker.try_lock("dev", "iris", holder="alice", reason="deploy")
    refused = locker.refusal("dev", "iris", attempt)
    assert plain(refused.text).startswith("iris in dev is frozen by bob since ")
    assert plain(refused.text).endswith(": audit. An admin can lift it with `/unlock iris in dev`.")
    assert isinstance(locker.unlock("dev", "iris"), Notice)
    assert isinstance(locker.unlock("dev", "iris"), Refusal)  # nothing left to lift


def test_a_held_endpoint_is_refused_with_who_and_the_cancel_to_type(locker: Locker) -> None:
    assert locker.try_lock("dev", "iris", holder="alice", reason="deploying v2").acquired
    attempt = locker.try_lock("dev", "iris", holder="bob", reason="scaling")
    assert not attempt.acquired
    text = plain(locker.refusal("dev", "iris", attempt).text)
    assert text.startswith("iris in dev is locked by alice since ")
    assert text.endswith(
        "for: deploying v2. It is released when that operation ends; an admin can stop the "
        "operation with `/cancel iris in dev`."
    )
