"""Write-back survives the death of the worker running it: `chatops run` as deployed, a fail
point armed in its worker, the next worker taking the operation over. One dies after traffic
moved and before the registry was written: the one taking over writes it (and takes the tag
off the version that served before). One dies after the registry was written and that
recorded: the one taking over does not write it again. Each deploy is told in one thread,
where the write-back appears once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from core.registry.demo import create_demo_model
from tests.scenarios.slack.conftest import OPS, post_command
from tests.scenarios.slack.crash_support import Bot, Op
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["tests.scenarios.slack.crash_support"]

TAG = "chatops.dev.serving"


@pytest.fixture
def own_registry(tmp_path: Path) -> str:
    """A registry of this test's own (iris v1, v2): the bot writes to it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=tmp_path / "artifacts")
    return uri


def deploy_dying_at(bot: Bot, slack_api: SlackEmulator, points: Path, point: str, line: str) -> Op:
    """Arm `point`, ask for `line`, and the operation once the worker that took it died at
    `point` and the next one ended it."""
    before = {op["id"] for op in bot.operations()}
    (points / point).touch()
    assert post_command(bot.events_url, slack_api, "/deploy", line).status_code == 200
    bot.wait_until(lambda: not (points / point).exists(), 120, f"a worker reaching {point}")
    found: list[Op] = []

    def ended() -> bool:
        found[:] = [
            op
            for op in bot.operations()
            if op["id"] not in before and op["state"] in ("succeeded", "failed")
        ]
        return bool(found)

    bot.wait_until(ended, 120, "the operation taken over and ended")
    (op,) = found
    assert (op["state"], op["attempts"]) == ("succeeded", 2), (op, bot.text)
    return op


def thread_of(slack_api: SlackEmulator, op: Op) -> list[str]:
    """The texts of the replies in the operation's thread."""
    parent = op["reply_to"]["ts"]
    slack_api.wait_for(
        lambda api: any(
            m.ts == parent and ":white_check_mark:" in m.text for m in api.messages(OPS)
        ),
        timeout=30,
    )
    return [m.text for m in slack_api.messages(OPS) if m.thread_ts == parent]


def test_a_worker_dying_around_the_write_back_leaves_it_written_once(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], own_registry: str, tmp_path: Path
) -> None:
    points = tmp_path / "points"
    points.mkdir()
    bot = make_bot(
        {"name": "dev", "alias": "dev"}, tracking_uri=own_registry, CHATOPS_FAILPOINTS=str(points)
    )
    bot.start()
    client = MlflowClient(tracking_uri=own_registry, registry_uri=own_registry)

    # died after the switch, before the write: the worker taking over writes it
    first = deploy_dying_at(bot, slack_api, points, "operation.switched", "iris v1")
    assert str(client.get_registered_model("iris").aliases["dev"]) == "1"
    tagged = json.loads(client.get_model_version("iris", "1").tags[TAG])
    assert tagged["operation"] == first["id"]
    assert tagged["thread"] == {"front": "slack", "channel": OPS, "ts": first["reply_to"]["ts"]}
    replies = thread_of(slack_api, first)
    assert sum("@dev now names iris v1" in r for r in replies) == 1, replies
    assert sum("resumed after the bot process running it stopped" in r for r in replies) == 1

    # died after the write was made and recorded: the worker taking over does not write again
    second = deploy_dying_at(bot, slack_api, points, "registry.written", "iris v2")
    assert str(client.get_registered_model("iris").aliases["dev"]) == "2"
    assert json.loads(client.get_model_version("iris", "2").tags[TAG])["operation"] == second["id"]
    assert TAG not in client.get_model_version("iris", "1").tags
    replies = thread_of(slack_api, second)
    assert sum("@dev now names iris v2" in r for r in replies) == 1, replies

    # died after switching back to v1: the worker taking over also takes the tag off v2
    third = deploy_dying_at(bot, slack_api, points, "operation.switched", "iris v1")
    assert str(client.get_registered_model("iris").aliases["dev"]) == "1"
    assert json.loads(client.get_model_version("iris", "1").tags[TAG])["operation"] == third["id"]
    assert TAG not in client.get_model_version("iris", "2").tags
    replies = thread_of(slack_api, third)
    assert sum(f"@dev now names iris v1, tagged {TAG} (taken off v2)" in r for r in replies) == 1
    assert bot.rows("locks") == []
