"""The emulator speaks Slack's protocol: real slack_sdk clients over real HTTP, state inspected
afterwards."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from tests.slack_api.emulator import SlackEmulator, start_emulator

TOKEN = "xoxb-test-token"


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with start_emulator(bot_token=TOKEN) as emulator:
        emulator.add_channel("C0001", name="deploys")
        emulator.add_channel("C0002", name="elsewhere", member=False)
        emulator.add_user("U0001", name="ada", groups=["S0001"])
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url)


def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as raised:
        assert callable(call)
        call()
    return str(raised.value.response["error"])


def test_auth_test_names_the_bot(slack: SlackEmulator, client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["user_id"] == "UBOT"
    assert answer["team_id"] == "T0001"
    assert answer["is_enterprise_install"] is False
    assert [(c.method, c.token, c.status) for c in slack.calls] == [("auth.test", TOKEN, 200)]


def test_post_reply_broadcast_and_update(slack: SlackEmulator, client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*deploying*"}}]
    parent = client.chat_postMessage(channel="#deploys", text="deploying", blocks=blocks)
    reply = client.chat_postMessage(channel="C0001", text="step 1", thread_ts=parent["ts"])
    shout = client.chat_postMessage(
        channel="C0001", text="done", thread_ts=parent["ts"], reply_broadcast=True
    )
    client.chat_update(channel="C0001", ts=parent["ts"], text="deployed")
    client.chat_update(channel="C0001", ts=reply["ts"], text="step 1 ok")

    assert parent["channel"] == "C0001"
    assert parent["message"]["blocks"] == blocks
    assert float(parent["ts"]) < float(reply["ts"]) < float(shout["ts"])
    assert shout["message"]["subtype"] == "thread_broadcast"
    rows = [
        (m.text, m.thread_ts, m.reply_broadcast, m.updates, m.user) for m in slack.messages("C0001")
    ]
    assert rows == [
        ("deployed", None, False, 1, "UBOT"),
        ("step 1 ok", parent["ts"], False, 1, "UBOT"),
        ("done", parent["ts"], True, 0, "UBOT"),
    ]
    # Slack keeps the blocks an update leaves out.
    assert slack.messages("deploys")[0].blocks == blocks


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.parametrize(
    ("method", "kwargs", "error"),
    [
        ("chat_postMessage", {"channel": "C0002", "text": "x"}, "not_in_channel"),
        ("chat_postMessage", {"channel": "C9999", "text": "x"}, "channel_not_found"),
        ("chat_postMessage", {"channel": "U9999", "text": "x"}, "channel_not_found"),
        ("chat_postMessage", {"channel": "C0001"}, "no_text"),
        ("chat_postMessage", {"channel": "C0001", "blocks": [{"x": 1}]}, "invalid_blocks"),
        ("chat_update", {"channel": "C0001", "ts": "1.000000", "text": "x"}, "message_not_found"),
        (
            "chat_postEphemeral",
            {"channel": "C0002", "user": "U0001", "text": "x"},
            "not_in_channel",
        ),
        ("users_info", {"user": "U9999"}, "user_not_found"),
        ("conversations_info", {"channel": "C9999"}, "channel_not_found"),
    ],
)
def test_refusals_raise_slack_api_error(
    slack: SlackEmulator, client: WebClient, method: str, kwargs: dict[str, object], error: str
) -> None:
    assert error_of(lambda: getattr(client, method)(**kwargs)) == error
    [call] = slack.calls
    assert (call.status, call.error) == (200, error)
    assert slack.messages("C0001") == []


def test_direct_messages_open_an_im(slack: SlackEmulator, client: WebClient) -> None:
    assert slack.messages("U0001") == []
    posted = client.chat_postMessage(channel="U0001", text="your deploy is live")
    opened = client.conversations_open(users="U0001")
    assert opened["channel"]["id"] == posted["channel"]
    assert opened["already_open"] is True
    assert posted["channel"].startswith("D")
    client.chat_postMessage(channel=opened["channel"]["id"], text="again")
    assert [m.text for m in slack.messages("U0001")] == ["your deploy is live", "again"]
    info = client.conversations_info(channel=posted["channel"])["channel"]
    assert (info["is_im"], info["user"]) == (True, "U0001")


def test_ephemeral_is_recorded_but_not_in_history(slack: SlackEmulator, client: WebClient) -> None:
    answer = client.chat_postEphemeral(channel="C0001", user="U0001", text="only you")
    [ephemeral] = slack.ephemerals
    assert (ephemeral.channel, ephemeral.user, ephemeral.text) == ("C0001", "U0001", "only you")
    assert ephemeral.message_ts == answer["message_ts"]
    assert slack.messages("C0001") == []


def test_users_usergroups_and_views(slack: SlackEmulator, client: WebClient) -> None:
    slack.add_usergroup("S0001", handle="mlops", users=["U0002"])
    user = client.users_info(user="U0001")["user"]
    assert (user["id"], user["name"], user["profile"]["display_name"]) == ("U0001", "ada", "ada")
    groups = client.usergroups_list(include_users=True)["usergroups"]
    assert [(g["id"], g["handle"], g["users"]) for g in groups] == [
        ("S0001", "mlops", ["U0002", "U0001"])
    ]
    assert client.usergroups_users_list(usergroup="S0001")["users"] == ["U0002", "U0001"]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S9")) == "no_such_subteam"
    view = {"type": "home", "blocks": [{"type": "divider"}]}
    assert client.views_publish(user_id="U0001", view=view)["ok"]
    assert [(v.user_id, v.view) for v in slack.views] == [("U0001", view)]


def test_usergroups_on_a_free_plan(slack: SlackEmulator, client: WebClient) -> None:
    slack.usergroups_plan_upgrade_required = True
    assert error_of(client.usergroups_list) == "plan_upgrade_required"
    assert error_of(lambda: client.usergroups_users_list(usergroup="S0001")) == (
        "plan_upgrade_required"
    )
    slack.usergroups_plan_upgrade_required = False
    assert client.usergroups_users_list(usergroup="S0001")["users"] == ["U0001"]


def test_tokens(slack: SlackEmulator) -> None:
    assert error_of(WebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test) == (
        "invalid_auth"
    )
    assert error_of(WebClient(base_url=slack.api_url).auth_test) == "not_authed"
    form = httpx.post(slack.api_url + "auth.test", data={"token": TOKEN})
    assert form.json()["ok"] is True
    # Slack never reads a token from a JSON body.
    body = httpx.post(slack.api_url + "auth.test", json={"token": TOKEN})
    assert body.json() == {"ok": False, "error": "not_authed"}
    assert [(c.token, c.error) for c in slack.calls] == [
        ("xoxb-wrong", "invalid_auth"),
        (None, "not_authed"),
        (TOKEN, None),
        (None, "not_authed"),
    ]


def test_socket_mode_urls_are_for_the_app_token_only(slack: SlackEmulator) -> None:
    def url_for(token: str) -> object:
        return WebClient(token=token, base_url=slack.api_url).apps_connections_open(
            app_token=token
        )["url"]

    assert error_of(lambda: url_for(slack.app_token)) == "internal_error"  # no server yet
    slack.socket_url = "ws://127.0.0.1:9/link"
    assert url_for(slack.app_token) == "ws://127.0.0.1:9/link"
    assert error_of(lambda: url_for(TOKEN)) == "not_allowed_token_type"
    assert error_of(lambda: url_for("xapp-1-A0001-2-other")) == "invalid_auth"
    assert httpx.post(slack.api_url + "apps.connections.open").json()["error"] == "not_authed"


def test_form_bodies_and_unknown_method(slack: SlackEmulator) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    blocks = [{"type": "divider"}]
    form = {"channel": "C0001", "blocks": json.dumps(blocks), "reply_broadcast": "false"}
    posted = httpx.post(slack.api_url + "chat.postMessage", data=form, headers=headers)
    assert posted.json()["ok"] is True
    assert slack.messages("C0001")[0].blocks == blocks
    multipart = {"channel": (None, "C0001"), "text": (None, "from a multipart form")}
    posted = httpx.post(slack.api_url + "chat.postMessage", files=multipart, headers=headers)
    assert posted.json()["ok"] is True
    assert slack.messages("C0001")[1].text == "from a multipart form"
    unknown = httpx.post(slack.api_url + "chat.teleport", headers=headers)
    assert (unknown.status_code, unknown.json()) == (200, {"ok": False, "error": "unknown_method"})


def test_rate_limit_answers_429_with_retry_after(slack: SlackEmulator) -> None:
    slack.rate_limit("chat.postMessage", retry_after=7)
    client = WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0001", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C0001", text="x")["ok"]


def test_rate_limit_recovered_by_the_retry_handler(slack: SlackEmulator) -> None:
    slack.rate_limit("chat.postMessage", retry_after=1)
    handler = RateLimitErrorRetryHandler(max_retry_count=1)
    client = WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[handler])
    assert client.chat_postMessage(channel="C0001", text="after a pause")["ok"]
    first, second = slack.calls_to("chat.postMessage")
    assert (first.status, first.error, second.status, second.error) == (
        429,
        "ratelimited",
        200,
        None,
    )
    assert second.at - first.at >= 1.0
    assert [m.text for m in slack.messages("C0001")] == ["after a pause"]


def test_fail_switch_answers_then_clears(slack: SlackEmulator, client: WebClient) -> None:
    slack.fail("chat.update", "cant_update_message", times=2)
    posted = client.chat_postMessage(channel="C0001", text="a")
    for _ in range(2):
        assert error_of(lambda: client.chat_update(channel="C0001", ts=posted["ts"], text="b")) == (
            "cant_update_message"
        )
    client.chat_update(channel="C0001", ts=posted["ts"], text="b")
    assert [(m.text, m.updates) for m in slack.messages("C0001")] == [("b", 1)]


def test_response_url_posts(slack: SlackEmulator) -> None:
    private = slack.response_url("deploy")
    public = slack.response_url("status", channel="C0001")
    assert private != slack.response_url("deploy")

    answer = WebhookClient(private).send(text="working on it")
    assert (answer.status_code, answer.body) == (200, "ok")
    WebhookClient(public).send(text="v3 is live", response_type="in_channel")
    assert WebhookClient(public).send_dict({"response_type": "ephemeral"}).body == "no_text"

    assert [(r.name, r.url, r.body.get("text")) for r in slack.responses] == [
        ("deploy", private, "working on it"),
        ("status", public, "v3 is live"),
        ("status", public, None),
    ]
    assert [m.text for m in slack.messages("C0001")] == ["v3 is live"]
    gone = httpx.post(private.rsplit("/", 2)[0] + "/R9999/x", json={"text": "x"})
    assert (gone.status_code, gone.text) == (404, "no_service")


def test_response_url_replaces_and_deletes_the_original(
    slack: SlackEmulator, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel="C0001", text="approve?")["ts"]
    url = slack.response_url("approve", channel="C0001", message_ts=ts)
    WebhookClient(url).send(text="approved", replace_original=True)
    assert [(m.text, m.updates) for m in slack.messages("C0001")] == [("approved", 1)]
    WebhookClient(url).send_dict({"delete_original": True})
    assert slack.messages("C0001") == []


def test_wait_for_sees_calls_from_other_threads(slack: SlackEmulator, client: WebClient) -> None:
    timer = threading.Timer(0.1, lambda: client.chat_postMessage(channel="C0001", text="late"))
    timer.start()
    slack.wait_for(lambda s: len(s.messages("C0001")) == 1, timeout=5)
    timer.join()
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"chat\.postMessage -> 200 ok"):
        slack.wait_for(lambda s: len(s.messages("C0001")) == 2, timeout=0.2)
    assert time.monotonic() - started < 2


def test_permalinks_name_the_message_and_its_thread(client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0001", text="parent")
    reply = client.chat_postMessage(channel="C0001", text="reply", thread_ts=parent["ts"])
    link = client.chat_getPermalink(channel="C0001", message_ts=parent["ts"])["permalink"]
    assert link == f"https://emulated.slack.com/archives/C0001/p{parent['ts'].replace('.', '')}"
    in_thread = client.chat_getPermalink(channel="C0001", message_ts=reply["ts"])["permalink"]
    assert in_thread.endswith(f"?thread_ts={parent['ts']}&cid=C0001")
    missing = error_of(lambda: client.chat_getPermalink(channel="C0001", message_ts="9.000009"))
    assert missing == "message_not_found"
