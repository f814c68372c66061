"""`/mlops status` tells an admin what the bot's readiness check found wrong in what they
administer, with what to do, and tells nobody else: against the CML emulator over HTTP, a
real MLflow registry and the Slack front answering signed requests."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.console.app import ConsoleApp
from core.config import CONSOLE_USER, Environment, Settings
from core.oncall.checks.cache import EVERY_S, Checked
from core.runtime import Runtime
from emulators.cml import RunningEmulator, start_emulator
from emulators.cml.workspace import DEFAULT_RUNTIMES
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, RunningFront
from tests.slack_api.emulator import SlackEmulator

BOB, CAROL = "U0BOB", "U0CAROL"
PROJECT = "status-project"
DEV_KEY, PROD_KEY = "CHATOPS_TEST_STATUS_DEV_KEY", "CHATOPS_TEST_STATUS_PROD_KEY"
RUNTIME = str(DEFAULT_RUNTIMES[-1]["image_identifier"])
TYPO = RUNTIME.replace("ml-runtime", "ml-runtme")
WRONG_KEY = "wrong-" + secrets.token_urlsafe(18)


@pytest.fixture
def workspace(registry_uri: str) -> Iterator[RunningEmulator]:
    running = start_emulator(
        tracking_uri=registry_uri,
        api_key=secrets.token_urlsafe(24),
        projects=[{"name": "demo", "id": PROJECT}],
    )
    yield running
    running.stop()


def _cml(name: str, workspace: RunningEmulator, key_var: str, runtime: str) -> Environment:
    return Environment.model_validate(
        {
            "name": name,
            "target": "cml",
            "url": workspace.url,
            "api_key_env": key_var,
            "project_id": PROJECT,
            "runtime_identifier": runtime,
            "admins": [ALICE],
            "developers": [BOB],
        }
    )


@pytest.fixture
def settings(
    tmp_path: Path, registry_uri: str, workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """dev: a key the workspace refuses; prod: a typo in the runtime. Alice administers both,
    Carol prod only; Bob develops in both."""
    monkeypatch.setenv(DEV_KEY, WRONG_KEY)
    monkeypatch.setenv(PROD_KEY, workspace.api_key)
    dev = _cml("dev", workspace, DEV_KEY, RUNTIME)
    prod = _cml("prod", workspace, PROD_KEY, TYPO)
    prod.admins = [ALICE, CAROL]
    return make_settings(tmp_path / "state", registry_uri, environments=[dev, prod])


@pytest.fixture(autouse=True)
def people(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")
    slack_api.add_user(CAROL, name="carol")


def checked(runtime: Runtime, *, newer_than: Any = None) -> Checked:
    """What the bot's own background check found (started as `warm_up` starts it)."""
    runtime.readiness.start()
    found = runtime.readiness.wait(60, newer_than=newer_than)
    assert found is not None, "the readiness check did not finish"
    return found


def status_of(front: RunningFront, user: str, text: str = "status") -> dict[str, Any]:
    before = len(front.api.responses)
    front.post("/mlops", text, user=user)
    front.api.wait_for(lambda api: len(api.responses) > before)
    return front.api.responses[-1].body


def shown(body: dict[str, Any]) -> str:
    return json.dumps([body.get("text"), body.get("blocks")], ensure_ascii=False)


def test_an_admin_sees_each_problem_with_what_to_do_and_no_key(
    running_front: RunningFront, workspace: RunningEmulator
) -> None:
    runtime = running_front.runtime
    # asked before any check has ended: the status comes at once, with nothing added
    assert "readiness" not in shown(status_of(running_front, ALICE))
    checked(runtime)

    alice = status_of(running_front, ALICE)
    told = (alice["blocks"][-1])["text"]["text"]
    assert "found 2 problem(s) (shown to admins only)" in told
    assert (
        f"*env dev* · API key: ${DEV_KEY} was refused (HTTP 401): wrong, expired or revoked"
        " → create an API v2 key in the workspace (User Settings &gt; API Keys)" in told
    )
    assert f"*env prod* · runtime: {TYPO} is not among the workspace's" in told
    assert f"closest: {RUNTIME}" in told
    assert "readiness check" in alice["text"]  # the notification says it too
    # an admin of prod alone is told of prod only
    carol = shown(status_of(running_front, CAROL))
    assert "env prod" in carol and "env dev" not in carol and "found 1 problem(s)" in carol
    # a developer and a viewer are never told; nor is the channel, even by an admin
    for user in (BOB, "U0NOBODY"):
        assert "readiness" not in shown(status_of(running_front, user))
    public = status_of(running_front, ALICE, "status public")
    assert public["response_type"] == "in_channel" and "readiness" not in shown(public)
    # asked about one environment: that environment's problems only
    dev_only = shown(status_of(running_front, ALICE, "status in dev"))
    assert "env dev" in dev_only and "env prod" not in dev_only

    everything = json.dumps([c.args for c in running_front.api.calls]) + json.dumps(
        [r.body for r in running_front.api.responses]
    )
    for key in (WRONG_KEY, workspace.api_key):
        assert key not in everything


def test_a_fixed_problem_leaves_the_status_after_the_next_check_never_while_asked(
    running_front: RunningFront, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = running_front.runtime
    first = checked(runtime)
    # the key is put right in its variable; the cached result is still what status tells
    monkeypatch.setenv(DEV_KEY, os.environ[PROD_KEY])
    assert "*env dev* · API key" in shown(status_of(running_front, ALICE))
    # a few minutes later asking starts a new check in the background; its result is told next
    clock.advance(EVERY_S + 1)
    still = shown(status_of(running_front, ALICE))
    assert "*env dev* · API key" in still
    again = runtime.readiness.wait(60, newer_than=first.at)
    assert again is not None
    now = shown(status_of(running_front, ALICE))
    assert "env dev" not in now and "*env prod* · runtime" in now


def test_when_everything_is_ready_nothing_is_added(
    running_front: RunningFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = running_front.runtime
    monkeypatch.setenv(DEV_KEY, os.environ[PROD_KEY])
    runtime.settings.environments[1].runtime_identifier = RUNTIME
    assert checked(runtime).report.ok
    body = status_of(running_front, ALICE)
    assert "readiness" not in shown(body)
    assert body["blocks"] == [{"type": "section", "text": body["blocks"][0]["text"]}]


def test_the_console_shows_an_admin_the_problems_and_a_developer_nothing(
    settings: Settings, zygote: Any, clock: FakeClock, workspace: RunningEmulator
) -> None:
    for env in settings.environments:
        env.admins = [CONSOLE_USER]
    runtime = Runtime(settings, zygote=zygote, clock=clock)
    try:
        checked(runtime)
        out = Console(record=True, width=400)
        ConsoleApp(runtime, actor="ops", console=out).run_line("/status")
        text = out.export_text()
        assert "found 2 problem(s) (shown to admins only)" in text
        assert f"${DEV_KEY} was refused (HTTP 401)" in text
        assert "create an API v2 key in the workspace" in text
        assert f"closest: {RUNTIME}" in text
        for env in settings.environments:
            env.admins, env.developers = [ALICE], [CONSOLE_USER]
        out = Console(record=True, width=400)
        ConsoleApp(runtime, actor="dev", console=out).run_line("/status")
        text = out.export_text()
        assert "No endpoints yet" in text and "problem" not in text
        for key in (WRONG_KEY, workspace.api_key):
            assert key not in text
    finally:
        runtime.close()
