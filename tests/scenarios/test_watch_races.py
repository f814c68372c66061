"""The watch and an admin acting at once: what an admin changed while the watch was deciding
is never rolled back by the watch."""

from __future__ import annotations

from core.oncall.alerts import LogAlerts
from core.runtime import Runtime
from core.store.models import WatchState
from tests.scenarios.test_deploy_scale_status import run
from tests.scenarios.watch_support import IRIS


def test_an_endpoint_an_admin_stopped_while_the_watch_decided_stays_stopped(
    runtime: Runtime,
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    assert run(runtime, "/deploy iris v2").ok
    told: list[str] = []
    watcher = runtime.watcher(alerts=LogAlerts(say=told.append), runner=runtime.runner)
    watcher.tick()  # takes the watch of v2, first check
    (watch,) = runtime.repos.watches.watching()
    seen = runtime.repos.endpoints.get("dev", "iris")  # what the watch's check saw
    assert seen is not None and seen.version == 2

    assert run(runtime, "/stop iris in dev").ok  # an admin stops it meanwhile
    # the check found v2 failing: it rolls back only what it saw, under the endpoint's lock
    watcher._failed(watch, "was down at 2 checks in a row")
    assert watcher.settle(120)

    assert runtime.repos.endpoints.get("dev", "iris") is None
    assert not runtime.targets["dev"].health(IRIS).up
    assert [op.kind for op in runtime.repos.operations.recent(10)].count("rollback") == 0
    assert runtime.repos.locks.get("dev", "iris") is None
    after = runtime.repos.watches.get(watch.id)
    assert after is not None and after.state == WatchState.SUPERSEDED
    assert told == []
