"""What users typed is shown, never obeyed: no ping, mention or disguised link reaches Slack
from a reason or a name; and when Slack refuses a message its requester is told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import Settings
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront
from tests.slack_api.emulator import SlackEmulator

BOB = "U0BOB"
HOSTILE = (
    "<!channel> <!here> <!subteam^S0ADMINS> <@U0CAROL> <https://evil.example|Approve securely>"
)
RAW = ("<!channel>", "<!here>", "<!subteam^", "<@U0CAROL>", "<https://evil")


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri)
    for env in base.environments:
        env.admins, env.developers = [ALICE], [BOB]
    return base


@pytest.fixture(autouse=True)
def people(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")


def sent(api: SlackEmulator) -> str:
    """Everything the bot sent Slack: Web API calls and response_url posts."""
    return json.dumps([c.args for c in api.calls] + [r.body for r in api.responses])


def test_markup_in_reasons_never_reaches_slack_unescaped(running_front: RunningFront) -> None:
    running_front.post("/lock", f"iris in prod {HOSTILE}", user=ALICE)
    running_front.post("/promote", f"iris v2 to prod because {HOSTILE}", user=BOB)
    running_front.drain()
    (request,) = [m for m in running_front.api.messages(OPS) if "asks to deploy" in m.text]
    buttons = next(b for b in request.blocks if b["type"] == "actions")["elements"]
    running_front.post("/reject", f"{buttons[0]['value']} {HOSTILE}", user=ALICE)
    running_front.drain()
    shown = sent(running_front.api)
    for raw in RAW:
        assert raw not in shown
    assert "&lt;!channel&gt;" in json.dumps(request.blocks)
    rejected = next(m for m in running_front.api.messages(OPS) if m.ts == request.ts)
    assert "&lt;https://evil.example|Approve securely&gt;" in rejected.text
    assert f"<@{BOB}> asks to deploy" in request.text  # the bot's own mention still is one


def test_a_hostile_model_name_is_shown_literally(running_front: RunningFront) -> None:
    running_front.post("/deploy", "<!channel> v1", user=ALICE)
    running_front.post("/status", "<@U0CAROL>", user=ALICE)
    running_front.drain()
    for raw in RAW[:1] + RAW[3:4]:
        assert raw not in sent(running_front.api)


def test_a_request_slack_refuses_is_withdrawn_and_its_requester_told(
    running_front: RunningFront,
) -> None:
    running_front.api.fail("chat.postMessage", "msg_too_long")
    running_front.post("/promote", "iris v2 to prod", user=BOB)
    running_front.drain()
    (told,) = running_front.api.responses
    assert "Slack answered `msg_too_long`" in told.body["text"]
    assert "I withdrew it, so nothing is pending" in told.body["text"]
    with running_front.runtime.repos.db.session() as s:
        from core.store.models import ApprovalRow

        (row,) = s.query(ApprovalRow).all()
        assert (row.state, row.decided_by) == ("withdrawn", "chatops")


def test_a_refused_final_update_is_told_to_the_requester(running_front: RunningFront) -> None:
    running_front.api.fail("chat.update", "is_archived", times=50)
    running_front.post("/deploy", "iris v1", user=ALICE)
    running_front.drain()
    told = [r.body["text"] for r in running_front.api.responses]
    assert any("Slack refused the update" in t and "is_archived" in t for t in told), told
    assert any("It ended: " in t and ":white_check_mark:" in t for t in told), told
