"""No secret ever reaches a Slack message, a log line or an error text."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.slack.app import EVENTS_PATH, SlackFront
from bot.slack.settings import SlackSettings
from core.config import Environment, Limits
from core.resources import Resources
from core.runtime import Runtime
from core.targets.local.target import Zygote
from emulators.cml import RunningEmulator, start_emulator
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    RANDOM,
    SIGNING_SECRET,
    RunningFront,
)
from tests.slack_api.emulator import SlackEmulator


def test_no_secret_in_anything_the_flows_produce(
    running_front: RunningFront, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        running_front.post("/deploy", "iris v1")  # success
        running_front.post("/deploy", "crasher v1")  # failure with a log tail
        running_front.post("/scale", "iris 99cpu")  # refusal
        running_front.post("/deploy", "iris v2", channel=RANDOM)  # not in the channel: DM
        running_front.post("/mlops", "status public")
        running_front.post("/scale", "iris 4")  # usage error
        running_front.post("/deploy", "iris v1", secret="forged")  # 401
        running_front.drain()

    api = running_front.api
    produced = [
        *(json.dumps(c.args) for c in api.calls),
        *(json.dumps(r.body) for r in api.responses),
        *(caplog.text.splitlines()),
        *(
            e.message
            for op in running_front.runtime.repos.operations.recent()
            for e in running_front.runtime.repos.operations.events(op.id)
        ),
        *(a.detail + a.command for a in running_front.runtime.repos.audit.entries(limit=100)),
    ]
    # the flows did run, and log
    sent = " ".join(json.dumps(c.args) for c in api.calls)
    assert "iris v1 is live" in sent
    assert "crasher v1" in sent
    assert caplog.records
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        leaks = [text for text in produced if secret in text]
        assert leaks == []


CML_KEY = "cmlkey.0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f"
CML_KEY_VAR = "CHATOPS_TEST_HYGIENE_CML_KEY"


@pytest.fixture
def cml_front(
    tmp_path: Path,
    registry_uri: str,
    zygote: Zygote,
    slack_settings: SlackSettings,
    slack_api: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[RunningFront, RunningEmulator]]:
    """The Slack front over a bot whose `prod` is a CML workspace (the emulator)."""
    emulator = start_emulator(
        tracking_uri=registry_uri, api_key=CML_KEY, projects=[{"name": "demo", "id": "p-1"}]
    )
    monkeypatch.setenv(CML_KEY_VAR, CML_KEY)
    settings = make_settings(tmp_path / "state", registry_uri)
    settings.environments[0].admins = [ALICE]
    settings.environments[1] = Environment(
        name="prod",
        target="cml",
        url=emulator.url,
        api_key_env=CML_KEY_VAR,
        project_id="p-1",
        admins=[ALICE],
        default=Resources(cpu=1, memory_mb=2048, replicas=1),
        limits=Limits(cpu=4, memory_mb=8192, replicas=3),
        build_timeout_s=30,
        deploy_timeout_s=30,
    )
    runtime = Runtime(settings, zygote=zygote)
    front = SlackFront(slack_settings, runtime=runtime)
    server = front.http_server(host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        yield (
            RunningFront(
                front=front,
                url=f"http://127.0.0.1:{server.port}{EVENTS_PATH}",
                api=slack_api,
                runtime=runtime,
            ),
            emulator,
        )
    finally:
        server.close()
        front.close()
        runtime.close()
        emulator.stop()


def test_no_cml_key_or_model_access_key_in_anything_the_cml_flows_produce(
    cml_front: tuple[RunningFront, RunningEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    front, emulator = cml_front
    with caplog.at_level(logging.DEBUG):
        front.post("/deploy", "iris v1 to prod")  # success, through builds and deployments
        front.drain()
        front.post("/scale", "iris 2cpu in prod")  # a second deployment
        front.drain()
        front.post("/mlops", "status public")
        emulator.faults.update({"fail_builds": True})
        front.post("/deploy", "iris v2 to prod")  # a failed build: log tail, what serves
        front.drain()
        emulator.faults.update({"fail_builds": False, "fail_next": 50})
        front.post("/deploy", "iris v1 to prod")  # the workspace answers 503s
        front.drain()
        emulator.faults.update({"fail_next": 0})
        front.post("/mlops", "status iris in prod")
        front.drain(timeout=120)

    repos = front.runtime.repos
    models = emulator.emulator.workspace.models.values()
    access_keys = [str(m["access_key"]) for m in models if m.get("access_key")]
    assert access_keys, "the flows made no CML model"
    produced = [
        *(json.dumps(c.args) for c in front.api.calls),
        *(json.dumps(r.body) for r in front.api.responses),
        *(caplog.text.splitlines()),
        *(f"{op.error} {json.dumps(op.remote)}" for op in repos.operations.recent()),
        *(e.message for op in repos.operations.recent() for e in repos.operations.events(op.id)),
        *(a.detail + a.command for a in repos.audit.entries(limit=100)),
    ]
    outcomes = [a.outcome for a in repos.audit.entries(limit=100) if a.action == "deploy"]
    assert "succeeded" in outcomes and "failed" in outcomes  # the flows did run
    for secret in (CML_KEY, *access_keys, BOT_TOKEN, SIGNING_SECRET):
        assert [text for text in produced if secret in text] == []
