"""One rollout per endpoint at a time; freezes; locks end with their operation or their TTL."""

from __future__ import annotations

import sqlite3
import threading
import time

from core.events import Notice, Outcome, Refusal
from core.roles import Actor
from core.runtime import Runtime
from tests.clock import FakeClock
from tests.scenarios.test_deploy_scale_status import run


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
    assert second.text.startswith("iris in dev is locked by alice since ")
    assert "for: alice is deploying iris v2 to dev" in second.text
    assert "an admin can stop the operation with `/cancel iris in dev`" in second.text
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
    assert "iris in dev is frozen by alice since" in refused.text
    assert "quarter-end release freeze" in refused.text

    from commands.base import Context
    from commands.registry import execute
    from tests.conftest import Recorder

    viewer = Actor(id="U0VIEW", name="vic")
    denied = execute(
        "/unlock iris",
        Context(core=runtime, actor=viewer, reporter=Recorder(), text="/unlock iris"),
    )
    assert isinstance(denied, Refusal) and denied.text == "only admins of dev can unlock"
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
    assert isinstance(held, Refusal) and "is locked by a bot that died" in held.text
    clock.advance(2)
    assert run(runtime, "/deploy iris v1").ok
    assert runtime.repos.locks.get("dev", "iris") is None
