"""kill -9 of the bot in the middle of a rollout, for real: `chatops run` in HTTP mode (a front
process and its worker) is killed with SIGKILL during a build or a deploy, then started again.
The operation resumes from the remote ids its steps recorded (no second build, no second
deployment), finishes, and its Slack thread, the same one, gets the final message."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.scenarios.slack.conftest import (
    OPS,
    post_command,
)
from tests.scenarios.slack.crash_support import (
    LOAD_S,
    SETOSA,
    Bot,
    Op,
    assert_no_secret,
    assert_one_thread,
    crash_and_resume,
    serving_processes,
)
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["tests.scenarios.slack.crash_support"]


def test_killed_during_the_deploy_on_local_resumes_the_same_deployment(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], slow_iris_uri: str
) -> None:
    bot = make_bot({"name": "dev"}, tracking_uri=slow_iris_uri, SLOW_IRIS_LOAD_S=str(LOAD_S))
    logs = bot.state_dir / "logs" / "dev" / "iris"

    def host_is_starting_it(op: Op) -> bool:
        # the endpoint host has begun the deployment: its model server is loading the model
        dep = op["remote"].get("deployment")
        return bool(dep) and (logs / f"{dep}.log").exists()

    killed, ended = crash_and_resume(
        bot, slack_api, step="start", when=host_is_starting_it, what="the host starting it"
    )
    deployment = killed["remote"]["deployment"]

    # the deployment the killed bot started serves: no second one was started
    assert ended["remote"]["deployment"] == deployment
    (endpoint,) = bot.rows("endpoints")
    assert endpoint["deployment"] == deployment
    assert sorted(p.name for p in logs.glob("dep-*.log")) == [f"{deployment}.log"]
    # its host and one model server (1 cpu, 1 replica): none left over from the first life
    assert len(serving_processes(httpx.URL(endpoint["url"]).port or 0)) == 2
    answer = httpx.post(endpoint["url"], json=SETOSA, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [0]  # setosa

    parent = assert_one_thread(slack_api, ended)
    assert endpoint["url"] in parent.text
    assert_no_secret(bot, slack_api)


def test_a_deploy_acked_while_every_worker_was_busy_runs_after_the_bot_is_killed(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], slow_iris_uri: str
) -> None:
    bot = make_bot(
        {"name": "dev"},
        tracking_uri=slow_iris_uri,
        more=({"name": "prod"},),
        SLOW_IRIS_LOAD_S=str(LOAD_S),
        CHATOPS_SLACK_WORKERS="1",  # one deploy at a time: the second waits its turn
    )
    bot.start()
    assert post_command(bot.events_url, slack_api, "/deploy", "iris v1").status_code == 200
    bot.wait_for_op(lambda op: op["step"] == "start", 90, "the dev deploy starting")
    acked = post_command(bot.events_url, slack_api, "/deploy", "iris v1 to prod")
    assert acked.status_code == 200
    bot.kill9()
    # the prod deploy was acknowledged, never begun: its job waits in the intake file
    assert [op["env"] for op in bot.operations()] == ["dev"]
    waiting = [j for j in bot.rows("jobs") if j["state"] == "queued"]
    assert [json.loads(j["payload"])["text"] for j in waiting] == ["iris v1 to prod"]

    bot.start()

    def ended() -> bool:
        ops = bot.operations()
        return sorted((op["env"], op["state"]) for op in ops) == [
            ("dev", "succeeded"),
            ("prod", "succeeded"),
        ]

    bot.wait_until(ended, 120, "both deploys ended")
    # one operation each: the dev job, taken again after the kill, made no second one
    ops = {op["env"]: op for op in bot.operations()}
    assert len(bot.operations()) == 2 and ops["dev"]["attempts"] == 2
    # prod's job ran once; dev's was taken again, found its operation, and ended
    bot.wait_until(
        lambda: (
            sorted((j["state"], j["attempts"]) for j in bot.rows("jobs"))
            == [("done", 1), ("done", 2)]
        ),
        10,
        "both jobs ended",
    )
    bot.wait_until(lambda: len(bot.rows("audit")) == 2, 10, "both deploys audited")
    audit = sorted((a["env"], a["action"], a["outcome"]) for a in bot.rows("audit"))
    assert audit == [("dev", "deploy", "succeeded"), ("prod", "deploy", "succeeded")]
    slack_api.wait_for(
        lambda api: any(
            "iris v1 to prod" in m.text and ":white_check_mark:" in m.text
            for m in api.messages(OPS)
        ),
        timeout=30,
    )
    assert_no_secret(bot, slack_api)


# -- CML -----------------------------------------------------------------------------------------
