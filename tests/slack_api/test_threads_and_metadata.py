"""Message metadata and reading threads, as Slack keeps and answers them: real slack_sdk
clients over real HTTP, state inspected afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.slack_api.emulator import SlackEmulator, start_emulator

TOKEN = "xoxb-test-token"
OWED = {"event_type": "chatops_owed", "event_payload": {"owed": "owed-0123456789"}}


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with start_emulator(bot_token=TOKEN) as emulator:
        emulator.add_channel("C0001", name="deploys")
        emulator.add_channel("C0002", name="elsewhere", member=False)
        emulator.add_channel("G0001", name="secret-ops", private=True)
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url)


def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        call()
    return str(raised.value.response["error"])


def test_metadata_is_kept_and_read_back_only_when_asked_for(
    slack: SlackEmulator, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="C0001", text="deploying")
    reply = client.chat_postMessage(
        channel="C0001", text=":x: failed", thread_ts=parent["ts"], metadata=OWED
    )
    assert reply["message"]["metadata"] == OWED
    assert slack.messages("C0001")[1].metadata == OWED

    plain = client.conversations_replies(channel="C0001", ts=parent["ts"])["messages"]
    assert [("metadata" in m) for m in plain] == [False, False]
    full = client.conversations_replies(
        channel="C0001", ts=parent["ts"], include_all_metadata=True
    )["messages"]
    assert [m.get("metadata") for m in full] == [None, OWED]
    # a form body carries it as JSON text, as it does blocks
    form = {"channel": "C0001", "text": "x", "metadata": json.dumps(OWED), "token": TOKEN}
    assert httpx.post(slack.api_url + "chat.postMessage", data=form).json()["ok"] is True
    assert slack.messages("C0001")[2].metadata == OWED


def test_chat_update_replaces_metadata_and_keeps_it_when_left_out(
    slack: SlackEmulator, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel="C0001", text="a", metadata=OWED)["ts"]
    client.chat_update(channel="C0001", ts=ts, text="b")
    assert slack.messages("C0001")[0].metadata == OWED
    other = {"event_type": "chatops_owed", "event_payload": {"owed": "owed-9"}}
    updated = client.chat_update(channel="C0001", ts=ts, text="c", metadata=other)
    assert updated["message"]["metadata"] == other
    assert [(m.text, m.metadata) for m in slack.messages("C0001")] == [("c", other)]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("not json", "invalid_metadata_format"),
        ('["chatops_owed"]', "invalid_metadata_format"),
        ({"event_payload": {"owed": "x"}}, "invalid_metadata_schema"),
        ({"event_type": "chatops_owed"}, "invalid_metadata_schema"),
        ({"event_type": "chatops_owed", "event_payload": ["x"]}, "invalid_metadata_schema"),
        ({"event_type": "chatops_owed", "event_payload": "x"}, "invalid_metadata_schema"),
        ({"event_type": "", "event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": 7, "event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": "chatops.owed", "event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": "chatops owed", "event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": "1_owed", "event_payload": {}}, "invalid_metadata_schema"),
        ({**OWED, "extra": 1}, "invalid_metadata_schema"),
    ],
)
def test_malformed_metadata_is_refused_and_nothing_is_posted(
    slack: SlackEmulator, client: WebClient, metadata: object, error: str
) -> None:
    ts = client.chat_postMessage(channel="C0001", text="kept")["ts"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for method, args in (
        ("chat.postMessage", {"channel": "C0001", "text": "x"}),
        ("chat.update", {"channel": "C0001", "ts": ts, "text": "x"}),
    ):
        answer = httpx.post(
            slack.api_url + method, json={**args, "metadata": metadata}, headers=headers
        )
        assert answer.json() == {"ok": False, "error": error}, method
    assert [(m.text, m.metadata, m.updates) for m in slack.messages("C0001")] == [("kept", None, 0)]


def test_replies_are_the_parent_then_its_replies_from_any_of_its_messages(
    client: WebClient,
) -> None:
    parent = client.chat_postMessage(channel="C0001", text="parent")["ts"]
    client.chat_postMessage(channel="C0001", text="elsewhere")
    first = client.chat_postMessage(channel="C0001", text="one", thread_ts=parent)["ts"]
    client.chat_postMessage(channel="C0001", text="two", thread_ts=parent, reply_broadcast=True)

    for ts in (parent, first):
        answer = client.conversations_replies(channel="C0001", ts=ts)
        assert [m["text"] for m in answer["messages"]] == ["parent", "one", "two"]
        assert answer["has_more"] is False
    head = client.conversations_replies(channel="C0001", ts=parent)["messages"][0]
    assert (head["thread_ts"], head["reply_count"], head["reply_users"]) == (parent, 2, ["UBOT"])
    # a message nobody answered is a thread of one
    alone = client.chat_postMessage(channel="C0001", text="alone")["ts"]
    [only] = client.conversations_replies(channel="C0001", ts=alone)["messages"]
    assert only["text"] == "alone" and "reply_count" not in only


def test_replies_come_in_pages(client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0001", text="p")["ts"]
    for n in range(4):
        client.chat_postMessage(channel="C0001", text=f"r{n}", thread_ts=parent)
    seen, cursor, pages = [], None, 0
    while True:
        answer = client.conversations_replies(channel="C0001", ts=parent, limit=2, cursor=cursor)
        seen += [m["text"] for m in answer["messages"]]
        pages += 1
        cursor = answer["response_metadata"]["next_cursor"]
        assert answer["has_more"] is bool(cursor)
        if not cursor:
            break
    assert (seen, pages) == (["p", "r0", "r1", "r2", "r3"], 3)
    bad = error_of(lambda: client.conversations_replies(channel="C0001", ts=parent, cursor="x"))
    assert bad == "invalid_cursor"


@pytest.mark.parametrize(
    ("channel", "ts", "error"),
    [
        ("C9999", "1700000000.000100", "channel_not_found"),
        ("C0002", "1700000000.000100", "not_in_channel"),
        ("C0001", "1.000001", "thread_not_found"),
    ],
)
def test_replies_refusals(client: WebClient, channel: str, ts: str, error: str) -> None:
    assert error_of(lambda: client.conversations_replies(channel=channel, ts=ts)) == error


def test_reading_needs_the_history_scope_of_the_conversation(
    slack: SlackEmulator, client: WebClient
) -> None:
    public = client.chat_postMessage(channel="C0001", text="p")["ts"]
    private = client.chat_postMessage(channel="G0001", text="q")["ts"]
    slack.scopes = [s for s in slack.scopes if s != "channels:history"]
    with pytest.raises(SlackApiError) as raised:
        client.conversations_replies(channel="C0001", ts=public)
    answer = raised.value.response
    assert (answer["error"], answer["needed"]) == ("missing_scope", "channels:history")
    assert "channels:history" not in answer["provided"].split(",")
    assert client.conversations_replies(channel="G0001", ts=private)["messages"][0]["text"] == "q"
    slack.scopes = [s for s in slack.scopes if s != "groups:history"]
    assert error_of(lambda: client.conversations_history(channel="G0001")) == "missing_scope"


def test_history_is_what_the_channel_shows_newest_first(client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0001", text="parent", metadata=OWED)["ts"]
    client.chat_postMessage(channel="C0001", text="in thread", thread_ts=parent)
    client.chat_postMessage(channel="C0001", text="shout", thread_ts=parent, reply_broadcast=True)
    client.chat_postMessage(channel="C0001", text="later")
    messages = client.conversations_history(channel="C0001")["messages"]
    assert [m["text"] for m in messages] == ["later", "shout", "parent"]
    assert all("metadata" not in m for m in messages)
    full = client.conversations_history(channel="C0001", include_all_metadata=True)["messages"]
    assert [m.get("metadata") for m in full] == [None, None, OWED]
    assert full[2]["reply_count"] == 2
    page = client.conversations_history(channel="C0001", limit=1)
    assert (len(page["messages"]), page["has_more"]) == (1, True)


def test_reading_methods_take_their_arguments_as_a_query_or_form_never_json(
    slack: SlackEmulator, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel="C0001", text="p")["ts"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = slack.api_url + "conversations.replies"
    as_json = httpx.post(url, json={"channel": "C0001", "ts": ts}, headers=headers)
    assert as_json.json() == {"ok": False, "error": "channel_not_found"}
    as_form = httpx.post(url, data={"channel": "C0001", "ts": ts}, headers=headers)
    assert [m["text"] for m in as_form.json()["messages"]] == ["p"]
