"""A canary in Slack where it meets other features: a developer's `/promote` approved in an
environment with a rollout policy runs a canary whose card is in the request's thread; clicks
forged with values the bot never wrote get a clear answer and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import Rollout, Settings
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront, texts
from tests.scenarios.slack.test_canary_card import (
    _answer,
    _buttons,
    _card,
    _click,
    _clicked,
    _until,
)
from tests.scenarios.slack.test_slack_approvals import click, request_message
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.records import Message

BOB = "U0BOB"  # a developer of dev


def _forge(front: RunningFront, card: Message, action_id: str, value: str) -> str:
    """A click signed as Slack signs it, by an admin; what they were told (in the
    acknowledgement, else at the click's response_url)."""
    answer, name = _clicked(front, ALICE, card, action_id, value)
    assert answer.status_code == 200, answer.text
    acked = answer.json().get("text") if answer.content else None
    return str(acked) if acked else _answer(front.api, name)


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri, canary_look_s=0.05)
    base.environments[0] = base.environments[0].model_copy(
        update={
            "admins": [ALICE],
            "developers": [BOB],
            "rollout": Rollout(steps=[10], bake_s=3600),
        }
    )
    return base


@pytest.fixture(autouse=True)
def bob(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")


def test_an_approved_promotion_runs_the_canary_and_its_card_is_in_the_request_s_thread(
    running_front: RunningFront,
) -> None:
    front, api = running_front, running_front.api
    front.post("/mlops", "deploy iris v1")
    front.drain()
    front.post("/mlops", "promote iris v2 to dev because it is better", user=BOB)
    front.drain()
    message, buttons = request_message(front)
    assert click(front, ALICE, "approve", buttons[0]["value"], message.ts).status_code == 200
    card = _until(lambda: _card(api), "the canary's card")
    assert card.thread_ts == message.ts  # where the developer asked, and is mentioned
    assert "step 1 of 1: v2 answers *10%* of requests" in card.blocks[0]["text"]["text"]
    promote = _buttons(card)["canary_promote"]

    refused = _click(front, BOB, card, "canary_promote", promote["value"])
    assert "only admins of dev" in _answer(api, refused)
    _click(front, ALICE, card, "canary_promote", promote["value"])
    front.drain()
    thread = [m for m in api.messages(OPS) if m.thread_ts == message.ts]
    assert "iris v2 is live at http://127.0.0.1:" in texts(thread)
    ended = _card(api)
    assert ended is not None and not _buttons(ended)


@pytest.mark.parametrize(
    ("action_id", "value", "said"),
    [
        ("canary_promote", {"at": "ten"}, "nothing was done"),
        ("canary_promote", {"at": -10}, "nothing was done"),
        ("canary_promote", {"at": 10**12}, "nothing was done"),
        ("canary_promote", {"at": "10"}, "nothing was done"),
        ("canary_promote", {"at": 10.5}, "nothing was done"),
        ("canary_promote", {"at": True}, "nothing was done"),
        ("canary_promote", {"at": None}, "nothing was done"),
        ("canary_abort", {"endpoint": "iris in prod"}, "nothing was done"),
        ("canary_abort", {"env": "dev prod"}, "nothing was done"),
        ("canary_abort", {"decision": "stop"}, "nothing was done"),
        ("canary_hold", {"decision": "abort"}, "nothing was done"),  # past Abort's confirm
        ("canary_promote", {"endpoint": ["iris"]}, "nothing was done"),
        ("canary_hold", "not json", "nothing was done"),
        ("canary_hold", [1, 2], "nothing was done"),
    ],
)
def test_a_forged_click_gets_a_clear_answer_and_changes_nothing(
    running_front: RunningFront, action_id: str, value: object, said: str
) -> None:
    front, api = running_front, running_front.api
    front.post("/mlops", "deploy iris v1")
    front.drain()
    front.post("/mlops", "deploy iris v2")
    card = _until(lambda: _card(api), "the canary's card")
    good = json.loads(_buttons(card)["canary_promote"]["value"])
    forged = {**good, **value} if isinstance(value, dict) else value
    raw = forged if isinstance(forged, str) else json.dumps(forged)
    try:
        answer = _forge(front, card, action_id, raw)
        assert said in answer, answer
        assert "Traceback" not in answer
        (op,) = front.runtime.repos.operations.running()
        assert op.gate is None and op.canary_share == 10  # nothing decided
    finally:  # the canary waits for an admin: end it
        _click(front, ALICE, card, "canary_abort", _buttons(card)["canary_abort"]["value"])
        front.drain()
