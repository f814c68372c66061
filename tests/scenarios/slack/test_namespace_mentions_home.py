"""One namespace command, mentions in channels and threads, DMs and the App Home, over signed
requests to the running front and the Slack Web API emulator; and the manners: unknown models
refused before anything is posted, promotions nobody could approve refused, expired requests
that lose their buttons, production approvals that ask to confirm."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from core.config import Environment, Settings
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, OPS, SIGNING_SECRET, RunningFront
from tests.scenarios.slack.test_slack_approvals import click, request_message
from tests.slack_api.emulator import SlackEmulator

BOB, DM = "U0BOB", "D0ALICE"  # a developer; Alice's direct messages with the bot


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    """Alice administers dev and prod, Bob develops; `qa` has developers and no admins."""
    base = make_settings(tmp_path / "state", registry_uri)
    for env in base.environments:
        env.admins, env.developers = [ALICE], [BOB]
    base.environments.append(Environment(name="qa", admins=[], developers=[BOB]))
    return base


@pytest.fixture(autouse=True)
def people(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")
    slack_api.add_channel(DM, name="alice-dm", member=True, is_im=True)


def post_event(
    front: RunningFront, event: dict[str, Any], *, event_id: str, retry: int = 0
) -> httpx.Response:
    """An Events API delivery, signed as Slack signs it (a retry carries the same event_id)."""
    body = json.dumps(
        {
            "token": "unused",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0001", "user_id": "UBOT", "is_bot": True}],
            "event": event,
        }
    )
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(
            timestamp=stamp, body=body
        ),
    }
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return httpx.post(front.url, content=body, headers=headers, timeout=10)


def mention(text: str, *, user: str = ALICE, thread_ts: str | None = None) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@UBOT> {text}",
        "ts": f"{time.time():.6f}",
        "channel": OPS,
    }
    return event | ({"thread_ts": thread_ts} if thread_ts else {})


def direct(text: str, *, user: str = ALICE) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": f"{time.time():.6f}",
        "channel": DM,
    }


def parents(front: RunningFront, channel: str = OPS) -> list[Any]:
    return [m for m in front.api.messages(channel) if not m.thread_ts or m.thread_ts == m.ts]


def test_the_namespace_takes_every_command_and_slacks_own_names_are_not_served(
    running_front: RunningFront,
) -> None:
    helped = running_front.post("/mlops").json()
    assert helped["response_type"] == "ephemeral"
    assert "/deploy &lt;model&gt; v&lt;N&gt;" in helped["text"]
    assert "/mlops status [endpoint]" in helped["text"]  # `/status` is Slack's own
    wrong = running_front.post("/mlops", "scale iris 4").json()["text"]
    assert "`4` needs a unit" in wrong

    assert running_front.post("/mlops", "deploy iris v1").status_code == 200
    running_front.drain()
    (parent,) = parents(running_front)
    assert "iris v1 is live at http://127.0.0.1:" in parent.text

    assert running_front.post("/mlops", "status").status_code == 200
    running_front.drain()
    (answer,) = running_front.api.responses
    assert answer.body["response_type"] == "ephemeral"
    assert "dev/iris: iris v1" in answer.body["text"]
    audit = running_front.runtime.repos.audit.entries(endpoint="iris", limit=5)
    assert [e.command for e in audit] == ["/mlops deploy iris v1"]

    # `/status` is Slack's own: the bot never registered it, so it answers nothing for it
    # (an empty ack: Slack shows no error and retries nothing)
    ignored = running_front.post("/status")
    assert (ignored.status_code, ignored.text) == (200, "")
    running_front.drain()
    assert len(running_front.api.responses) == 1


def test_a_mention_in_an_operations_thread_answers_in_that_thread_once(
    running_front: RunningFront,
) -> None:
    running_front.post("/deploy", "iris v1")
    running_front.drain()
    (parent,) = parents(running_front)

    event = mention("deploy iris v2", thread_ts=parent.ts)
    assert post_event(running_front, event, event_id="Ev01").status_code == 200
    assert post_event(running_front, event, event_id="Ev01", retry=1).status_code == 200
    running_front.drain()

    assert len(parents(running_front)) == 1  # nothing new in the channel itself
    thread = [m.text for m in running_front.api.messages(OPS) if m.thread_ts == parent.ts]
    assert sum(f"<@{ALICE}> is deploying iris v2 to dev" in t for t in thread) == 1
    assert any("iris v2 is live at http://127.0.0.1:" in t for t in thread)
    kinds = [op.kind for op in running_front.runtime.repos.operations.recent()]
    assert kinds == ["deploy", "deploy"]  # the retried delivery ran nothing more


def test_mistakes_and_refusals_typed_in_a_channel_answer_only_who_typed_them(
    running_front: RunningFront,
) -> None:
    post_event(running_front, mention("scale iris 4"), event_id="Ev10")
    post_event(running_front, mention("deploy iris v1", user=BOB), event_id="Ev11")
    running_front.drain()
    assert parents(running_front) == []
    unit, refused = running_front.api.ephemerals
    assert (unit.user, refused.user) == (ALICE, BOB)
    assert "`4` needs a unit: 4cpu, 4gb, 4mb or 4 replicas." in unit.text
    assert refused.text.startswith("only admins of dev can deploy")


def test_a_direct_message_is_a_command_with_the_same_grammar_and_rights(
    running_front: RunningFront,
) -> None:
    post_event(running_front, direct("help deploy"), event_id="Ev20")
    post_event(running_front, direct("deploy iris v1"), event_id="Ev21")
    running_front.drain()
    texts = [m.text for m in running_front.api.messages(DM)]
    assert any(
        t.startswith("/deploy &lt;model&gt; v&lt;N&gt;|&lt;N&gt;|@&lt;alias&gt; [to &lt;env&gt;]")
        for t in texts
    ), texts
    assert any("iris v1 is live at http://127.0.0.1:" in t for t in texts)
    assert parents(running_front) == []  # nothing in the channel
    # the bot's own messages in the DM are no commands
    post_event(running_front, direct("deploy iris v2") | {"bot_id": "B0BOT"}, event_id="Ev22")
    running_front.drain()
    assert len(running_front.runtime.repos.operations.recent()) == 1


def test_a_deploy_of_an_unknown_model_is_refused_privately_with_the_closest_name(
    running_front: RunningFront,
) -> None:
    running_front.post("/deploy", "irsi v1")
    running_front.drain()
    (reply,) = running_front.api.responses
    assert reply.body["response_type"] == "ephemeral"
    assert (
        "there is no model called `irsi` in the registry (did you mean `iris`?)"
        in (reply.body["text"])
    )
    assert running_front.api.calls_to("chat.postMessage") == []
    (row,) = running_front.runtime.repos.audit.entries(endpoint="irsi", limit=5)
    assert row.outcome == "refused"


def test_a_promotion_nobody_could_approve_is_refused_naming_the_environment(
    running_front: RunningFront,
) -> None:
    running_front.post("/promote", "iris v2 to qa", user=BOB)
    running_front.drain()
    (reply,) = running_front.api.responses
    assert reply.body["text"].startswith("qa has no admins, so nobody could approve this request")
    assert running_front.api.calls_to("chat.postMessage") == []


def test_approving_in_production_asks_to_confirm_and_the_home_offers_the_same_buttons(
    running_front: RunningFront,
) -> None:
    running_front.post("/deploy", "iris v1")
    running_front.post("/promote", "iris v2 to prod because <!channel> it is better", user=BOB)
    running_front.drain()
    _message, buttons = request_message(running_front)
    approve = buttons[0]
    assert approve["confirm"]["title"]["text"] == "Deploy to prod?"
    assert "iris v2 starts serving in *prod*" in approve["confirm"]["text"]["text"]

    post_event(
        running_front, {"type": "app_home_opened", "user": ALICE, "tab": "home"}, event_id="Ev30"
    )
    post_event(
        running_front, {"type": "app_home_opened", "user": BOB, "tab": "home"}, event_id="Ev31"
    )
    running_front.drain()
    homes = {v.user_id: v.view for v in running_front.api.views}
    alice, bob = (json.dumps(homes[u], ensure_ascii=False) for u in (ALICE, BOB))
    for view in (homes[ALICE], homes[BOB]):
        assert len(view["blocks"]) <= 100
    assert "*dev*" in alice and "*iris* · iris v1" in alice and ":large_green_circle: up" in alice
    assert "Requests you can decide" in alice and '"confirm"' in alice
    assert "&lt;!channel&gt;" in alice and "<!channel>" not in alice
    assert "Requests you can decide" not in bob and '"action_id": "approve"' not in bob
    assert "iris v2 to prod" in bob and "open until" in bob  # his own request
    assert "`/deploy iris v1` · succeeded" in alice  # her own operation


def test_an_expired_request_loses_its_buttons_and_says_when_it_expired(
    running_front: RunningFront,
) -> None:
    running_front.runtime.settings.approval_ttl_s = 0
    running_front.post("/promote", "iris v2 to dev", user=BOB)
    running_front.drain()
    message, buttons = request_message(running_front)
    click(running_front, ALICE, "approve", buttons[0]["value"], message.ts)
    running_front.drain()
    (told,) = running_front.api.responses
    assert told.body["text"].startswith("this request expired at ")
    assert "undecided: ask again with `/promote iris v2 to dev`" in told.body["text"]
    assert "by  at" not in told.body["text"]
    message, _ = next((m, None) for m in running_front.api.messages(OPS) if m.ts == message.ts)
    assert not any(b["type"] == "actions" for b in message.blocks)
    assert ":hourglass: Expired at " in message.text
    assert "Ask again with `/promote iris v2 to dev`" in message.text
    assert running_front.runtime.repos.operations.recent() == []
