"""The emulator refuses what Slack refuses, on every method that shows a message and on
response_url posts, so no test passes with a payload real Slack would not show."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.slack_api.emulator import SlackEmulator, start_emulator

TOKEN = "xoxb-test-token"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


REFUSED = {
    "51 blocks": ([section("x")] * 51, "invalid_blocks"),
    "section over 3,000": ([section("x" * 3001)], "invalid_blocks"),
    "header over 150": (
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "invalid_blocks",
    ),
    "button text over 75": (
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "b" * 76},
                    }
                ],
            }
        ],
        "invalid_blocks",
    ),
    "field over 2,000": (
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        "invalid_blocks",
    ),
    "context text over 3,000": (
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3001}]}],
        "invalid_blocks",
    ),
    "unknown block type": ([{"type": "sparkles"}], "invalid_blocks"),
    "section with nothing": ([{"type": "section"}], "invalid_blocks"),
}


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with start_emulator(bot_token=TOKEN) as emulator:
        emulator.add_channel("C0001", name="deploys")
        emulator.add_user("U0001", name="ada")
        yield emulator


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_blocks_slack_refuses_are_refused_by_post_update_and_response_url(
    slack: SlackEmulator, case: str
) -> None:
    blocks, error = REFUSED[case]
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as posted:
        client.chat_postMessage(channel="C0001", text="t", blocks=blocks)
    assert posted.value.response["error"] == error
    ts = client.chat_postMessage(channel="C0001", text="kept")["ts"]
    with pytest.raises(SlackApiError) as updated:
        client.chat_update(channel="C0001", ts=ts, text="t", blocks=blocks)
    assert updated.value.response["error"] == error
    hook = WebhookClient(slack.response_url("cmd", channel="C0001"))
    answer = hook.send(text="t", blocks=blocks, response_type="in_channel")
    assert (answer.status_code, answer.body) == (400, error)
    assert [m.text for m in slack.messages("C0001")] == ["kept"]


def test_text_over_4000_is_msg_too_long_everywhere(slack: SlackEmulator) -> None:
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as posted:
        client.chat_postMessage(channel="C0001", text="x" * 4001)
    assert posted.value.response["error"] == "msg_too_long"
    answer = WebhookClient(slack.response_url("cmd")).send(text="x" * 4001)
    assert (answer.status_code, answer.body) == (400, "msg_too_long")
    assert client.chat_postMessage(channel="C0001", text="x" * 4000)["ok"]


def test_a_home_tab_holds_100_blocks_not_101(slack: SlackEmulator) -> None:
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    view = {"type": "home", "blocks": [section("x")] * 100}
    assert client.views_publish(user_id="U0001", view=view)["ok"]
    with pytest.raises(SlackApiError) as published:
        client.views_publish(user_id="U0001", view={**view, "blocks": [section("x")] * 101})
    assert published.value.response["error"] == "invalid_blocks"
