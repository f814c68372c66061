"""A canary in Slack: its card in the deploy's thread (blocks the Slack emulator accepts, as
Slack would), kept current in place while real traffic flows; Promote / Hold / Abort as
signed clicks, refused to a developer, admitted for an admin as `/canary` typed; a late click
on a card whose step is over changes nothing; the card loses its buttons when its step ends."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Rollout, Settings
from core.targets.base import EndpointRef
from core.targets.local.target import LocalTarget
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront, texts
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.records import Message

BOB = "U0BOB"  # a developer of dev


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri, canary_look_s=0.05)
    base.environments[0] = base.environments[0].model_copy(
        update={"admins": [ALICE], "developers": [BOB], "rollout": Rollout(bake_s=3600)}
    )
    return base


@pytest.fixture(autouse=True)
def bob(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")


def _until(found: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """What `found` returns once it returns something (the bot posts from its own threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def _card(api: SlackEmulator) -> Message | None:
    for message in api.messages(OPS):
        if message.thread_ts and message.text.startswith("Canary of iris v2"):
            return message
    return None


def _buttons(message: Message) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e
        for block in message.blocks
        if block.get("type") == "actions"
        for e in block["elements"]
    }


def _click(front: RunningFront, user: str, card: Message, action_id: str, value: str) -> str:
    """A signed click on `card`; the name its response_url records answers under."""
    answer, name = _clicked(front, user, card, action_id, value)
    assert answer.status_code == 200
    return name


def _clicked(
    front: RunningFront, user: str, card: Message, action_id: str, value: str
) -> tuple[httpx.Response, str]:
    """A signed click on a button of `card`: its acknowledgement, and the name its
    response_url records answers under."""
    name = f"click-{user}-{action_id}-{time.monotonic()}"
    answer = front.click(
        user,
        action_id=action_id,
        value=value,
        message_ts=card.ts,
        thread_ts=card.thread_ts,
        block_id="canary-1",
        response=name,
    )
    return answer, name


def _answer(api: SlackEmulator, name: str) -> str:
    return _until(
        lambda: " ".join(str(r.body.get("text", "")) for r in api.responses if r.name == name),
        f"the answer to {name}",
    )


def test_the_card_is_kept_current_and_its_buttons_are_admitted_as_typed_commands(
    running_front: RunningFront,
) -> None:
    front, api = running_front, running_front.api
    front.post("/mlops", "deploy iris v1")
    front.drain()
    front.post("/mlops", "deploy iris v2 --canary 10 --shadow 50")
    card = _until(lambda: _card(api), "the canary's card")
    buttons = _buttons(card)
    assert set(buttons) == {"canary_promote", "canary_hold", "canary_abort"}
    assert buttons["canary_promote"]["text"]["text"] == "Take all traffic"
    assert "confirm" in buttons["canary_abort"]
    assert json.loads(buttons["canary_promote"]["value"]) == {
        "endpoint": "iris",
        "env": "dev",
        "decision": "promote",
        "at": 10,
    }

    target = front.runtime.deployer.targets["dev"]
    assert isinstance(target, LocalTarget)
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    with httpx.Client(timeout=30) as client:
        models = {
            client.post(target.url(EndpointRef("dev", "iris")), json=body).headers["x-model"]
            for _ in range(100)
        }
    assert models == {"iris/1", "iris/2"}

    def counted() -> Message | None:
        now = _card(api)
        shown = json.dumps(now.blocks) if now else ""
        answered = [int(n) for n in re.findall(r"(\d+) requests", shown)]
        return now if len(answered) == 2 and sum(answered) == 100 and "agreement" in shown else None

    current = _until(counted, "the card updated in place with the counts")
    assert current.ts == card.ts  # the same message, edited

    refused = _click(front, BOB, card, "canary_abort", buttons["canary_abort"]["value"])
    assert "only admins of dev" in _answer(api, refused)
    assert _card(api) is not None and _buttons(_card(api))  # the canary goes on

    _click(front, ALICE, card, "canary_promote", buttons["canary_promote"]["value"])
    front.drain()
    assert "is live at http://127.0.0.1:" in texts(api.messages(OPS))
    ended = _card(api)
    assert ended is not None and not _buttons(ended)
    assert "10% promoted by" in json.dumps(ended.blocks)

    late = _click(front, ALICE, card, "canary_abort", buttons["canary_abort"]["value"])
    assert "no canary is under way on iris in dev: nothing to abort" in _answer(api, late)
    audited = [
        (a.action, a.actor_name, a.outcome)
        for a in front.runtime.repos.audit.entries(endpoint="iris")
    ]
    assert ("canary", "<@U0BOB>", "refused") in audited or any(
        a[0] == "canary" and a[2] == "refused" for a in audited
    )
