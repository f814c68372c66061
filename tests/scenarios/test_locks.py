"""One rollout per endpoint at a time; freezes; locks end with their operation or their TTL."""

from __future__ import annotations

import sqlite3
import threading
import time

from core.admission.intents import Intent
from core.admission.roles import Action, Actor
from core.events import Notice, Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.scenarios.test_deploy_scale_status import ADMIN, run


def test_a_second_rollout_is_told_who_holds_the_endpoint(
    runtime: Runtime, registry_uri: str
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    hold = sqlite3.connect(registry_uri.removeprefix("sqlite:///"), timeout=5)
    hold.execute("BEGIN EXCLUSIVE")  # the registry stalls: the first rollout waits mid-way
    first: list[object] = []
    worker = threading.Thread(target=lambda: first.append(run(runtime, "/deploy iris v2")))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while runtime.repos.locks.get("dev", "iris") is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = run(runtime, "/scale iris 2 replicas")
    finally:
        time.sleep(0.2)
        hold.rollback()
        hold.close()
        worker.join()
    assert isinstance(second, Refusal)
    assert plain(second.text).startswith("iris in dev is locked by alice since ")
    assert "for: alice is deploying iris v2 to dev" in plain(second.text)
    assert "an admin can stop the operation with `/cancel iris in dev`" in plain(second.text)
    assert isinstance(first[0], Outcome) and first[0].ok
    assert runtime.repos.locks.get("dev", "iris") is None  # released when the rollout ended
    assert run(runtime, "/scale iris 2 replicas").ok


def test_a_failed_rollout_releases_its_lock(runtime: Runtime) -> None:
    failed = run(runtime, "/deploy crasher v1")
    assert isinstance(failed, Outcome) and not failed.ok
    assert runtime.repos.locks.get("dev", "crasher") is None


def test_a_freeze_holds_until_an_admin_unlocks(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    frozen = run(runtime, "/lock iris quarter-end release freeze")
    assert isinstance(frozen, Notice)
    refused = run(runtime, "/deploy iris v2")
    assert isinstance(refused, Refusal)
    assert "iris in dev is frozen by alice since" in plain(refused.text)
    assert "quarter-end release freeze" in plain(refused.text)

    from commands.base import Context
    from commands.registry import execute

    viewer = Actor(id="U0VIEW", name="vic")
    denied = execute(
        "/unlock iris",
        Context(core=runtime, actor=viewer, reporter=Recorder(), text="/unlock iris"),
    )
    assert isinstance(denied, Refusal) and plain(denied.text) == "only admins of dev can unlock"
    assert runtime.repos.locks.get("dev", "iris") is not None

    assert isinstance(run(runtime, "/unlock iris"), Notice)
    assert run(runtime, "/deploy iris v2").ok


def test_a_lock_left_by_a_dead_bot_lapses_after_its_ttl(runtime: Runtime, clock: FakeClock) -> None:
    stale = runtime.repos.locks.try_lock(
        "dev", "iris", holder="a bot that died", reason="deploy", ttl_s=600
    )
    assert stale.acquired
    clock.advance(599)
    held = run(runtime, "/deploy iris v1")
    assert isinstance(held, Refusal) and "is locked by a bot that died" in plain(held.text)
    clock.advance(2)
    assert run(runtime, "/deploy iris v1").ok
    assert runtime.repos.locks.get("dev", "iris") is None


def test_what_was_asked_for_an_endpoint_that_changed_before_the_lock_does_nothing(
    runtime: Runtime,
) -> None:
    """A rollback worked out while v2 served, locking only after another rollback ended,
    would undo that one: it is refused under the lock, and the lock is let go."""
    from tests.conftest import Recorder

    assert run(runtime, "/deploy iris v1").ok
    assert run(runtime, "/deploy iris v2").ok
    environment = runtime.settings.environment("dev")
    assert environment is not None
    stale = runtime.deployer.intents.rollback(environment, endpoint="iris", actor=ADMIN)
    assert isinstance(stale, Intent) and stale.version == 1
    assert run(runtime, "/rollback iris").ok  # someone else's rollback ends first
    operations = len(runtime.repos.operations.recent(50))

    late = runtime.deployer._operation(
        stale,
        action=Action.ROLLBACK,
        environment=environment,
        endpoint="iris",
        actor=ADMIN,
        command="/rollback iris",
        reporter=Recorder(),
    )

    assert isinstance(late, Refusal)
    assert plain(late.text) == (
        "iris in dev changed while this was being asked for (it serves iris v1 now): nothing "
        "was done; ask again if it is still wanted"
    )
    row = runtime.repos.endpoints.get("dev", "iris")
    assert row is not None and row.version == 1
    assert runtime.repos.locks.get("dev", "iris") is None
    assert len(runtime.repos.operations.recent(50)) == operations
