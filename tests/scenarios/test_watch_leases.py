"""A watch outlives the bot process that held it: another process sharing the state database
takes it over once its lease lapses, and rolls back by itself what fails (told on its front,
here the console's printed lines)."""

from __future__ import annotations

from core.config import Settings
from core.oncall.alerts import LogAlerts
from core.oncall.watching import CHECK_S
from core.runtime import Runtime
from core.store.models import WatchState
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.scenarios.test_deploy_scale_status import run
from tests.scenarios.watch_support import IRIS, kill_serving


def test_a_watch_whose_process_died_is_taken_over_and_still_rolls_back(
    runtime: Runtime, settings: Settings, zygote: Zygote, clock: FakeClock
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    assert run(runtime, "/deploy iris v2").ok
    first_told: list[str] = []
    first = runtime.watcher(alerts=LogAlerts(say=first_told.append), runner=runtime.runner)
    first.tick()
    (watch,) = runtime.repos.watches.watching()
    assert (watch.owner, watch.version, watch.previous) == (runtime.leases.owner, 2, 1)

    other = Runtime(settings, zygote=zygote, clock=clock)  # another bot process
    try:
        printed: list[str] = []
        second = other.watcher(alerts=LogAlerts(say=printed.append), runner=other.runner)
        second.tick()
        assert runtime.repos.watches.get(watch.id).owner == runtime.leases.owner  # type: ignore[union-attr]

        kill_serving(runtime, 2)  # and the first process is gone: it checks no more
        clock.advance(settings.lease_s + 1)
        second.tick()
        assert runtime.repos.watches.get(watch.id).owner == other.leases.owner  # type: ignore[union-attr]
        clock.advance(CHECK_S)
        second.tick()
        assert second.settle(120)
    finally:
        other.close()

    serving = runtime.repos.endpoints.get("dev", "iris")
    assert serving is not None and serving.version == 1
    assert runtime.targets["dev"].health(IRIS).up
    assert printed[0].startswith(":rotating_light: iris in dev: iris v2 was down at 2 checks")
    assert "Rolling back to v1 by itself (op-" in printed[0]
    assert printed[1].startswith("iris in dev is rolled back: iris v1 is live at http://")
    assert first_told == []
    assert runtime.repos.watches.get(watch.id).state == WatchState.ROLLED_BACK  # type: ignore[union-attr]
    (row,) = [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
    assert (row.actor_name, row.outcome) == ("chatops", "succeeded")
    op = runtime.repos.operations.get(row.operation_id)
    assert op is not None and (op.kind, op.owner) == ("rollback", other.leases.owner)
