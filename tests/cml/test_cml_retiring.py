"""What serves on CML changes only as asked: a stop stops every deployment of the endpoint and
says so only once CML confirms it; a switch retires every other deployment, whoever made it;
a build takes the version's artifacts from the ModelSource it is handed. All over real HTTP
against the emulated workspace, which really serves at /model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from cml_support import PROJECT_ID, deploy_until_done
from conftest_target import CMLRig, RigFactory

from core.admission.roles import Actor
from core.errors import ChatOpsError
from core.events import Outcome
from core.registry.source import RegistrySource
from core.resources import Resources
from core.targets.base import Built, EndpointRef, ModelSource, Started, Step, quiet_step
from core.targets.cml.errors import CMLNotStopped
from core.targets.cml.models import CreateModelDeploymentRequest
from core.targets.cml.progress import short
from core.versions import ModelVersion
from tests.conftest import Recorder

pytest_plugins = ["conftest_target"]

EP = EndpointRef("dev", "iris")
ADMIN = Actor(id="console", name="ada")
STORMS = {
    "every call": {"error_rate": 1.0},
    "stops only": {"error_rate": 1.0, "fail_operations": ["StopModelDeployment"]},
}


class Said:
    """A Step that keeps what a target says and remembers."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.remembered: dict[str, Any] = {}
        self.step = Step(say=self.lines.append, remember=self.remembered.update)


def rolled_out(rig: CMLRig, version: int, deployment: str) -> tuple[Built, Started]:
    """`version` of iris built, started and switched to by the rig's target."""
    mv = rig.core.registry.resolve("iris", version=version)
    built = rig.target.build(EP, mv, RegistrySource(rig.core.registry), quiet_step())
    started = rig.target.start(
        EP, mv, built, Resources(cpu=1, memory_mb=2048), deployment, quiet_step()
    )
    rig.target.switch(EP, started.deployment, quiet_step())
    return built, started


def statuses(rig: CMLRig) -> dict[str, str]:
    """Every deployment of the endpoint's model, of every build, as CML lists it."""
    model_id = rig.model().id or ""
    found = {}
    for build in rig.admin.list_model_builds(PROJECT_ID, model_id).model_builds:
        listed = rig.admin.list_model_deployments(PROJECT_ID, model_id, build.id or "")
        found |= {d.id or "": d.status or "" for d in listed.model_deployments}
    return found


def served_by(rig: CMLRig, example: dict[str, Any]) -> str:
    answer = rig.predict(example)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["response"]["model_deployment_crn"])


def behind_the_bots_back(rig: CMLRig, build_id: str) -> str:
    """A deployment of `build_id` someone made in the CML UI: deployed, unknown to the bot."""
    body = CreateModelDeploymentRequest(cpu=1, memory=2, replicas=1)
    dep, _ = deploy_until_done(rig.admin, PROJECT_ID, rig.model().id or "", build_id, body)
    assert dep.status == "deployed" and dep.id
    return dep.id


@pytest.fixture
def example(registry_uri: str, cml: CMLRig) -> dict[str, Any]:
    mv = cml.core.registry.resolve("iris", version=1)
    built = cml.target.build(EP, mv, RegistrySource(cml.core.registry), quiet_step())
    assert built.example is not None
    return built.example


# -- stop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("storm", list(STORMS))
def test_a_stop_during_a_503_storm_raises_and_the_deployment_serves_on(
    cml: CMLRig, example: dict[str, Any], storm: str
) -> None:
    _, started = rolled_out(cml, 1, "dep-1")
    cml.emulator.faults.update(STORMS[storm])

    with pytest.raises(CMLNotStopped) as refused:
        cml.target.stop(EP, quiet_step())

    cml.emulator.faults.reset()
    assert isinstance(refused.value, ChatOpsError)
    text = refused.value.message
    assert text.startswith("could not stop iris in dev: ")
    assert f"deployment {short(started.deployment)}" in text and "iris v1" in text
    assert "may still serve" in text and "503" in text
    assert statuses(cml) == {started.deployment: "deployed"}
    assert served_by(cml, example).endswith(started.deployment)
    assert 503 in {e.status for e in cml.traffic.exchanges}


def test_stop_during_a_storm_is_refused_to_the_admin_and_the_endpoint_stays_listed(
    cml: CMLRig, example: dict[str, Any]
) -> None:
    deployed = cml.deployer.deploy(
        model="iris", version=1, env="dev", actor=ADMIN, command="/deploy iris", reporter=Recorder()
    )
    assert deployed.ok, deployed.text
    cml.emulator.faults.update(STORMS["stops only"])

    answer = cml.deployer.stop(
        endpoint="iris", env="dev", actor=ADMIN, command="/stop iris", reporter=Recorder()
    )

    cml.emulator.faults.reset()
    assert isinstance(answer, Outcome) and not answer.ok, answer
    assert answer.text.startswith("failed: could not stop iris in dev: deployment ")
    assert "(iris v1, deployed) may still serve; CML refused to stop them" in answer.text
    assert cml.repos.endpoints.get("dev", "iris") is not None
    assert cml.predict(example).status_code == 200


def test_stop_stops_every_deployment_and_returns_once_cml_says_so(
    cml: CMLRig, example: dict[str, Any]
) -> None:
    built, started = rolled_out(cml, 1, "dep-1")
    extra = behind_the_bots_back(cml, built.ref)
    cml.emulator.timings.stopping = 0.3  # "stopping" for a while: stop must wait it out
    said = Said()

    cml.target.stop(EP, said.step)

    assert statuses(cml) == {started.deployment: "stopped", extra: "stopped"}
    answer = cml.predict(example)
    assert answer.status_code == 503 and "has no running deployment" in answer.text
    assert said.lines == [
        f"stopping deployment {short(started.deployment)} (iris v1, deployed), deployment "
        f"{short(extra)} (iris v1, deployed) of CML model iris@dev"
    ]
    cml.target.stop(EP, said.step)  # nothing left to stop: a second stop is a no-op
    assert len(said.lines) == 1


def test_a_stop_cml_never_confirms_raises_naming_what_is_still_stopping(
    cml_rig: RigFactory,
) -> None:
    rig = cml_rig(stop_timeout_s=0.3)
    _, started = rolled_out(rig, 1, "dep-1")
    rig.emulator.timings.stopping = 30

    with pytest.raises(CMLNotStopped) as unconfirmed:
        rig.target.stop(EP, quiet_step())

    assert unconfirmed.value.still == (
        f"deployment {short(started.deployment)} (iris v1, stopping)",
    )
    assert "CML did not confirm they stopped within 0.3 s" in unconfirmed.value.message


def test_stop_of_an_endpoint_cml_never_had_is_a_no_op(cml: CMLRig) -> None:
    cml.target.stop(EndpointRef("dev", "never-deployed"), quiet_step())

    assert cml.admin.list_models(PROJECT_ID).models == []


# -- switch and discard --------------------------------------------------------------------


def test_switch_retires_a_deployment_made_behind_the_bots_back(
    cml: CMLRig, example: dict[str, Any]
) -> None:
    one, first = rolled_out(cml, 1, "dep-1")
    mv = cml.core.registry.resolve("iris", version=2)
    two = cml.target.build(EP, mv, RegistrySource(cml.core.registry), quiet_step())
    new = cml.target.start(EP, mv, two, Resources(cpu=1, memory_mb=2048), "dep-2", quiet_step())
    extra = behind_the_bots_back(cml, one.ref)  # v1 again, newer: CML sends it the traffic
    assert served_by(cml, example).endswith(extra)
    said = Said()

    url = cml.target.switch(EP, new.deployment, said.step)

    assert url == cml.emulator.model_url
    assert statuses(cml) == {
        first.deployment: "stopped",
        extra: "stopped",
        new.deployment: "deployed",
    }
    assert served_by(cml, example).endswith(new.deployment)
    assert said.remembered["api_calls"] > 0
    assert f"deployment {short(extra)} (iris v1, deployed)" in said.lines[0]


def test_a_switch_whose_retirements_are_refused_raises(
    cml: CMLRig,
) -> None:
    one, first = rolled_out(cml, 1, "dep-1")
    mv = cml.core.registry.resolve("iris", version=1)
    new = cml.target.start(EP, mv, one, Resources(cpu=2, memory_mb=2048), "dep-2", quiet_step())
    cml.emulator.faults.update(STORMS["stops only"])

    with pytest.raises(CMLNotStopped) as refused:
        cml.target.switch(EP, new.deployment, quiet_step())

    cml.emulator.faults.reset()
    assert refused.value.still == (f"deployment {short(first.deployment)} (iris v1, deployed)",)
    assert statuses(cml)[first.deployment] == "deployed"


def test_discard_stops_the_deployment_that_never_took_traffic(cml: CMLRig) -> None:
    one, first = rolled_out(cml, 1, "dep-1")
    mv = cml.core.registry.resolve("iris", version=1)
    failed = cml.target.start(EP, mv, one, Resources(cpu=2, memory_mb=2048), "dep-2", quiet_step())

    cml.target.discard(EP, failed.deployment, quiet_step())

    assert statuses(cml) == {first.deployment: "deployed", failed.deployment: "stopped"}


# -- build ---------------------------------------------------------------------------------


class FolderSource:
    """A ModelSource that is not the registry: artifacts copied into a folder of our own."""

    def __init__(self, inner: ModelSource, folder: Path) -> None:
        self.inner = inner
        self.folder = folder
        self.asked: list[str] = []

    @property
    def tracking_uri(self) -> str:
        return self.inner.tracking_uri

    def download(self, mv: ModelVersion, dest: Path) -> Path:
        self.asked.append("download")
        return self.inner.download(mv, dest)

    def download_uri(self, mv: ModelVersion) -> str:
        self.asked.append("download_uri")
        return self.folder.as_uri()

    def run_experiment(self, mv: ModelVersion) -> str:
        self.asked.append("run_experiment")
        return self.inner.run_experiment(mv)


def test_build_takes_the_input_example_from_the_model_source_it_is_handed(
    cml: CMLRig, tmp_path: Path
) -> None:
    registry = cml.core.registry
    mv = registry.resolve("iris", version=1)
    original = Path(unquote(urlsplit(RegistrySource(registry).download_uri(mv)).path))
    folder = tmp_path / "artifacts"
    shutil.copytree(original, folder)
    example_file = folder / "serving_input_example.json"
    one_row = json.loads(example_file.read_text())
    one_row["dataframe_split"]["data"] = one_row["dataframe_split"]["data"][:1]
    example_file.write_text(json.dumps(one_row))
    source = FolderSource(RegistrySource(registry), folder)

    built = cml.target.build(EP, mv, source, quiet_step())
    started = cml.target.start(EP, mv, built, Resources(cpu=1, memory_mb=2048), "d", quiet_step())
    checked = cml.target.smoke_test(EP, started, built, quiet_step())

    assert built.example == one_row
    assert source.asked == ["download_uri"]  # the workspace, not the bot, fetches the model
    assert isinstance(checked.prediction, list) and len(checked.prediction) == 1


def test_faults_name_operations_by_the_specs_operation_ids(cml: CMLRig) -> None:
    url = f"{cml.emulator.url}/_emulator/faults"
    unknown = httpx.post(url, json={"fail_operations": ["StopDeployment"]})
    known = httpx.post(url, json={"fail_operations": "StopModelDeployment, ListModels"})

    assert unknown.status_code == 400 and "StopDeployment" in unknown.json()["error"]
    assert known.json()["fail_operations"] == ["StopModelDeployment", "ListModels"]
