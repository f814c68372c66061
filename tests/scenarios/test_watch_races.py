"""The watch and an admin acting at once: what an admin changed while the watch was deciding
is never rolled back by the watch."""

from __future__ import annotations

from core.alerts import LogAlerts
from core.config import Settings
from core.models import WatchState
from core.runtime import Runtime
from core.targets.base import EndpointRef, Health
from core.watching import CHECK_S
from tests.clock import FakeClock
from tests.scenarios.test_deploy_scale_status import run
from tests.scenarios.watch_support import IRIS, kill_serving


def test_an_endpoint_an_admin_stopped_while_the_watch_checked_it_stays_stopped(
    runtime: Runtime, settings: Settings, clock: FakeClock
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    assert run(runtime, "/deploy iris v2").ok
    told: list[str] = []
    watcher = runtime.watcher(alerts=LogAlerts(say=told.append), runner=runtime.runner)
    watcher.tick()
    kill_serving(runtime, 2)
    clock.advance(CHECK_S)
    watcher.tick()  # down once
    (watch,) = runtime.repos.watches.watching()
    assert watch.downs == 1

    target = runtime.targets["dev"]
    real_health = target.health
    stopped: list[bool] = []

    def health_while_an_admin_stops_it(ref: EndpointRef) -> Health:
        if not stopped:  # the check takes its time; meanwhile an admin stops the endpoint
            stopped.append(True)
            assert run(runtime, "/stop iris in dev").ok
        return real_health(ref)

    target.health = health_while_an_admin_stops_it  # type: ignore[method-assign]
    clock.advance(CHECK_S)
    try:
        watcher.tick()
        assert watcher.settle(120)
    finally:
        target.health = real_health  # type: ignore[method-assign]

    assert runtime.repos.endpoints.get("dev", "iris") is None
    assert not target.health(IRIS).up
    assert [op.kind for op in runtime.repos.operations.recent(10) if op.kind == "rollback"] == []
    assert runtime.repos.watches.get(watch.id).state == WatchState.SUPERSEDED  # type: ignore[union-attr]
    assert told == []
