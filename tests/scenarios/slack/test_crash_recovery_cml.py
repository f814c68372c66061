"""kill -9 of the bot during a CML build or deploy: the resumed operation reuses the build
and the deployment it had asked for, and CML ends up serving the version once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from emulators.cml import RunningEmulator
from tests.scenarios.slack.crash_support import (
    CML_KEY_VAR,
    CML_PROJECT,
    SETOSA,
    Bot,
    Op,
    assert_no_secret,
    assert_one_thread,
    cml_environment,
    crash_and_resume,
)
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["tests.scenarios.slack.crash_support"]


def cml_state(cml: RunningEmulator) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Models, builds and deployments of the project, as the API v2 lists them."""
    api = httpx.Client(
        base_url=f"{cml.url}/api/v2/projects/{CML_PROJECT}",
        headers={"Authorization": f"Bearer {cml.api_key}"},
        params={"page_size": 100},
        timeout=30,
    )
    with api:
        models = api.get("/models").raise_for_status().json()["models"]
        builds = [
            b
            for m in models
            for b in api.get(f"/models/{m['id']}/builds").raise_for_status().json()["model_builds"]
        ]
        deployments = [
            d
            for b in builds
            for d in api.get(f"/models/{b['model_id']}/builds/{b['id']}/deployments")
            .raise_for_status()
            .json()["model_deployments"]
        ]
    return models, builds, deployments


def assert_serves_once(cml: RunningEmulator, bot: Bot, ended: Op) -> None:
    """One model, one build and one deployment of it, the ones the operation recorded, and
    the endpoint answers through the model service from that deployment."""
    models, builds, deployments = cml_state(cml)
    assert [m["name"] for m in models] == ["iris@dev"]
    assert [(b["id"], b["status"]) for b in builds] == [(ended["remote"]["build_id"], "built")]
    assert [(d["id"], d["status"]) for d in deployments] == [
        (ended["remote"]["cml_deployment_id"], "deployed")
    ]
    (endpoint,) = bot.rows("endpoints")
    assert endpoint["deployment"] == deployments[0]["id"]
    answer = httpx.post(
        endpoint["url"],
        json={"accessKey": models[0]["access_key"], "request": SETOSA},
        headers={"Authorization": f"Bearer {cml.api_key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["model_deployment_crn"] == deployments[0]["crn"]
    assert response["prediction"] == [0]  # setosa


def test_killed_during_the_build_on_cml_reuses_the_build(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bot does
    make_bot: Callable[..., Bot],
    registry_uri: str,
) -> None:
    cml.timings.build_pending = 3.0
    cml.timings.build_queued = 3.0
    cml.timings.build_pushing = 3.0
    cml.timings.deploy_pending = 0.5
    cml.timings.deploying = 0.5
    bot = make_bot(cml_environment(cml), tracking_uri=registry_uri, **{CML_KEY_VAR: cml.api_key})
    killed, ended = crash_and_resume(
        bot, slack_api, step="build", when=lambda op: "build_id" in op["remote"], what="a build"
    )
    assert_serves_once(cml, bot, ended)
    assert "cml_deployment_id" not in killed["remote"]
    assert ended["remote"]["build_id"] == killed["remote"]["build_id"]
    assert ended["remote"]["cml_model_id"] == killed["remote"]["cml_model_id"]
    assert_one_thread(slack_api, ended)
    assert_no_secret(bot, slack_api, cml.api_key)


def test_killed_during_the_deploy_on_cml_resumes_the_same_deployment(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bot does
    make_bot: Callable[..., Bot],
    registry_uri: str,
) -> None:
    cml.timings.deploy_pending = 2.0
    cml.timings.deploying = 4.0
    bot = make_bot(cml_environment(cml), tracking_uri=registry_uri, **{CML_KEY_VAR: cml.api_key})
    killed, ended = crash_and_resume(
        bot,
        slack_api,
        step="start",
        when=lambda op: "cml_deployment_id" in op["remote"],
        what="a CML deployment",
    )
    assert_serves_once(cml, bot, ended)
    assert ended["remote"]["cml_deployment_id"] == killed["remote"]["cml_deployment_id"]
    assert ended["remote"]["build_id"] == killed["remote"]["build_id"]
    assert ended["remote"]["deployment"] == killed["remote"]["deployment"]
    assert_one_thread(slack_api, ended)
    assert_no_secret(bot, slack_api, cml.api_key)


def created_on(cml: RunningEmulator) -> dict[str, int]:
    """What the workspace holds, as its admin view counts it."""
    counts: dict[str, int] = httpx.get(f"{cml.url}/_emulator/created", timeout=10).json()
    return counts


@pytest.mark.parametrize(
    ("operation", "step", "kind"),
    [
        ("CreateModelBuild", "build", "model_builds"),
        ("CreateModelDeployment", "start", "model_deployments"),
    ],
)
def test_killed_mid_create_on_cml_makes_one_of_each(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bot does
    make_bot: Callable[..., Bot],
    registry_uri: str,
    operation: str,
    step: str,
    kind: str,
) -> None:
    """CML did the create, its answer is held back, and the bot is killed waiting for it: the
    restarted bot finds what the killed one created instead of creating a second."""
    cml.faults.update(
        {"lose_reply_operations": [operation], "lose_reply_next": 1, "lose_reply_how": "hang"}
    )
    bot = make_bot(cml_environment(cml), tracking_uri=registry_uri, **{CML_KEY_VAR: cml.api_key})
    try:
        _, ended = crash_and_resume(
            bot,
            slack_api,
            step=step,
            when=lambda op: created_on(cml)[kind] == 1 and cml.faults.lose_reply_next == 0,
            what=f"CML to have done {operation} and held its answer",
        )
    finally:
        cml.faults.reset()  # the held answer goes (to nobody) before the workspace stops
    assert_serves_once(cml, bot, ended)
    counts = created_on(cml)
    assert (counts["models"], counts["model_builds"], counts["model_deployments"]) == (1, 1, 1)
    assert_one_thread(slack_api, ended)
    assert_no_secret(bot, slack_api, cml.api_key)


def test_killed_while_a_gateway_holds_the_deployments_create_waits_for_it(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bot does
    make_bot: Callable[..., Bot],
    registry_uri: str,
) -> None:
    """A slow gateway holds the deployment's create, the bot is killed while it waits, and
    the gateway passes the create on later: the restarted bot waits for that create (it was
    recorded as sent) instead of sending a second, and CML serves the version once."""
    cml.faults.update(
        {"hold_operations": ["CreateModelDeployment"], "hold_next": 1, "hold_s": 20.0}
    )
    bot = make_bot(cml_environment(cml), tracking_uri=registry_uri, **{CML_KEY_VAR: cml.api_key})
    try:
        _, ended = crash_and_resume(
            bot,
            slack_api,
            step="start",
            when=lambda op: cml.faults.hold_next == 0 and created_on(cml)["model_deployments"] == 0,
            what="the gateway to hold the deployment's create",
        )
    finally:
        cml.faults.reset()
    assert_serves_once(cml, bot, ended)
    assert created_on(cml)["model_deployments"] == 1
    told = " ".join(str(e["message"]) for e in bot.rows("events"))
    assert "was asked of CML before the bot restarted" in told  # said in the deploy's thread
    assert_one_thread(slack_api, ended)
    assert_no_secret(bot, slack_api, cml.api_key)
