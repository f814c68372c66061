"""The local target itself: what serves an endpoint, and that a stop or a failed start leaves
nothing behind, with real model-server processes on loopback."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from core.registry.mlflow import Registry
from core.targets.base import EndpointRef, quiet_step
from core.targets.local.control import call
from core.targets.local.target import LocalTarget, Zygote
from tests.local.conftest import serve
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS

BODY = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
IRIS = EndpointRef("dev", "iris")


def models_answering(url: str, requests: int = 60) -> list[str]:
    return [httpx.post(url, json=BODY, timeout=10).headers["x-model"] for _ in range(requests)]


def test_the_last_switch_takes_all_traffic_and_stop_leaves_nothing_listening(
    local: LocalTarget, registry: Registry
) -> None:
    # two deployments of one endpoint, each switched in by a rollout that knew nothing of
    # the other (as after a forced unlock)
    first = serve(local, registry, IRIS, 1, "dep-first")
    second = serve(local, registry, IRIS, 2, "dep-second")
    local.switch(IRIS, first, quiet_step())
    url = local.switch(IRIS, second, quiet_step())

    assert models_answering(url) == ["iris/2"] * 60

    local.stop(IRIS, quiet_step())
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json=BODY, timeout=5)
    assert local.endpoints() == []
    assert not local.health(IRIS).up


def test_a_first_deployment_discarded_leaves_its_port_refusing(
    local: LocalTarget, registry: Registry
) -> None:
    deployment = serve(local, registry, IRIS, 1, "dep-never-served")
    url = local.url(IRIS)
    with pytest.raises(httpx.ConnectError):  # never switched in: refused, not left hanging
        httpx.post(url, json=BODY, timeout=5)

    local.discard(IRIS, deployment, quiet_step())

    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json=BODY, timeout=5)
    assert local.endpoints() == []


def test_a_discarded_deployment_leaves_the_serving_one_alone(
    local: LocalTarget, registry: Registry
) -> None:
    live = serve(local, registry, IRIS, 1, "dep-live")
    url = local.switch(IRIS, live, quiet_step())
    failed_check = serve(local, registry, IRIS, 2, "dep-failed-check")

    local.discard(IRIS, failed_check, quiet_step())

    assert models_answering(url, 20) == ["iris/1"] * 20


def test_hosts_started_before_the_per_environment_layout_are_adopted_by_their_own_endpoint(
    local: LocalTarget, registry: Registry, zygote: Zygote
) -> None:
    # what an older bot left: ports keyed `<env>/<endpoint>` and one control socket path,
    # `run/dev-eu-iris.sock`, for both dev/eu-iris and dev-eu/iris; the host is dev/eu-iris's
    low = local.env.port_range[0]
    run = local.state_dir / "run"
    run.mkdir(parents=True)
    (run / "ports.json").write_text(json.dumps({"dev/eu-iris": low, "dev-eu/iris": low + 1}))
    legacy = str(run / "dev-eu-iris.sock")
    reply = zygote.spawn_host(
        {"endpoint": "eu-iris", "port": low, "control": legacy, "log_dir": str(run / "logs")}
    )
    assert reply["ok"], reply
    mv = registry.resolve("iris", version=1)
    path = registry.download(mv, local.state_dir / "old-artifacts")
    spec = {"deployment": "dep-old", "model": "iris", "version": 1}
    spec |= {"model_path": str(path), "memory_mb": 1024}
    assert call(legacy, {"op": "start", "spec": spec, "workers": 1}, what="eu-iris")
    _wait_until(lambda: _state(legacy, "dep-old") == "ready")
    assert call(legacy, {"op": "activate", "deployment": "dep-old"}, what="eu-iris")
    eu_iris = EndpointRef("dev", "eu-iris")

    # after the upgrade: dev finds and keeps serving its endpoint ...
    assert local.endpoints() == [eu_iris]
    health = local.health(eu_iris)
    assert (health.up, health.model, health.version) == (True, "iris", 1)
    # ... the other environment's endpoint of the same old socket name does not take it
    other = LocalTarget(
        env=local.env.model_copy(update={"name": "dev-eu"}),
        state_dir=local.state_dir,
        zygote=zygote,
    )
    assert other.endpoints() == []
    assert not other.health(EndpointRef("dev-eu", "iris")).up

    # a new deployment replaces the adopted one on the same URL, then stop ends it all
    url = local.switch(eu_iris, serve(local, registry, eu_iris, 2, "dep-new"), quiet_step())
    assert url == f"http://127.0.0.1:{low}/invocations"
    assert models_answering(url, 20) == ["iris/2"] * 20
    local.stop(eu_iris, quiet_step())
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json=BODY, timeout=5)
    assert call(legacy, {"op": "status"}, what="eu-iris") is None


def _state(control: str, deployment: str) -> str:
    status = call(control, {"op": "status"}, what="eu-iris") or {"deployments": []}
    states = {d["deployment"]: d["state"] for d in status["deployments"]}
    return str(states.get(deployment))


def _wait_until(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
