"""The CML target end to end: the real Deployer drives a CMLTarget over real HTTP against the
emulated workspace, which builds and serves the registry's real models."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID
from conftest_target import KEY_VAR, CMLRig, RigFactory, cml_environment, make_target

from core.admission.roles import Actor
from core.errors import ConfigError, DeployFailed
from core.events import EventKind, Outcome, Refusal
from core.registry.mlflow import Registry
from core.registry.source import RegistrySource
from core.resources import Resources
from core.targets.base import EndpointRef, Step, quiet_step
from core.targets.cml.serving import input_example
from core.targets.cml.target import CMLTarget
from emulators.cml import RunningEmulator
from tests.conftest import Recorder

pytest_plugins = ["conftest_target"]  # the fixtures cml, cml_rig, cml_workspace

ADMIN = Actor(id="console", name="ada")  # environments make the console user an admin


def deploy(rig: CMLRig, version: int, reporter: Recorder | None = None) -> Outcome:
    result = rig.deployer.deploy(
        model="iris",
        version=version,
        env="dev",
        actor=ADMIN,
        command=f"/deploy iris v{version}",
        reporter=reporter or Recorder(),
    )
    assert isinstance(result, Outcome), result
    return result


def scale(rig: CMLRig, reporter: Recorder | None = None, **resources: Any) -> Outcome | Refusal:
    return rig.deployer.scale(
        endpoint="iris",
        env="dev",
        actor=ADMIN,
        command="/scale iris",
        reporter=reporter or Recorder(),
        **resources,
    )


def remote(rig: CMLRig, outcome: Outcome) -> dict[str, Any]:
    assert outcome.operation
    op = rig.repos.operations.get(outcome.operation)
    assert op is not None
    return dict(op.remote)


@pytest.fixture(scope="module")
def example(registry_uri: str) -> dict[str, Any]:
    registry = Registry(tracking_uri=registry_uri)
    found = input_example(RegistrySource(registry), registry.resolve("iris", version=1))
    assert found is not None and "dataframe_split" in found
    return found


class Traffic:
    """A client calling /model in a loop on its own thread, keeping every failure."""

    def __init__(self, rig: CMLRig, example: dict[str, Any]) -> None:
        self.payload = {"accessKey": rig.model().access_key, "request": example}
        self.url = rig.emulator.model_url
        self.sent = 0
        self.failures: list[str] = []
        self.crns: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(headers={"authorization": f"Bearer {API_KEY}"}, timeout=10) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post(self.url, json=self.payload)
                    if answer.status_code != 200 or not answer.json().get("success"):
                        self.failures.append(f"{answer.status_code} {answer.text[:100]}")
                    else:
                        self.crns.add(answer.json()["response"]["model_deployment_crn"])
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.sent += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)


# -- the whole flow ------------------------------------------------------------------------


def test_deploy_predict_scale_under_traffic_and_status(
    cml: CMLRig, example: dict[str, Any]
) -> None:
    said = Recorder()
    first = deploy(cml, 1, said)

    assert first.ok, first.text
    assert first.url == cml.emulator.model_url
    ids = remote(cml, first)
    assert {"cml_model_id", "build_id", "cml_deployment_id"} <= ids.keys()
    assert 0 < ids["api_calls"] == cml.target.api_calls < 40
    assert "API calls" in said.text and "smoke test answered [" in said.text
    model = cml.model()
    assert model.auth_enabled is True and model.id == ids["cml_model_id"]
    answer = cml.predict(example)
    assert answer.status_code == 200 and len(answer.json()["response"]["prediction"]) == 3
    assert cml.predict(example, auth=False).status_code == 401

    cml.emulator.timings.deploying = 0.3  # old and new both serve for a while
    with Traffic(cml, example) as traffic:
        scaled = scale(cml, cpu=2, memory_mb=4096, replicas=2)
    assert isinstance(scaled, Outcome) and scaled.ok, scaled
    assert traffic.failures == [] and traffic.sent > 10
    assert len(traffic.crns) == 2  # served by the old deployment, then by the new one

    after = remote(cml, scaled)
    assert after["api_calls"] == cml.target.api_calls  # stopping the old one included
    assert after["build_id"] == ids["build_id"]  # resources belong to the deployment
    assert after["cml_deployment_id"] != ids["cml_deployment_id"]
    build_ids = (PROJECT_ID, ids["cml_model_id"], ids["build_id"])
    old = cml.admin.get_model_deployment(*build_ids, ids["cml_deployment_id"])
    new = cml.admin.get_model_deployment(*build_ids, after["cml_deployment_id"])
    assert (old.status, new.status) == ("stopped", "deployed")
    assert (new.cpu, new.memory, new.replicas, new.nvidia_gpu) == (2.0, 4.0, 2, 0)
    assert len(cml.admin.list_model_builds(PROJECT_ID, ids["cml_model_id"]).model_builds) == 1

    rows = cml.deployer.status(env="dev")
    assert isinstance(rows, list) and len(rows) == 1
    assert rows[0].up and rows[0].version == 1 and rows[0].target == "cml"
    assert "2 replicas of 2 vCPU, 4 GB" in rows[0].detail


def test_a_rollback_reuses_the_earlier_build_and_status_needs_one_call(cml: CMLRig) -> None:
    assert deploy(cml, 1).ok
    said = Recorder()
    two = deploy(cml, 2, said)
    assert two.ok, two.text
    # the prediction diff: v1 was asked before v2's deployment took the model's traffic
    (checked,) = [e.message for e in said.events if e.kind is EventKind.DONE and e.step == "check"]
    assert "; it predicts otherwise than v1 on 1 of 3 rows of the example (v1 answered [" in checked
    # and on the run's evaluation dataset, v2 answering from its own new deployment
    (scored,) = [e.message for e in said.events if e.kind is EventKind.DONE and e.step == "diff"]
    assert scored.startswith(
        "v2 predicts otherwise than v1 on 4 of 45 rows; accuracy 0.911 against v1's 0.822"
    )
    back = deploy(cml, 1)
    assert back.ok, back.text
    model_id = remote(cml, back)["cml_model_id"]
    assert len(cml.admin.list_model_builds(PROJECT_ID, model_id).model_builds) == 2

    before = len(cml.traffic.exchanges)
    health = cml.target.health(EndpointRef("dev", "iris"))
    assert (health.up, health.model, health.version) == (True, "iris", 1)
    assert len(cml.traffic.exchanges) - before == 1


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["switch", "broken artifacts"])
def test_a_failed_build_fails_the_rollout_and_the_old_deployment_serves_on(
    cml: CMLRig, example: dict[str, Any], cause: str
) -> None:
    first = deploy(cml, 1)
    assert first.ok, first.text
    if cause == "switch":
        cml.emulator.faults.fail_builds = True
    version = 2 if cause == "switch" else 3  # iris v3's weights are garbage

    failed = deploy(cml, version)

    assert not failed.ok
    assert "failed: the CML build " in failed.text
    assert f'of iris v{version} ended "build failed"' in failed.text
    assert "iris v1 still serves" in failed.text
    assert "statuses seen: pending -> " in failed.log_tail
    assert failed.log_tail.split("\n")[3].endswith(" -> build failed")
    answer = cml.predict(example)
    assert answer.status_code == 200
    served_by = answer.json()["response"]["model_deployment_crn"]
    assert served_by.endswith(remote(cml, first)["cml_deployment_id"])
    rows = cml.deployer.status(env="dev")
    assert isinstance(rows, list) and rows[0].up and rows[0].version == 1


def test_a_failed_deployment_is_reported_and_the_old_one_serves_on(cml: CMLRig) -> None:
    assert deploy(cml, 1).ok
    cml.emulator.faults.fail_deployments = True

    failed = scale(cml, replicas=2)

    assert isinstance(failed, Outcome) and not failed.ok
    assert "of iris v1 ended failed" in failed.text
    assert "iris v1 still serves" in failed.text
    assert failed.log_tail.startswith("pending -> ") and failed.log_tail.endswith(" -> failed")


def test_a_build_slower_than_the_timeout_ends_the_operation_as_failed(
    cml_rig: RigFactory,
) -> None:
    rig = cml_rig(build_timeout_s=0.3)
    rig.emulator.timings.build_queued = 30

    outcome = deploy(rig, 1)

    assert not outcome.ok
    assert "was still queued after 0.3 s (build_timeout_s of dev)" in outcome.text
    assert "nothing was serving iris" in outcome.text
    # nothing is left "in progress": the operation ended failed, with why, and let go
    assert outcome.operation is not None
    op = rig.repos.operations.get(outcome.operation)
    assert op is not None and op.state == "failed" and "build_timeout_s" in op.error
    assert op.lease_expires_at is None
    assert rig.repos.locks.get("dev", "iris") is None
    assert rig.repos.operations.running() == []


def test_a_deployment_slower_than_the_timeout_is_stopped_and_the_operation_failed(
    cml_rig: RigFactory,
) -> None:
    rig = cml_rig(deploy_timeout_s=0.5)
    rig.emulator.timings.deploy_pending = 30

    outcome = deploy(rig, 1)

    assert not outcome.ok
    assert "(deploy_timeout_s of dev); it was told to stop" in outcome.text
    assert rig.repos.locks.get("dev", "iris") is None
    assert rig.repos.operations.running() == []
    op = rig.repos.operations.get(outcome.operation or "")
    assert op is not None
    model, build = op.remote["cml_model_id"], op.remote["build_id"]
    (dep,) = rig.admin.list_model_deployments(PROJECT_ID, model, build).model_deployments
    assert dep.status in ("stopping", "stopped")


READS = [
    "ListRegisteredModels",
    "GetRegisteredModel",
    "GetRegisteredModelVersion",
    "ListModels",
    "ListModelBuilds",
    "GetModelBuild",
    "ListModelDeployments",
    "GetModelDeployment",
]


def test_5xx_bursts_are_ridden_out(cml_rig: RigFactory, example: dict[str, Any]) -> None:
    # on reads: a create answered 5xx may have been done, and is never sent again
    # (test_cml_creates)
    rig = cml_rig(retries=8)
    rig.emulator.faults.update({"error_rate": 0.25, "seed": 11, "fail_operations": READS})

    first = deploy(rig, 1)
    assert first.ok, first.text
    rig.emulator.faults.update({"error_rate": 0.0, "fail_next": 3})
    scaled = scale(rig, replicas=2)

    assert isinstance(scaled, Outcome) and scaled.ok, scaled.text
    statuses = [e.status for e in rig.traffic.exchanges]
    assert statuses.count(503) >= 4 and rig.emulator.faults.fail_next == 0
    assert remote(rig, first)["api_calls"] > 0
    assert rig.predict(example).status_code == 200


def test_a_wrong_api_key_gives_a_clear_error_without_the_key(
    cml_rig: RigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrongkey-9d8c7b6a5f4e3d2c"
    rig = cml_rig(api_key=wrong)
    target, deployer, said = rig.target, rig.deployer, Recorder()

    failed = deploy(rig, 1, said)
    rows = deployer.status()

    assert not failed.ok
    assert f"refused the API key in ${KEY_VAR} (HTTP 401" in failed.text
    assert failed.operation
    op = deployer.repos.operations.get(failed.operation)
    assert op is not None and "refused the API key" in op.error
    events = " ".join(e.message for e in deployer.repos.operations.events(failed.operation))
    everything = [failed.text, failed.log_tail, said.text, caplog.text, op.error, events]
    health = target.health(EndpointRef("dev", "iris"))
    assert not health.up and "refused the API key" in health.detail
    everything += [repr(rows), health.detail]
    assert not any(wrong in text or API_KEY in text for text in everything)


def test_from_environment_reads_the_key_from_the_named_variable(
    cml_workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cml_environment(cml_workspace.url)
    monkeypatch.delenv(KEY_VAR, raising=False)
    with pytest.raises(ConfigError, match=KEY_VAR) as missing:
        CMLTarget.from_environment(env)
    assert "not set" in str(missing.value)

    monkeypatch.setenv(KEY_VAR, API_KEY)
    target = CMLTarget.from_environment(env)
    health = target.health(EndpointRef("dev", "iris"))
    assert (
        not health.up and health.detail == f"there is no CML model iris@dev in project {PROJECT_ID}"
    )
    # the model by its name, then by the name earlier versions gave it
    assert target.api_calls == 2 and target.calls.total == 2
    target.close()


# -- resources -----------------------------------------------------------------------------


def test_gpus_go_out_as_nvidia_gpus_where_the_environment_has_them(cml: CMLRig) -> None:
    assert deploy(cml, 1).ok

    scaled = scale(cml, gpus=1)

    assert isinstance(scaled, Outcome) and scaled.ok, scaled
    bodies = [
        json.loads(e.request_body)
        for e in cml.traffic.exchanges
        if e.method == "POST" and e.url.endswith("/deployments")
    ]
    assert [b.get("nvidia_gpus") for b in bodies] == [None, 1]
    assert bodies[-1]["memory"] == 2.0 and bodies[-1]["cpu"] == 1.0
    rows = cml.deployer.status(env="dev")
    assert isinstance(rows, list) and rows[0].detail.endswith("2 GB, 1 GPU")


def test_an_environment_without_gpus_refuses_them(cml_rig: RigFactory) -> None:
    rig = cml_rig(limits={"gpus": 0})
    target = rig.target
    assert deploy(rig, 1).ok

    refused = scale(rig, gpus=1)

    assert isinstance(refused, Refusal) and "dev has no GPUs" in refused.text
    ep, registry = EndpointRef("dev", "iris"), rig.core.registry
    mv = registry.resolve("iris", version=1)
    built = target.build(ep, mv, RegistrySource(registry), quiet_step())
    with pytest.raises(DeployFailed, match="dev has no GPUs"):
        target.start(ep, mv, built, Resources(cpu=1, memory_mb=1024, gpus=1), "d", quiet_step())


# -- resuming ------------------------------------------------------------------------------


def test_steps_called_again_find_what_they_created_instead_of_creating_more(
    registry_uri: str, cml_workspace: RunningEmulator
) -> None:
    env = cml_environment(cml_workspace.url)
    registry = Registry(tracking_uri=registry_uri)
    source = RegistrySource(registry)
    ep, mv = EndpointRef("dev", "iris"), registry.resolve("iris", version=1)
    resources = Resources(cpu=1, memory_mb=2048)
    remembered: dict[str, Any] = {}
    step = Step(say=lambda _text: None, remember=lambda **ids: remembered.update(ids))

    first = make_target(env)
    built = first.build(ep, mv, source, step)
    started = first.start(ep, mv, built, resources, "dep-1", step)
    assert remembered["build_id"] == built.ref
    assert remembered["cml_deployment_id"] == started.deployment

    again = make_target(env)  # a restarted bot: nothing in memory
    assert again.build(ep, mv, source, quiet_step()).ref == built.ref
    assert again.start(ep, mv, built, resources, "dep-1", quiet_step()).deployment == (
        started.deployment
    )
    fresh = make_target(env)
    health = fresh.health(ep)
    assert (health.up, health.deployment, health.version) == (True, started.deployment, 1)

    newer = again.start(ep, mv, built, resources, "dep-2", quiet_step())
    restarted = make_target(env)
    restarted.switch(ep, newer.deployment, quiet_step())
    model_id = remembered["cml_model_id"]
    deployments = restarted.client.list_model_deployments(PROJECT_ID, model_id, built.ref)
    statuses = {d.id: d.status for d in deployments.model_deployments}
    assert statuses == {started.deployment: "stopped", newer.deployment: "deployed"}
    for target in (first, again, fresh, restarted):
        target.close()
