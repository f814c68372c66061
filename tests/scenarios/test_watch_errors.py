"""The error-rate trigger of the watch window: a version that answers real requests with
server errors (5xx), more often than the environment's `max_error_rate` over at least
`watch_min_requests` of its answers, is rolled back by itself; fewer answers are not judged.
Counted by the local target from the requests the endpoint really served."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.oncall.alerts import LogAlerts
from core.oncall.watching import CHECK_S
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.scenarios.test_deploy_scale_status import run
from tests.scenarios.watch_support import fragile_settings, send


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """iris v1, v2 (the demo) and v3, which fails with a 500 on measurements over 100 cm."""
    return fragile_settings(tmp_path)


def test_a_version_answering_with_server_errors_is_rolled_back_by_itself(
    settings: Settings, zygote: Zygote, clock: FakeClock
) -> None:
    runtime = Runtime(settings, zygote=zygote, clock=clock)
    try:
        assert run(runtime, "/deploy iris v2").ok
        deployed = run(runtime, "/deploy iris v3")
        assert deployed.ok
        printed: list[str] = []
        watcher = runtime.watcher(alerts=LogAlerts(say=printed.append), runner=runtime.runner)
        watcher.tick()

        assert set(send(deployed.url, 5, 500.0)) == {500}  # too few answers to judge
        clock.advance(CHECK_S)
        watcher.tick()
        assert runtime.repos.endpoints.get("dev", "iris").version == 3  # type: ignore[union-attr]
        assert printed == []

        assert set(send(deployed.url, 30, 500.0)) == {500}
        clock.advance(CHECK_S)
        watcher.tick()
        assert watcher.settle(120)
        assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]
        assert printed[0].startswith(
            ":rotating_light: iris in dev: iris v3 answered 35 of 35 requests with a server "
            "error (100.0%, more than max_error_rate 5.0%)"
        )
        assert printed[1].startswith("iris in dev is rolled back: iris v2 is live at http://")
        assert send(deployed.url, 1, 5.1) == [200]
        (row,) = [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
        assert row.outcome == "succeeded"
    finally:
        runtime.shut_down_endpoints()
        runtime.close()
