"""The Locker on a real SQLite store: what /unlock may lift, and what it must leave."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.events import Notice, Refusal
from core.locker import Locker
from core.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'state.db'}")


@pytest.fixture
def locker(store: Store) -> Locker:
    return Locker(store, ttl_s=3600)


def running_deploy(store: Store, locker: Locker, *, lease_s: float) -> str:
    """A deploy admitted by bot `bot-a`, whose lease lasts `lease_s` (negative: lapsed)."""
    attempt = locker.try_lock("dev", "iris", holder="alice", reason="alice is deploying iris v2")
    assert attempt.acquired
    op = store.enqueue(
        kind="deploy",
        env="dev",
        endpoint="iris",
        requested_by="alice",
        command="/deploy iris v2",
        lock_token=attempt.token,
        owner="bot-a",
        lease_s=lease_s,
    )
    store.record(op.id, step="build")
    return op.id


def test_the_lock_of_an_operation_a_live_bot_runs_is_not_lifted(
    store: Store, locker: Locker
) -> None:
    op_id = running_deploy(store, locker, lease_s=60)
    refused = locker.unlock("dev", "iris")
    assert isinstance(refused, Refusal)
    assert f"for: alice is deploying iris v2 ({op_id}, at build)" in refused.text
    assert "(at the latest until " in refused.text
    assert "`/cancel iris in dev`" in refused.text
    assert store.lock("dev", "iris") is not None


def test_the_lock_of_an_operation_whose_bot_died_is_lifted(store: Store, locker: Locker) -> None:
    running_deploy(store, locker, lease_s=-1)
    lifted = locker.unlock("dev", "iris")
    assert isinstance(lifted, Notice)
    assert (
        lifted.text
        == "iris in dev is unlocked (it was held by alice for: alice is deploying iris v2)."
    )
    assert store.lock("dev", "iris") is None


def test_the_lock_an_ended_operation_left_is_lifted(store: Store, locker: Locker) -> None:
    op_id = running_deploy(store, locker, lease_s=60)
    store.finish(op_id, "succeeded")  # type: ignore[arg-type]
    assert isinstance(locker.unlock("dev", "iris"), Notice)


def test_a_freeze_is_lifted_and_told_to_whoever_tries_meanwhile(locker: Locker) -> None:
    assert isinstance(locker.freeze("dev", "iris", holder="bob", reason="audit"), Notice)
    attempt = locker.try_lock("dev", "iris", holder="alice", reason="deploy")
    refused = locker.refusal("dev", "iris", attempt)
    assert refused.text.startswith("iris in dev is frozen by bob since ")
    assert refused.text.endswith(": audit. An admin can lift it with `/unlock iris in dev`.")
    assert isinstance(locker.unlock("dev", "iris"), Notice)
    assert isinstance(locker.unlock("dev", "iris"), Refusal)  # nothing left to lift


def test_a_held_endpoint_is_refused_with_who_and_the_cancel_to_type(locker: Locker) -> None:
    assert locker.try_lock("dev", "iris", holder="alice", reason="deploying v2").acquired
    attempt = locker.try_lock("dev", "iris", holder="bob", reason="scaling")
    assert not attempt.acquired
    text = locker.refusal("dev", "iris", attempt).text
    assert text.startswith("iris in dev is locked by alice since ")
    assert text.endswith(
        "for: deploying v2. It is released when that operation ends; an admin can stop the "
        "operation with `/cancel iris in dev`."
    )
