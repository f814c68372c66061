"""Write-back: in an environment that names an alias, every switch moves the alias to the version
that now serves and tags that version `chatops.<env>.serving` (since when, by whom, the
operation, its thread), untagging the one before; a stop takes both off. A registry that
refuses the write leaves what serves as it is, and the operation's final word says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from core.admission.plans import PlanReport
from core.config import Settings
from core.events import Event, EventKind, Outcome
from core.marks import plain
from core.oncall.alerts import LogAlerts
from core.oncall.watching import CHECK_S
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder, make_settings
from tests.mlflow_server import MlflowServer
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS, run
from tests.scenarios.watch_support import fragile_settings, send

TAG = "chatops.prod.serving"
BODY = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry of this module's own (iris v1, v2 @champion): the bot writes to it."""
    root = tmp_path_factory.mktemp("write-back-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    return uri


def with_alias(settings: Settings, alias: str = "prod", *, env: str = "prod") -> Settings:
    """`settings` whose environment `env` names `alias`."""
    envs = [
        e.model_copy(update={"alias": alias}) if e.name == env else e for e in settings.environments
    ]
    return settings.model_copy(update={"environments": envs})


@pytest.fixture
def writing(
    tmp_path: Path, own_registry: str, zygote: Zygote, clock: FakeClock
) -> Iterator[Runtime]:
    rt = Runtime(with_alias(make_settings(tmp_path / "state", own_registry)), zygote=zygote)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


def aliases(client: MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in (client.get_registered_model("iris").aliases or {}).items()}


def tags(client: MlflowClient, version: int) -> dict[str, str]:
    return dict(client.get_model_version("iris", str(version)).tags or {})


def registry_lines(recorder: Recorder) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in recorder.events if e.step == "registry"]


def test_each_switch_moves_the_alias_and_the_tag_and_a_stop_takes_them_off(
    writing: Runtime, own_registry: str
) -> None:
    client = MlflowClient(tracking_uri=own_registry, registry_uri=own_registry)
    seen = Recorder()
    first = run(writing, "/deploy iris v1 to prod", seen)

    assert isinstance(first, Outcome) and first.ok, seen.text
    assert first.text == f"iris v1 is live at {first.url}"
    assert aliases(client) == {"champion": "2", "prod": "1"}
    value = json.loads(tags(client, 1)[TAG])
    assert value["by"] == "alice" and value["operation"] == first.operation
    assert value["since"].endswith("Z") and "approved_by" not in value
    # a step of the operation, told in its thread like the others, before it ends
    done = [e.step for e in seen.events if e.kind is EventKind.DONE]
    assert done == ["resolve", "build", "start", "check", "switch", "registry"]
    assert registry_lines(seen) == [
        (EventKind.STEP, "moving @prod to iris v1 in the registry"),
        (EventKind.DONE, registry_lines(seen)[1][1]),
    ]
    assert registry_lines(seen)[1][1].startswith(f"@prod now names iris v1, tagged {TAG} (")
    assert seen.events[-1].kind is EventKind.SUCCEEDED

    second = run(writing, "/deploy iris v2 to prod", seen := Recorder())
    assert isinstance(second, Outcome) and second.ok, seen.text
    assert aliases(client)["prod"] == "2"
    assert json.loads(tags(client, 2)[TAG])["operation"] == second.operation
    assert TAG not in tags(client, 1)  # v1 serves prod no more
    assert f"@prod now names iris v2, tagged {TAG} (taken off v1) (" in registry_lines(seen)[1][1]

    back = run(writing, "/rollback iris in prod", seen := Recorder())
    assert isinstance(back, Outcome) and back.ok, seen.text
    assert aliases(client)["prod"] == "1"
    assert json.loads(tags(client, 1)[TAG])["operation"] == back.operation
    assert TAG not in tags(client, 2)

    # what serves elsewhere is no business of prod's alias
    dev = run(writing, "/deploy iris v2 to dev", seen := Recorder())
    assert isinstance(dev, Outcome) and dev.ok and registry_lines(seen) == []
    assert aliases(client)["prod"] == "1"

    stopped = run(writing, "/stop iris in prod", seen := Recorder())
    assert isinstance(stopped, Outcome) and stopped.ok, seen.text
    assert plain(stopped.text) == f"iris in prod is stopped (it served iris v1 at {back.url})."
    assert aliases(client) == {"champion": "2"}
    assert TAG not in tags(client, 1)
    assert registry_lines(seen)[1] == (
        EventKind.DONE,
        registry_lines(seen)[1][1],
    ) and registry_lines(seen)[1][1].startswith(f"took {TAG} and @prod off iris v1 (")


def test_a_stop_leaves_an_alias_someone_moved_meanwhile(
    writing: Runtime, own_registry: str
) -> None:
    client = MlflowClient(tracking_uri=own_registry, registry_uri=own_registry)
    assert run(writing, "/deploy iris v1 to prod").ok
    client.set_registered_model_alias("iris", "prod", "2")  # someone moved it by hand

    stopped = run(writing, "/stop iris in prod", seen := Recorder())

    assert isinstance(stopped, Outcome) and stopped.ok, seen.text
    assert aliases(client)["prod"] == "2"  # not the bot's to take off
    assert TAG not in tags(client, 1)
    assert "(@prod did not name it: left as it is)" in registry_lines(seen)[1][1]
    client.delete_registered_model_alias("iris", "prod")


def test_the_plan_says_it_moves_the_alias(writing: Runtime) -> None:
    report = run(writing, "/plan deploy iris v2 to prod")
    assert isinstance(report, PlanReport) and report.ok, report.text
    assert report.registry == f"then moves @prod to v2 and tags it {TAG}"
    assert f"registry: then moves @prod to v2 and tags it {TAG}" in report.text
    assert isinstance(run(writing, "/deploy iris v1 to prod"), Outcome)
    assert run(writing, "/plan deploy iris v2 to prod").registry == (
        f"then moves @prod to v2 and tags it {TAG}, taking it off v1"
    )
    stop = run(writing, "/plan stop iris in prod")
    assert isinstance(stop, PlanReport)
    assert stop.registry == f"then takes {TAG} off iris v1, and @prod while it names that version"
    # an environment that names no alias writes nothing, and its plan says nothing of it
    dev = run(writing, "/plan deploy iris v2 to dev")
    assert isinstance(dev, PlanReport) and dev.registry == "" and "registry:" not in dev.text
    assert run(writing, "/stop iris in prod").ok


def test_the_watchs_automatic_rollback_moves_the_alias_back(
    tmp_path: Path, zygote: Zygote, clock: FakeClock
) -> None:
    settings = with_alias(fragile_settings(tmp_path), "dev-serving", env="dev")
    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runtime = Runtime(settings, zygote=zygote, clock=clock)
    try:
        assert run(runtime, "/deploy iris v2").ok
        deployed = run(runtime, "/deploy iris v3")
        assert isinstance(deployed, Outcome) and deployed.ok
        assert aliases(client)["dev-serving"] == "3"
        watcher = runtime.watcher(alerts=LogAlerts(say=lambda _: None), runner=runtime.runner)
        watcher.tick()

        assert set(send(deployed.url, 30, 500.0)) == {500}
        clock.advance(CHECK_S)
        watcher.tick()
        assert watcher.settle(120)

        assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]
        assert aliases(client)["dev-serving"] == "2"
        value = json.loads(tags(client, 2)["chatops.dev.serving"])
        op = runtime.repos.operations.get(value["operation"])
        assert op is not None and op.brief.get("automatic") and op.kind == "rollback"
        assert "chatops.dev.serving" not in tags(client, 3)
    finally:
        runtime.shut_down_endpoints()
        runtime.close()


# -- a real `mlflow server` ----------------------------------------------------------------------
class StopsTheRegistry(Recorder):
    """Stops the `mlflow server` the moment traffic has moved (the switch step is done): the
    write-back that follows meets a registry that refuses connections."""

    def __init__(self, server: MlflowServer) -> None:
        super().__init__()
        self.server = server

    def report(self, event: Event) -> None:
        super().report(event)
        if (event.kind, event.step) == (EventKind.DONE, "switch"):
            self.server.stop()


def test_a_real_mlflow_server_is_written_back_and_a_refusal_leaves_the_endpoint_live(
    tmp_path: Path, zygote: Zygote
) -> None:
    (tmp_path / "mlflow").mkdir()
    server = MlflowServer(tmp_path / "mlflow").start()
    runtime: Runtime | None = None
    try:
        create_demo_model(tracking_uri=server.uri, artifact_root=tmp_path / "artifacts")
        settings = with_alias(make_settings(tmp_path / "state", server.uri, registry_wait_s=8.0))
        runtime = Runtime(settings, zygote=zygote)
        client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
        first = run(runtime, "/deploy iris v1 to prod", seen := Recorder())
        assert isinstance(first, Outcome) and first.ok, seen.text
        assert aliases(client)["prod"] == "1"
        assert json.loads(tags(client, 1)[TAG])["operation"] == first.operation

        refused = run(runtime, "/deploy iris v2 to prod", seen := StopsTheRegistry(server))

        assert isinstance(refused, Outcome) and refused.ok, seen.text  # it ends live
        assert refused.text.startswith(
            f"iris v2 is live at {refused.url}; the registry refused to move @prod to v2: "
            f"the MLflow registry at {server.uri} cannot be reached (connection refused; "
            "gave up after "
        ), refused.text
        assert "unexpected" not in seen.text and "Traceback" not in seen.text
        told = [m for k, m in registry_lines(seen) if k is EventKind.INFO]
        assert len(told) == 1 and told[0].endswith("(what serves is unchanged)"), seen.text
        assert seen.events[-1].kind is EventKind.SUCCEEDED
        assert "the registry refused to move @prod to v2" in seen.events[-1].message
        # v2 serves: the switch stands
        answer = httpx.post(refused.url, json=BODY, timeout=10)
        assert answer.status_code == 200 and answer.headers["x-model"] == "iris/2"
        op = runtime.repos.operations.get(refused.operation or "")
        assert op is not None and op.state == "succeeded"
        assert runtime.repos.locks.get("prod", "iris") is None
        newest = runtime.repos.audit.entries(endpoint="iris", limit=1)[0]
        assert (newest.action, newest.outcome) == ("deploy", "succeeded")
        assert "the registry refused to move @prod to v2" in newest.detail
        # a stop while the registry is still down stops all the same, and says what it left
        stopped = run(runtime, "/stop iris in prod", seen := Recorder())
        assert isinstance(stopped, Outcome) and stopped.ok, seen.text
        assert plain(stopped.text).startswith(
            f"iris in prod is stopped (it served iris v2 at {refused.url}). The registry "
            f"refused to take @prod off iris v2: the MLflow registry at {server.uri} cannot "
            "be reached (connection refused; "
        ), stopped.text
        assert runtime.repos.endpoints.get("prod", "iris") is None
        # the registry (read from the server's store) still says what was written before
        client = MlflowClient(tracking_uri=server.store, registry_uri=server.store)
        assert aliases(client)["prod"] == "1"
        assert TAG in tags(client, 1)
    finally:
        server.stop()
        if runtime is not None:
            runtime.shut_down_endpoints()
            runtime.close()
