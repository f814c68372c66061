"""MLflow's own `mlflow deployments` CLI and `get_deploy_client("chatops:/<env>")` driving a
running bot (`chatops run --mode http`, a worker process, the Slack Web API emulator) as the
users whose personal tokens they carry."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import ALICE, OPS, bot_environment, post_command
from tests.slack_api.emulator import SlackEmulator

ROOT = Path(__file__).parents[3]
BOB, CAROL = "U0BOB", "U0CAROL"  # a developer of prod; a viewer
SECRET = re.compile(r"chatops_[A-Za-z0-9_-]{44,}")
IRIS = [
    {
        "sepal length (cm)": 5.1,
        "sepal width (cm)": 3.5,
        "petal length (cm)": 1.4,
        "petal width (cm)": 0.2,
    }
]


@dataclass
class Bot:
    url: str
    api: SlackEmulator
    log: Path
    env: dict[str, str]

    def token(self, user: str) -> str:
        """A personal token as its owner gets it: `/mlops token` in Slack, shown once."""
        before = len(self.api.responses)
        post_command(f"{self.url}/slack/events", self.api, "/mlops", "token", user=user)
        self.api.wait_for(lambda api: len(api.responses) > before, timeout=60)
        (secret,) = SECRET.findall(self.api.responses[before].body["text"])
        return secret

    def mlflow(self, token: str, *args: str) -> subprocess.CompletedProcess[str]:
        """MLflow's own CLI, the plugin found by its entry point."""
        env = {**os.environ, "CHATOPS_URL": self.url, "CHATOPS_TOKEN": token}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        return subprocess.run(
            [sys.executable, "-m", "mlflow", "deployments", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture
def bot(slack_api: SlackEmulator, registry_uri: str, tmp_path: Path) -> Iterator[Bot]:
    for user, name in ((BOB, "bob"), (CAROL, "carol")):
        slack_api.add_user(user, name=name)
    low, high = free_port_range()
    roles = {"admins": [ALICE], "developers": [BOB]}
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        environments=[
            {"name": "dev", "port_range": [low + 1, low + 9], **roles},
            {"name": "prod", "port_range": [low + 10, high], **roles},
        ],
        CHATOPS_API_CHANNEL=OPS,
    )
    log = tmp_path / "bot.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{low}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Bot(url=url, api=slack_api, log=log, env=env)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"],
            env=env,
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


@pytest.mark.timeout(600)  # a bot, its worker and eight MLflow CLI processes on busy cores
def test_mlflows_cli_and_client_deploy_through_the_bot_as_their_users(
    bot: Bot, tmp_path: Path
) -> None:
    alice, bob, carol = bot.token(ALICE), bot.token(BOB), bot.token(CAROL)

    created = bot.mlflow(
        alice, "create", "-t", "chatops:/dev", "--name", "iris", "-m", "models:/iris/1"
    )
    assert created.returncode == 0, created.stderr
    assert "python_function deployment iris is created" in created.stdout
    # the admin's deploy reported in its Slack thread, as a typed one does
    assert any("is deploying iris v1 to dev" in m.text for m in bot.api.messages(OPS))

    listed = bot.mlflow(carol, "list", "-t", "chatops:/dev")  # a viewer may look
    assert listed.returncode == 0 and "'name': 'iris'" in listed.stdout, listed.stderr
    got = bot.mlflow(alice, "get", "-t", "chatops:/dev", "--name", "iris")
    assert "version: 1" in got.stdout and "state: up" in got.stdout, got.stderr

    payload = tmp_path / "input.json"
    payload.write_text(json.dumps(IRIS))
    predicted = bot.mlflow(
        alice, "predict", "-t", "chatops:/dev", "--name", "iris", "--input-path", str(payload)
    )
    assert predicted.returncode == 0 and "predictions" in predicted.stdout, predicted.stderr

    # a viewer is refused with Slack's own words; a forged token opens nothing
    refused = bot.mlflow(
        carol, "create", "-t", "chatops:/dev", "--name", "iris", "-m", "models:/iris/2"
    )
    assert refused.returncode != 0 and "/promote iris v2 to dev" in refused.stderr
    forged = bot.mlflow(alice[:-2] + "zz", "list", "-t", "chatops:/dev")
    assert forged.returncode != 0 and "did not take CHATOPS_TOKEN" in forged.stderr

    # a developer's create in prod is a promotion request in Slack, pending
    env = {**os.environ, "CHATOPS_URL": bot.url, "CHATOPS_TOKEN": bob}
    script = (
        "from mlflow.deployments import get_deploy_client\n"
        "import json\n"
        "c = get_deploy_client('chatops:/prod')\n"
        "print(json.dumps(c.create_deployment('iris', 'models:/iris/2')))\n"
    )
    env["PYTHONPATH"] = str(ROOT)
    asked = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert asked.returncode == 0, asked.stderr
    request = json.loads(asked.stdout)
    assert request["state"] == "pending" and request["request"].startswith("apr-")
    assert "Promotion request" in asked.stderr and "is pending" in asked.stderr
    assert any(request["request"] in str(m.blocks) for m in bot.api.messages(OPS))

    deleted = bot.mlflow(alice, "delete", "-t", "chatops:/dev", "--name", "iris")
    assert deleted.returncode == 0 and "Deployment iris is deleted" in deleted.stdout, (
        deleted.stderr
    )

    text = bot.log.read_text()
    for secret in (alice, bob, carol):
        assert secret not in text
