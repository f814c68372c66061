"""A plan in Slack: answered to the asker alone, in blocks Slack accepts, with what users and
the registry named escaped; nothing posted in the channel, nothing changed."""

from __future__ import annotations

import json

from tests.scenarios.slack.conftest import ALICE, RunningFront


def test_a_plan_answers_the_asker_alone_and_changes_nothing(running_front: RunningFront) -> None:
    running_front.post("/deploy", "iris v1")
    running_front.drain()
    posted = len(running_front.api.calls_to("chat.postMessage"))
    operations = len(running_front.runtime.repos.operations.recent())

    running_front.post("/mlops", "plan deploy iris v2")
    running_front.post("/scale", "iris 64cpu --dry-run")
    running_front.api.wait_for(lambda api: len(api.responses) == 2)
    running_front.drain()

    # the two run at once: told apart by what they planned
    answers = {r.body["text"].split(" ")[1]: r.body for r in running_front.api.responses}
    deploy, scale = answers["deploy"], answers["scale"]
    assert deploy["response_type"] == "ephemeral"
    blocks = json.dumps(deploy["blocks"])
    assert deploy["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Plan: deploy iris v2 to dev, in place of v1"},
    }
    assert "*metrics*: accuracy 0.911 vs 0.822, +0.089" in blocks
    assert "*build*: new: iris v2 would be built on local" in blocks
    assert f"*approval*: <@{ALICE}> may deploy in dev" in blocks  # the asker, as a mention
    assert f"*admins*: <@{ALICE}>" in blocks
    assert "It would go ahead." in deploy["text"]
    assert ":no_entry: *limits* 64 cpu is over the limit of dev" in json.dumps(scale["blocks"])
    assert "It would be refused: 64 cpu is over the limit of dev" in scale["text"]

    assert len(running_front.api.calls_to("chat.postMessage")) == posted
    assert len(running_front.runtime.repos.operations.recent()) == operations
    endpoint = running_front.runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 1


def test_a_plan_with_markup_in_it_shows_it_literally(running_front: RunningFront) -> None:
    ack = running_front.post("/mlops", "plan deploy <!channel> v1").json()
    assert ack["response_type"] == "ephemeral"
    assert "`&lt;!channel&gt;` is not a valid model name" in ack["text"]
    running_front.post("/lock", "iris in dev <!here> release freeze")
    running_front.drain()
    running_front.post("/mlops", "plan deploy iris v1")
    running_front.api.wait_for(lambda api: any("Plan:" in r.body["text"] for r in api.responses))
    running_front.drain()
    (answer,) = [r.body for r in running_front.api.responses if "Plan:" in r.body["text"]]
    assert "<!here>" not in json.dumps(answer)
    assert ":no_entry: *lock* iris in dev is frozen by" in json.dumps(answer["blocks"])
    assert "&lt;!here&gt; release freeze" in answer["text"]
    assert running_front.runtime.repos.operations.recent() == []
