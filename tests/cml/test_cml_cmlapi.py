"""The CML target through a `cmlapi` client nobody on this project wrote: one generated from
the vendored spec by swagger-codegen 3.0.34, as Cloudera's is, against the emulated
workspace over real HTTP. Every request it sent is checked against the spec after."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID
from cml_swagger import SPEC_PATH
from cmlapi_support import ROOT, RecordingProxy
from conftest_cmlapi import adapter
from conftest_target import KEY_VAR, CMLRig, cml_environment
from prometheus_client.parser import text_string_to_metric_families
from test_cml_target import ADMIN, deploy, remote, scale
from test_cml_target import example as example  # a fixture: the input example of iris v1

from core.errors import ConfigError
from core.events import Outcome
from core.metrics.page import Exposition
from core.store.repos import Repositories
from core.targets.base import EndpointRef
from core.targets.cml import (
    CMLAuthError,
    CMLClient,
    CMLNotFound,
    CMLUnreachable,
    iter_all,
)
from core.targets.cml.errors import CMLOutcomeUnknown
from core.targets.cml.models import CreateModelRequest
from core.targets.cml.service_api import CMLServiceAdapter
from core.targets.cml.target import CMLTarget
from emulators.cml import RunningEmulator
from tests.conftest import Recorder

pytest_plugins = ["conftest_target", "conftest_cmlapi"]

GENERATED = "Swagger-Codegen/"  # the User-Agent of a swagger-codegen python client


def queries(proxy: RecordingProxy) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(e.url).query)) for e in proxy.api_exchanges()]


def test_deploy_scale_status_rollback_and_stop_through_cmlapi(
    cmlapi_rig: Any, cmlapi_proxy: RecordingProxy, example: dict[str, Any]
) -> None:
    rig: CMLRig = cmlapi_rig()
    first = deploy(rig, 1)
    assert first.ok, first.text
    ids = remote(rig, first)
    assert rig.predict(example).status_code == 200
    assert ids["api_calls"] == len(cmlapi_proxy.api_exchanges())  # counted without httpx

    scaled = scale(rig, cpu=2, memory_mb=4096, replicas=2)
    assert isinstance(scaled, Outcome) and scaled.ok, scaled
    after = remote(rig, scaled)
    build = (PROJECT_ID, ids["cml_model_id"], ids["build_id"])
    new = rig.admin.get_model_deployment(*build, after["cml_deployment_id"])
    old = rig.admin.get_model_deployment(*build, ids["cml_deployment_id"])
    assert (new.status, new.cpu, new.memory, new.replicas) == ("deployed", 2.0, 4.0, 2)
    assert old.status == "stopped"

    assert deploy(rig, 2).ok
    back = rig.deployer.rollback(
        endpoint="iris", env="dev", actor=ADMIN, command="/rollback iris", reporter=Recorder()
    )
    assert isinstance(back, Outcome) and back.ok, back
    builds = rig.admin.list_model_builds(PROJECT_ID, ids["cml_model_id"]).model_builds
    assert len(builds) == 2  # the rollback reused v1's build
    rows = rig.deployer.status(env="dev")
    assert isinstance(rows, list) and len(rows) == 1
    assert (rows[0].up, rows[0].version) == (True, 1)
    assert "2 replicas of 2 vCPU, 4 GB" in rows[0].detail

    stopped = rig.deployer.stop(
        endpoint="iris", env="dev", actor=ADMIN, command="/stop iris", reporter=Recorder()
    )
    assert isinstance(stopped, Outcome) and stopped.ok, stopped
    assert rig.deployer.status(env="dev") == []
    for b in builds:
        listed = rig.admin.list_model_deployments(PROJECT_ID, ids["cml_model_id"], b.id or "")
        assert {d.status for d in listed.model_deployments} == {"stopped"}

    sent = cmlapi_proxy.api_exchanges()
    assert len(sent) > 20 and all(ua.startswith(GENERATED) for ua in cmlapi_proxy.api_user_agents())
    assert {e.method for e in sent} == {"GET", "POST"}
    for query in queries(cmlapi_proxy):
        assert "None" not in query.values() and "True" not in query.values()
        if "search_filter" in query:
            assert isinstance(json.loads(query["search_filter"]), dict)


def test_lists_page_by_next_page_token(
    cml_workspace: RunningEmulator, cmlapi_proxy: RecordingProxy, cmlapi: ModuleType
) -> None:
    client = adapter(cmlapi_proxy.url)
    for name in ("a", "b", "c"):
        client.create_model(CreateModelRequest(project_id=PROJECT_ID, name=name), PROJECT_ID)

    names = [m.name for m in iter_all(client.list_models, PROJECT_ID, page_size=2)]
    one = list(iter_all(client.list_models, PROJECT_ID, search_filter={"name": "b"}))

    assert sorted(n or "" for n in names) == ["a", "b", "c"]
    assert [m.name for m in one] == ["b"]
    lists = [q for q in queries(cmlapi_proxy) if "page_size" in q]
    assert "page_token" not in lists[0] and lists[1]["page_token"]  # the token CML gave


def test_cml_errors_come_out_as_ours_with_status_and_without_the_key(
    cml_workspace: RunningEmulator,
    cmlapi_proxy: RecordingProxy,
    cmlapi: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrongkey-9d8c7b6a5f4e3d2c"
    with pytest.raises(CMLNotFound) as missing:
        adapter(cmlapi_proxy.url).get_model(PROJECT_ID, "no-such-model")
    with pytest.raises(CMLAuthError) as refused:
        adapter(cmlapi_proxy.url, api_key=wrong).list_models(PROJECT_ID)
    cml_workspace.faults.update({"fail_next": 2, "fail_status": 503})
    listed = adapter(cmlapi_proxy.url).list_models(PROJECT_ID)  # reads ride out 5xx

    assert missing.value.status_code == 404 and missing.value.path == "get_model"
    assert refused.value.status_code == 401 and "list_models with 401" in refused.value.message
    assert listed.models == [] and [e.status for e in cmlapi_proxy.exchanges][-3:] == [
        503,
        503,
        200,
    ]
    texts = [str(missing.value), repr(refused.value), refused.value.message, caplog.text]
    assert not any(wrong in text or API_KEY in text for text in texts)


def test_a_create_answered_5xx_is_not_sent_again_but_said_unknown(
    cml_workspace: RunningEmulator, cmlapi_proxy: RecordingProxy, cmlapi: ModuleType
) -> None:
    cml_workspace.faults.update({"fail_next": 1, "fail_operations": ["CreateModel"]})
    body = CreateModelRequest(project_id=PROJECT_ID, name="once")
    with pytest.raises(CMLOutcomeUnknown) as unknown:
        adapter(cmlapi_proxy.url).create_model(body, PROJECT_ID)
    posts = [e for e in cmlapi_proxy.api_exchanges() if e.method == "POST"]
    assert unknown.value.status_code == 503
    assert len(posts) == 1


def test_a_rollout_whose_creates_lose_their_replies_makes_one_of_each_through_cmlapi(
    cmlapi_rig: Any, cml_workspace: RunningEmulator
) -> None:
    rig: CMLRig = cmlapi_rig()
    creates = ["CreateModel", "CreateModelBuild", "CreateModelDeployment"]
    before = httpx.get(f"{cml_workspace.url}/_emulator/created", timeout=10).json()
    cml_workspace.faults.update(
        {"lose_reply_how": "status", "fail_status": 502, "lose_reply_operations": creates}
    )
    cml_workspace.faults.update({"lose_reply_next": 3})
    said = Recorder()
    outcome = deploy(rig, 1, said)
    cml_workspace.faults.reset()
    assert outcome.ok, outcome.text
    after = httpx.get(f"{cml_workspace.url}/_emulator/created", timeout=10).json()
    grown = {kind: after[kind] - before[kind] for kind in ("models", "model_builds")}
    assert grown == {"models": 1, "model_builds": 1}
    assert after["model_deployments"] - before["model_deployments"] == 1
    assert said.text.count("CML had created") == 3


def test_a_silent_or_absent_workspace_is_unreachable_within_the_timeout(
    cml_workspace: RunningEmulator, cmlapi_proxy: RecordingProxy, cmlapi: ModuleType
) -> None:
    cml_workspace.faults.update({"latency": 2.0})  # answered, had the timeout not held
    slow = CMLServiceAdapter.connect(url=cmlapi_proxy.url, api_key=API_KEY, timeout=0.2, retries=0)
    with pytest.raises(CMLUnreachable, match=r"CML cannot be reached \(GET list_models\)"):
        slow.list_models(PROJECT_ID)
    cml_workspace.faults.update({"latency": 0.0})

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    gone = adapter(f"http://127.0.0.1:{port}")
    with pytest.raises(CMLUnreachable, match="gave up after 5 tries") as absent:
        gone.get_project(PROJECT_ID)
    assert API_KEY not in absent.value.message


def test_a_refused_key_fails_the_deploy_naming_the_variable(cmlapi_rig: Any) -> None:
    rig: CMLRig = cmlapi_rig(api_key="wrongkey-9d8c7b6a5f4e3d2c")
    failed = deploy(rig, 1)
    assert not failed.ok
    assert f"refused the API key in ${KEY_VAR} (HTTP 401 on GET list_" in failed.text
    assert "wrongkey" not in failed.text and "ApiException" not in failed.text


# -- choosing the client ---------------------------------------------------------------------


def test_an_environment_asking_for_cmlapi_gets_it(
    cml_workspace: RunningEmulator, cmlapi: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    target = CMLTarget.from_environment(cml_environment(cml_workspace.url, client="cmlapi"))
    try:
        assert isinstance(target.client, CMLServiceAdapter)
        assert target.client.get_project(PROJECT_ID).id == PROJECT_ID
        assert target.health(EndpointRef("dev", "iris")).up is False
        assert target.api_calls > 0  # counted as with our client
    finally:
        target.close()


@pytest.mark.parametrize(
    ("session", "installed", "expected"),
    [(True, True, CMLServiceAdapter), (True, False, CMLClient), (False, True, CMLClient)],
)
def test_inside_a_cml_session_cmlapi_is_the_default(
    cml_workspace: RunningEmulator,
    cmlapi: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    session: bool,
    installed: bool,
    expected: type,
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    for var in ("CDSW_API_URL", "CDSW_APIV2_KEY"):
        if session:
            monkeypatch.setenv(var, f"{cml_workspace.url}/api/v1" if "URL" in var else API_KEY)
        else:
            monkeypatch.delenv(var, raising=False)
    if not installed:
        monkeypatch.setitem(sys.modules, "cmlapi", None)  # what Python does when it is absent
    target = CMLTarget.from_environment(cml_environment(cml_workspace.url))
    try:
        assert type(target.client) is expected
    finally:
        target.close()


def test_asking_for_cmlapi_without_it_installed_is_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    monkeypatch.setitem(sys.modules, "cmlapi", None)
    env = cml_environment("https://ml.example.cloudera.site", client="cmlapi")
    wanted = r'environment dev asks for "client": "cmlapi", but the cmlapi package is not'
    with pytest.raises(ConfigError, match=wanted):
        CMLTarget.from_environment(env)


# -- the vendored specs ----------------------------------------------------------------------


def test_the_conformance_checks_read_the_spec_vendored_in_the_repository() -> None:
    assert SPEC_PATH.is_relative_to(ROOT) and SPEC_PATH.is_file()
    spec = json.loads(SPEC_PATH.read_text())
    notes = (ROOT / "specs" / "README.md").read_text()
    assert spec["swagger"] == "2.0" and f"info.version {spec['info']['version']}" in notes
    manifest = json.loads((ROOT / "specs" / "slack-app-manifest.schema.json").read_text())
    assert "slack-app-manifest.schema.json" in notes and "properties" in manifest


# -- one client for everything ---------------------------------------------------------------


def test_closing_a_cmlapi_target_lets_go_of_its_thread_pool(
    cml_workspace: RunningEmulator, cmlapi: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    before = {t.ident for t in threading.enumerate()}
    target = CMLTarget.from_environment(cml_environment(cml_workspace.url, client="cmlapi"))
    assert target.client.get_project(PROJECT_ID).id == PROJECT_ID
    started = [
        t  # the emulator serves from AnyIO's threads in this process too
        for t in threading.enumerate()
        if t.ident not in before and not t.name.startswith("AnyIO")
    ]
    assert started  # the generated ApiClient starts a thread pool when it is made

    target.close()
    target.close()  # twice is harmless

    # its threads end now, not in ApiClient.__del__ at interpreter exit, where closing the
    # pool's pipes fails ("Exception ignored in ... __del__ ... Bad file descriptor")
    assert [t.name for t in started if t.is_alive()] == []


def test_calls_through_cmlapi_are_counted_in_metrics_as_ours_are(
    cml_workspace: RunningEmulator, cmlapi: ModuleType, tmp_path: Path
) -> None:
    repos = Repositories.open(f"sqlite:///{tmp_path / 's.db'}")

    def gets() -> float:
        page = Exposition(repos.db).render().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(page)
            for s in family.samples
            if s.name == "chatops_cml_requests_total"
            and s.labels == {"method": "GET", "route": "/api/v2/projects/{id}", "status": "2xx"}
        )

    before = gets()
    client = adapter(cml_workspace.url)
    try:
        client.get_project(PROJECT_ID)
        client.get_project(PROJECT_ID)
        assert gets() == before + 2
    finally:
        client.close()
        repos.close()
