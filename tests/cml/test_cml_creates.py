"""No create runs twice: when CML does the work of a create and its reply is lost (a 5xx or
429 after the work, the connection dropped halfway through the answer, no answer within the
client's timeout), a rollout looks up what it asked for and ends with exactly one registered
version, model, build and deployment, counted by the emulator's admin view."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID, RecordingTransport
from conftest_target import cml_environment, make_core
from mlflow import MlflowClient

from core.events import Outcome
from core.roles import Actor
from core.runtime import Core
from core.targets.base import EndpointRef
from core.targets.cml import CMLClient, CMLUnreachable
from core.targets.cml.errors import CMLOutcomeUnknown
from core.targets.cml.models import CreateModelRequest
from core.targets.cml.target import CMLTarget
from emulators.cml import RunningEmulator, start_emulator
from tests.conftest import Recorder

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


@pytest.fixture
def rollout(
    tmp_path: Path, registry_uri: str, workspace: RunningEmulator
) -> Iterator[tuple[Core, CMLTarget, Sending]]:
    traffic = Sending()
    target = CMLTarget.connect(
        env=cml_environment(workspace.url),
        api_key=API_KEY,
        transport=traffic,
        timeout=1.0,
        retries=4,
        backoff=0.002,
        poll_initial_s=0.005,
        poll_max_s=0.05,
        stop_timeout_s=5,
        smoke_timeout_s=5,
    )
    core = make_core(tmp_path / "state", registry_uri, target)
    yield core, target, traffic
    core.close()


def created(workspace: RunningEmulator) -> dict[str, int]:
    answer = httpx.get(f"{workspace.url}/_emulator/created", timeout=10)
    assert answer.status_code == 200, answer.text
    counts: dict[str, int] = answer.json()
    return counts


def deploy(core: Core, said: Recorder) -> Outcome:
    result = core.deployer.deploy(
        model="iris", version=1, env="dev", actor=ADMIN, command="/deploy iris v1", reporter=said
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


def test_a_create_refused_before_the_work_is_sent_again_once_nothing_is_found(
    workspace: RunningEmulator, rollout: tuple[Core, CMLTarget, Sending]
) -> None:
    core, _, traffic = rollout
    before = created(workspace)
    workspace.faults.update({"fail_operations": ["CreateModelDeployment"], "fail_next": 2})

    outcome = deploy(core, Recorder())

    assert outcome.ok, outcome.text
    assert _grown(before, created(workspace)) == ONE_OF_EACH
    assert traffic.count("POST", "/deployments") == 3  # two refused, looked up, the third made


def test_a_create_failing_every_time_gives_up_naming_what_it_could_not_create(
    workspace: RunningEmulator, rollout: tuple[Core, CMLTarget, Sending]
) -> None:
    core, _, traffic = rollout
    workspace.faults.update({"fail_operations": ["CreateModelBuild"], "fail_next": 100})

    outcome = deploy(core, Recorder())

    assert not outcome.ok
    assert "could not create a build of iris v1: 3 tries went unanswered" in outcome.text
    assert traffic.count("POST", "/builds") == 3
    assert created(workspace)["model_builds"] == 0


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

    assert bad_how.status_code == 400 and "lose_reply_how" in bad_how.json()["error"]
    assert bad_op.status_code == 400 and "CreateThing" in bad_op.json()["error"]
