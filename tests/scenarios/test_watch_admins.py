"""The watch never undoes an admin: it judges only the answers of the deployment it watches,
from its switch on, so the errors of the version an admin replaced never count against the
version they put in; and it never goes back to the version an admin's rollback left. Real
model servers answer real requests (iris v3 answers 500 to measurements over 100 cm)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.oncall.alerts import LogAlerts
from core.oncall.watching import CHECK_S, Watcher
from core.runtime import Runtime
from core.store.models import WatchState
from tests.clock import FakeClock
from tests.scenarios.test_deploy_scale_status import run
from tests.scenarios.watch_support import IRIS, fragile_settings, kill_serving, send

FAILING, GOOD = 500.0, 5.1  # what v3 answers with a server error, and what it answers well


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fragile_settings(tmp_path)


def serving(runtime: Runtime) -> int:
    endpoint = runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None
    return endpoint.version


def auto_rollbacks(runtime: Runtime) -> list[str]:
    return [e.outcome for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]


def rounds(watcher: Watcher, clock: FakeClock, n: int, seconds: float = CHECK_S) -> None:
    for _ in range(n):
        clock.advance(seconds)
        watcher.tick()
    assert watcher.settle(120)


def test_the_version_an_admin_rolled_back_to_is_not_charged_with_the_errors_it_replaced(
    runtime: Runtime, clock: FakeClock
) -> None:
    assert run(runtime, "/deploy iris v2").ok
    failing = run(runtime, "/deploy iris v3")
    assert failing.ok
    told: list[str] = []
    watcher = runtime.watcher(alerts=LogAlerts(say=told.append), runner=runtime.runner)
    watcher.tick()  # v3's watch
    assert set(send(failing.url, 15, FAILING)) == {500}  # too few yet for its watch to judge

    assert run(runtime, "/rollback iris").ok  # an admin fixes it first
    assert serving(runtime) == 2
    watcher.tick()  # v2's watch, from the rollback on
    assert set(send(failing.url, 25, GOOD)) == {200}
    rounds(watcher, clock, 2)

    assert serving(runtime) == 2
    assert told == []
    assert auto_rollbacks(runtime) == []
    rounds(watcher, clock, 1, seconds=300)  # v2's window ends clean
    assert told == ["iris v2 served healthy through its 5 min watch: nothing to roll back."]
    v2, v3 = runtime.repos.watches.of("dev", "iris")[:2]
    assert (v2.version, v2.state) == (2, WatchState.CLEAN)
    assert (v3.version, v3.state) == (3, WatchState.SUPERSEDED)
    assert "rollback" in v3.detail  # what ended it: the admin's rollback


def test_a_good_version_an_admin_deploys_is_not_rolled_back_for_the_errors_of_the_one_before(
    runtime: Runtime, clock: FakeClock
) -> None:
    flaky = run(runtime, "/deploy iris v3")
    assert flaky.ok
    told: list[str] = []
    watcher = runtime.watcher(alerts=LogAlerts(say=told.append), runner=runtime.runner)
    watcher.tick()
    rounds(watcher, clock, 1, seconds=301)  # its watch ended before the traffic came
    assert runtime.repos.watches.watching() == []
    told.clear()
    for _ in range(10):  # one in four answered with a server error, unwatched
        assert send(flaky.url, 3, GOOD) + send(flaky.url, 1, FAILING) == [200, 200, 200, 500]

    assert run(runtime, "/deploy iris v2").ok  # an admin puts in a good version
    watcher.tick()
    assert set(send(flaky.url, 20, GOOD)) == {200}
    rounds(watcher, clock, 2)

    assert serving(runtime) == 2
    assert told == []
    assert auto_rollbacks(runtime) == []
    (watch,) = runtime.repos.watches.watching()
    assert (watch.version, watch.previous) == (2, 3)


def test_a_version_that_fails_after_an_admin_rolled_back_to_it_is_not_rolled_forward(
    runtime: Runtime, clock: FakeClock
) -> None:
    assert run(runtime, "/deploy iris v2").ok
    assert run(runtime, "/deploy iris v3").ok
    assert run(runtime, "/rollback iris").ok  # the admin left v3
    told: list[str] = []
    watcher = runtime.watcher(alerts=LogAlerts(say=told.append), runner=runtime.runner)
    watcher.tick()  # v2's watch
    kill_serving(runtime, 2)
    rounds(watcher, clock, 2)  # down twice in a row: v2 fails its watch

    assert serving(runtime) == 2  # not back to v3, which the admin rolled back from
    assert not runtime.targets["dev"].health(IRIS).up
    (text,) = told
    assert text.startswith(":rotating_light: iris in dev: iris v2 was down at 2 checks in a row")
    assert "It was not rolled back by itself: v3, which served before it, is what " in text
    assert "rolled back from (op-" in text
    assert auto_rollbacks(runtime) == ["refused"]
    assert [op.kind for op in runtime.repos.operations.recent(10)].count("rollback") == 1
    (watch, *_) = runtime.repos.watches.of("dev", "iris")
    assert (watch.version, watch.state) == (2, WatchState.FAILED)
