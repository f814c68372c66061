"""Statuses as CML spells them: a rollout reads builds, deployments and registered versions
in any documented spelling, and a status nobody documents is waited on, told in the thread
and logged once, and ends in a timeout naming it, never in success."""

from __future__ import annotations

import logging

import pytest
from cml_support import PROJECT_ID
from conftest_target import CMLRig, RigFactory

from core.admission.roles import Actor
from core.events import Outcome
from core.targets.base import EndpointRef
from tests.conftest import Recorder

pytest_plugins = ["conftest_target"]

ADMIN = Actor(id="console", name="ada")


def deploy(rig: CMLRig, version: int, said: Recorder) -> Outcome:
    result = rig.deployer.deploy(
        model="iris",
        version=version,
        env="dev",
        actor=ADMIN,
        command=f"/deploy iris v{version}",
        reporter=said,
    )
    assert isinstance(result, Outcome), result
    return result


@pytest.mark.parametrize("spelling", ["upper", "prefixed", "title", "mlflow"])
def test_a_rollout_reads_statuses_in_every_spelling(cml_rig: RigFactory, spelling: str) -> None:
    rig = cml_rig()
    rig.emulator.faults.update({"status_spelling": spelling})

    first = deploy(rig, 1, Recorder())
    second = deploy(rig, 2, Recorder())  # retires the first: stopping and stopped read too

    assert first.ok, first.text
    assert second.ok, second.text
    health = rig.target.health(EndpointRef("dev", "iris"))
    assert health.up and health.version == 2, health
    rig.emulator.faults.reset()
    model = rig.model()
    builds = rig.admin.list_model_builds(PROJECT_ID, model.id or "").model_builds
    statuses = sorted(
        d.status or ""
        for b in builds
        for d in rig.admin.list_model_deployments(
            PROJECT_ID, model.id or "", b.id or ""
        ).model_deployments
    )
    assert statuses == ["deployed", "stopped"]


UNKNOWN = {
    "deployment": ("MODEL_DEPLOYMENT_WARMING", "deploy_timeout_s of dev"),
    "build": ("BUILD_COMPILING", "build_timeout_s of dev"),
    "registered_version": ("ARCHIVED", "in the CML registry after 1 s"),
}


@pytest.mark.parametrize("kind", list(UNKNOWN))
def test_an_unknown_status_is_waited_on_and_named_in_the_timeout(
    cml_rig: RigFactory, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, timeout = UNKNOWN[kind]
    rig = cml_rig(build_timeout_s=1, deploy_timeout_s=1)
    rig.emulator.faults.update({"unknown_status": status, "unknown_status_of": kind})
    said = Recorder()
    caplog.set_level(logging.WARNING, logger="core.targets.cml")

    outcome = deploy(rig, 1, said)

    assert not outcome.ok
    assert timeout in outcome.text
    assert f"statuses this bot does not know: '{status}'" in outcome.text
    assert said.text.count(f"status this bot does not know ({status!r})") == 1
    logged = [r for r in caplog.records if status in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert rig.target.health(EndpointRef("dev", "iris")).up is False
