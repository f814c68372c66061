"""No create runs twice: when CML does the work of a create and its reply is lost (a 5xx or
429 after the work, the connection dropped halfway through the answer, no answer within the
client's timeout), or a slow gateway holds the create past the client's timeout and then
passes it on, a rollout looks for what it asked for until the step's timeout, never sending
it again, and ends with exactly one registered version, model, build and deployment, counted
by the emulator's admin view. With our client and a generated `cmlapi` client."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID, RecordingTransport
from conftest_target import cml_environment, make_core
from mlflow import MlflowClient

from core.admission.roles import Actor
from core.events import Outcome
from core.registry.mlflow import Registry
from core.registry.source import RegistrySource
from core.resources import Resources
from core.runtime import Core
from core.targets.base import Built, EndpointRef, Step, quiet_step
from core.targets.cml import CMLClient, CMLUnreachable
from core.targets.cml.calls import CallCounter
from core.targets.cml.errors import CMLOutcomeUnknown
from core.targets.cml.models import CreateModelDeploymentRequest, CreateModelRequest
from core.targets.cml.progress import short
from core.targets.cml.service_api import CMLServiceAdapter
from core.targets.cml.statuses import deployment_status
from core.targets.cml.target import DEPLOYMENT_TAG, CMLTarget
from emulators.cml import RunningEmulator, start_emulator
from tests.conftest import Recorder

pytest_plugins = ["conftest_target", "conftest_cmlapi"]  # the fixture cmlapi

ADMIN = Actor(id="console", name="ada")


class Sending(RecordingTransport):
    """Records exchanges, and every request sent, answered or not."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return super().handle_request(request)


CREATES = ["CreateRegisteredModel", "CreateModel", "CreateModelBuild", "CreateModelDeployment"]
LOST = {
    "a 502 after the work": {"lose_reply_how": "status", "fail_status": 502},
    "a 429 after the work": {"lose_reply_how": "status", "fail_status": 429},
    "the connection dropped mid-answer": {"lose_reply_how": "close"},
    "no answer within the timeout": {"lose_reply_how": "hang", "hang_s": 3.0},
}


@pytest.fixture
def fresh_registry(tmp_path: Path, registry_uri: str) -> str:
    """A copy of the session registry without the registered model `iris`: its runs are there,
    so the workspace must register iris from its run before building it."""
    source = Path(urlsplit(registry_uri).path)
    copy = tmp_path / "workspace-mlflow.db"
    shutil.copy(source, copy)
    uri = f"sqlite:///{copy}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).delete_registered_model("iris")
    return uri


@pytest.fixture
def workspace(fresh_registry: str) -> Iterator[RunningEmulator]:
    running = start_emulator(
        tracking_uri=fresh_registry,
        api_key=API_KEY,
        projects=[{"name": "demo", "id": PROJECT_ID}],
    )
    yield running
    running.faults.reset()  # let any held answer go before the server stops
    running.stop()


Rollout = tuple[Core, CMLTarget, Sending]


@pytest.fixture
def rollouts(
    tmp_path: Path, registry_uri: str, workspace: RunningEmulator
) -> Iterator[Callable[..., Rollout]]:
    """Makes a core over a target of our client, whose timeout is `timeout` (1 s) and whose
    every request is kept; `environment` overrides the `dev` environment's fields."""
    cores: list[Core] = []

    def make(*, timeout: float = 1.0, poll_max_s: float = 0.05, **environment: Any) -> Rollout:
        traffic = Sending()
        target = CMLTarget.connect(
            env=cml_environment(workspace.url, **environment),
            api_key=API_KEY,
            transport=traffic,
            timeout=timeout,
            retries=4,
            backoff=0.002,
            poll_initial_s=0.005,
            poll_max_s=poll_max_s,
            stop_timeout_s=5,
            smoke_timeout_s=5,
        )
        cores.append(make_core(tmp_path / f"state{len(cores)}", registry_uri, target))
        return cores[-1], target, traffic

    yield make
    for core in cores:
        core.close()


@pytest.fixture
def rollout(rollouts: Callable[..., Rollout]) -> Rollout:
    return rollouts()


def created(workspace: RunningEmulator) -> dict[str, int]:
    answer = httpx.get(f"{workspace.url}/_emulator/created", timeout=10)
    assert answer.status_code == 200, answer.text
    counts: dict[str, int] = answer.json()
    return counts


def deploy(core: Core, said: Recorder, version: int = 1) -> Outcome:
    result = core.deployer.deploy(
        model="iris",
        version=version,
        env="dev",
        actor=ADMIN,
        command=f"/deploy iris v{version}",
        reporter=said,
    )
    assert isinstance(result, Outcome), result
    return result


ONE_OF_EACH = {
    "registered_model_versions": 1,
    "models": 1,
    "model_builds": 1,
    "model_deployments": 1,
}


def _grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {kind: after[kind] - before[kind] for kind in after}


@pytest.mark.parametrize("how", list(LOST.values()), ids=list(LOST))
def test_every_create_whose_reply_is_lost_is_made_once(
    how: dict[str, Any],
    workspace: RunningEmulator,
    rollout: tuple[Core, CMLTarget, Sending],
) -> None:
    core, target, traffic = rollout
    before = created(workspace)
    workspace.faults.update({**how, "lose_reply_operations": CREATES, "lose_reply_next": 4})
    said = Recorder()

    outcome = deploy(core, said)

    assert outcome.ok, outcome.text
    assert workspace.faults.lose_reply_next == 0  # each of the four creates lost its answer
    assert _grown(before, created(workspace)) == ONE_OF_EACH
    creates = [path for method, path in traffic.sent if method == "POST"]
    assert len(creates) == 4, creates
    assert said.text.count("CML did not say whether it created") == 4
    assert said.text.count("CML had created") == 4  # each found by what it was named or tagged
    health = target.health(EndpointRef("dev", "iris"))
    assert health.up, health.detail


def test_a_create_answered_5xx_is_sent_once_and_waited_for_until_the_steps_timeout(
    workspace: RunningEmulator, rollouts: Callable[..., Rollout]
) -> None:
    core, _, traffic = rollouts(deploy_timeout_s=0.5)
    before = created(workspace)
    workspace.faults.update({"fail_operations": ["CreateModelDeployment"], "fail_next": 1})
    said = Recorder()

    failed = deploy(core, said)

    assert not failed.ok
    assert traffic.count("POST", "/deployments") == 1  # a 5xx may have been done: never resent
    assert "waiting up to 0.5 s for it to show up" in said.text
    assert "it was sent once and not again" in failed.text
    assert _grown(before, created(workspace))["model_deployments"] == 0

    again = deploy(core, Recorder())  # a later try looks, finds nothing, creates once

    assert again.ok, again.text
    assert traffic.count("POST", "/deployments") == 2
    assert _grown(before, created(workspace))["model_deployments"] == 1


def test_a_create_failing_every_time_is_sent_once_naming_what_it_could_not_create(
    workspace: RunningEmulator, rollouts: Callable[..., Rollout]
) -> None:
    core, _, traffic = rollouts(build_timeout_s=0.3)
    workspace.faults.update({"fail_operations": ["CreateModelBuild"], "fail_next": 100})

    outcome = deploy(core, Recorder())

    assert not outcome.ok
    assert "could not create a build of iris v1: CML did not say whether it did" in outcome.text
    assert traffic.count("POST", "/builds") == 1
    assert created(workspace)["model_builds"] == 0


# -- a slow gateway: the create is held past the client's timeout, then done -----------------

# 35, 45 and 120 s behind a gateway, a client giving up at 30 s and, before, looking for 10 s:
# all a hundred times shorter, so the test takes seconds
SCALE = 0.01
HOLDS = {"35 s": 35 * SCALE, "45 s": 45 * SCALE, "120 s": 120 * SCALE}


def _held_targets(
    kind: str, workspace: RunningEmulator, request: pytest.FixtureRequest, **environment: Any
) -> tuple[CMLTarget, Sending]:
    """A target of our client or of cmlapi giving up on an answer after 30 s (scaled)."""
    env = cml_environment(workspace.url, **environment)
    options: dict[str, Any] = {
        "poll_initial_s": 0.005,
        "poll_max_s": 10 * SCALE,  # the old look-up lasted the longest poll: 10 s
        "stop_timeout_s": 5,
        "smoke_timeout_s": 5,
    }
    traffic = Sending()
    if kind == "builtin":
        target = CMLTarget.connect(
            env=env,
            api_key=API_KEY,
            transport=traffic,
            timeout=30 * SCALE,
            backoff=0.002,
            **options,
        )
        return target, traffic
    request.getfixturevalue("cmlapi")
    calls = CallCounter()
    client = CMLServiceAdapter.connect(
        url=env.url, api_key=API_KEY, calls=calls, timeout=30 * SCALE, backoff=0.002
    )
    return CMLTarget(env=env, client=client, api_key=API_KEY, calls=calls, **options), traffic


def _posts(workspace: RunningEmulator, before: dict[str, int]) -> int:
    return _grown(before, created(workspace))["model_deployments"]


@pytest.mark.parametrize("kind", ["builtin", "cmlapi"])
@pytest.mark.parametrize("hold", list(HOLDS.values()), ids=list(HOLDS))
def test_a_create_a_slow_gateway_holds_past_the_timeout_is_sent_once(
    kind: str,
    hold: float,
    workspace: RunningEmulator,
    tmp_path: Path,
    registry_uri: str,
    request: pytest.FixtureRequest,
) -> None:
    target, _ = _held_targets(kind, workspace, request)
    core = make_core(tmp_path / "state", registry_uri, target)
    try:
        assert deploy(core, Recorder()).ok  # the model exists: v2 is built, then deployed
        before = created(workspace)
        workspace.faults.update(
            {"hold_next": 1, "hold_operations": ["CreateModelDeployment"], "hold_s": hold}
        )
        said = Recorder()

        outcome = deploy(core, said, version=2)

        assert outcome.ok, outcome.text
        assert workspace.faults.hold_next == 0
        assert _posts(workspace, before) == 1  # sent once, done once
        assert "CML did not say whether it created a deployment of iris v2" in said.text
        assert "a create whose outcome is unknown is not sent again" in said.text
        assert "CML had created a deployment of iris v2: using it" in said.text
        health = target.health(EndpointRef("dev", "iris"))
        assert health.up and health.deployment == outcome_deployment(core, outcome)
    finally:
        core.close()


@pytest.mark.parametrize("kind", ["builtin", "cmlapi"])
def test_a_create_held_past_the_steps_timeout_fails_the_step_and_is_never_repeated(
    kind: str,
    workspace: RunningEmulator,
    tmp_path: Path,
    registry_uri: str,
    request: pytest.FixtureRequest,
) -> None:
    target, _ = _held_targets(kind, workspace, request, deploy_timeout_s=60 * SCALE)
    core = make_core(tmp_path / "state", registry_uri, target)
    try:
        before = created(workspace)
        hold = 120 * SCALE
        workspace.faults.update(
            {"hold_next": 1, "hold_operations": ["CreateModelDeployment"], "hold_s": hold}
        )

        outcome = deploy(core, Recorder())

        assert not outcome.ok
        assert "could not create a deployment of iris v1" in outcome.text
        assert "it was sent once and not again" in outcome.text
        deadline = time.monotonic() + 10
        while _posts(workspace, before) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the gateway passes the held create on at last
        time.sleep(5 * SCALE)
        assert _posts(workspace, before) == 1
    finally:
        core.close()


def outcome_deployment(core: Core, outcome: Outcome) -> str:
    assert outcome.operation
    op = core.deployer.repos.operations.get(outcome.operation)
    assert op is not None
    return str(op.remote["cml_deployment_id"])


def test_a_resumed_step_finding_two_deployments_of_its_own_keeps_one_and_names_the_other(
    workspace: RunningEmulator, rollout: Rollout, registry_uri: str
) -> None:
    core, target, _ = rollout
    assert deploy(core, Recorder()).ok
    admin = CMLClient(base_url=workspace.url, api_key=API_KEY)
    try:
        [model] = admin.list_models(PROJECT_ID, search_filter={"name": "iris@dev"}).models
        [build] = admin.list_model_builds(PROJECT_ID, model.id or "").model_builds
        # what a bot that died mid-create and a gateway that passed its create on late leave
        body = CreateModelDeploymentRequest(
            cpu=1, memory=2, environment={DEPLOYMENT_TAG: "op-42-start"}
        )
        first, second = (
            admin.create_model_deployment(body, PROJECT_ID, model.id or "", build.id or "")
            for _ in range(2)
        )
        registry = Registry(tracking_uri=registry_uri)
        mv = registry.resolve("iris", version=1)
        said: list[str] = []
        step = Step(say=said.append, remember=lambda **_ids: None)
        built = Built(ref=build.id or "", example=None)

        started = target.start(
            EndpointRef("dev", "iris"),
            mv,
            built,
            Resources(cpu=1, memory_mb=2048, replicas=1),
            "op-42-start",
            step,
        )

        assert started.deployment == first.id  # the oldest is kept
        told = " ".join(said)
        assert f"keeping {short(first.id)}, stopping {short(second.id)}" in told
        gone = admin.get_model_deployment(
            PROJECT_ID, model.id or "", build.id or "", second.id or ""
        )
        assert deployment_status(gone.status) in ("stopping", "stopped")
    finally:
        admin.close()


# -- the HTTP layer ------------------------------------------------------------------------


def test_a_create_answered_5xx_after_its_work_is_sent_once(workspace: RunningEmulator) -> None:
    traffic = RecordingTransport()
    workspace.faults.update({"lose_reply_operations": ["CreateModel"], "lose_reply_next": 1})
    body = CreateModelRequest(project_id=PROJECT_ID, name="once", disable_authentication=True)
    with CMLClient(
        base_url=workspace.url, api_key=API_KEY, transport=traffic, retries=3, backoff=0.001
    ) as client:
        with pytest.raises(CMLOutcomeUnknown) as unknown:
            client.create_model(body, PROJECT_ID)
        listed = client.list_models(PROJECT_ID, search_filter={"name": "once"}).models

    assert unknown.value.status_code == 503
    assert "did not say whether POST" in str(unknown.value) and API_KEY not in str(unknown.value)
    assert [e.status for e in traffic.exchanges] == [503, 200]
    assert [m.name for m in listed] == ["once"]


def test_a_create_that_never_connected_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    body = CreateModelRequest(project_id=PROJECT_ID, name="never")
    with (
        CMLClient(
            base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, retries=2, backoff=0.001
        ) as client,
        pytest.raises(CMLUnreachable, match="3 tries"),
    ):
        client.create_model(body, PROJECT_ID)


def test_lost_reply_switches_are_checked(workspace: RunningEmulator) -> None:
    url = f"{workspace.url}/_emulator/faults"
    bad_how = httpx.post(url, json={"lose_reply_how": "explode"}, timeout=10)
    bad_op = httpx.post(url, json={"lose_reply_operations": ["CreateThing"]}, timeout=10)
    bad_hold = httpx.post(url, json={"hold_operations": ["CreateThing"]}, timeout=10)

    assert bad_how.status_code == 400 and "lose_reply_how" in bad_how.json()["error"]
    assert bad_op.status_code == 400 and "CreateThing" in bad_op.json()["error"]
    assert bad_hold.status_code == 400 and "hold_operations" in bad_hold.json()["error"]


@pytest.mark.parametrize("kind", ["builtin", "cmlapi"])
def test_a_resumed_step_waits_for_the_create_its_first_run_sent_instead_of_sending_another(
    kind: str,
    workspace: RunningEmulator,
    tmp_path: Path,
    registry_uri: str,
    request: pytest.FixtureRequest,
) -> None:
    first, _ = _held_targets(kind, workspace, request, deploy_timeout_s=40 * SCALE)
    ep, registry = EndpointRef("dev", "iris"), Registry(tracking_uri=registry_uri)
    mv = registry.resolve("iris", version=1)
    built = first.build(ep, mv, RegistrySource(registry), quiet_step())
    recorded: dict[str, object] = {}
    said: list[str] = []
    step = Step(say=said.append, remember=recorded.update, recall=recorded.get)
    resources = Resources(cpu=1, memory_mb=2048, replicas=1)
    before = created(workspace)
    workspace.faults.update(
        {"hold_next": 1, "hold_operations": ["CreateModelDeployment"], "hold_s": 200 * SCALE}
    )
    # the first run gives up (its step's timeout) while the gateway still holds its create,
    # as a bot killed then would have; the restarted bot resumes the step
    with pytest.raises(CMLOutcomeUnknown):
        first.start(ep, mv, built, resources, "op-7-start", step)
    first.close()
    restarted, _ = _held_targets(kind, workspace, request, deploy_timeout_s=30)

    try:
        started = restarted.start(ep, mv, built, resources, "op-7-start", step)
    finally:
        restarted.close()

    assert _posts(workspace, before) == 1  # the held create, and no other
    told = " ".join(said)
    assert "was asked of CML before the bot restarted" in told and "not sent again" in told
    assert started.deployment
