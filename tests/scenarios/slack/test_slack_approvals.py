"""/promote in Slack: the request with its buttons, clicks signed as Slack signs them, the
decision in place of the buttons, the deploy in the request's thread; roles from user groups."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from bot.slack.intake.groups import GroupDirectory
from bot.slack.posting.poster import Poster, web_client
from core.config import Settings
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    OPS,
    RunningFront,
)
from tests.slack_api.emulator import SlackEmulator

BOB, CAROL = "U0BOB", "U0CAROL"  # a developer; an admin through the @mlops-admins group


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri)
    for env in base.environments:
        env.admins, env.developers = [ALICE, "@mlops-admins"], [BOB]
    return base


@pytest.fixture(autouse=True)
def people(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")
    slack_api.add_user(CAROL, name="carol")
    slack_api.add_usergroup("S0ADMINS", handle="mlops-admins", users=[CAROL])


def click(front: RunningFront, user: str, action: str, request: str, ts: str) -> httpx.Response:
    return front.click(
        user, action_id=action, value=request, message_ts=ts, block_id=f"decide-{request}"
    )


def request_message(front: RunningFront):  # type: ignore[no-untyped-def]
    (message,) = [m for m in front.api.messages(OPS) if "asks to deploy" in m.text]
    buttons = next(b for b in message.blocks if b["type"] == "actions")["elements"]
    return message, buttons


def test_a_promotion_is_decided_with_a_button_and_deploys_in_its_thread(
    running_front: RunningFront,
) -> None:
    running_front.post("/promote", "iris v2 to dev because accuracy 0.91 vs 0.82", user=BOB)
    running_front.drain()
    message, buttons = request_message(running_front)
    assert f"<@{BOB}> asks to deploy iris v2 to dev" in message.text
    shown = json.dumps(message.blocks)
    assert "accuracy 0.9111" in shown and "accuracy 0.82" not in shown  # nothing live yet
    assert [b["action_id"] for b in buttons] == ["approve", "reject"]
    request = buttons[0]["value"]

    assert click(running_front, BOB, "approve", request, message.ts).status_code == 200
    running_front.drain()
    (refused,) = running_front.api.responses
    assert refused.body["response_type"] == "ephemeral"
    assert refused.body["text"].startswith("only admins of dev can approve")

    assert click(running_front, CAROL, "approve", request, message.ts).status_code == 200
    running_front.drain()
    message = next(m for m in running_front.api.messages(OPS) if m.ts == message.ts)
    assert f"Approved by <@{CAROL}>" in message.text
    assert not any(b["type"] == "actions" for b in message.blocks)  # the buttons are gone
    thread = [m for m in running_front.api.messages(OPS) if m.thread_ts == message.ts]
    # the requester is mentioned in the thread of what they asked for, as is who approved
    assert any(
        f"<@{BOB}> is deploying iris v2 to dev (approved by <@{CAROL}>)" in m.text for m in thread
    )
    assert any("iris v2 is live at http://127.0.0.1:" in m.text for m in thread)

    click(running_front, ALICE, "approve", request, message.ts)
    running_front.drain()
    late = running_front.api.responses[-1]
    assert late.body["text"].startswith(f"this request was already approved by <@{CAROL}> at ")
    assert len([op for op in running_front.runtime.repos.operations.recent()]) == 1
    # the group was read once for all those clicks: the cache answered the rest
    assert len(running_front.api.calls_to("usergroups.users.list")) == 1


def test_a_rejection_replaces_the_buttons_and_deploys_nothing(
    running_front: RunningFront,
) -> None:
    running_front.post("/promote", "iris v2 to prod", user=BOB)
    running_front.drain()
    message, buttons = request_message(running_front)
    running_front.post("/reject", f"{buttons[0]['value']} latency too high", user=ALICE)
    running_front.drain()
    message = next(m for m in running_front.api.messages(OPS) if m.ts == message.ts)
    assert f"Rejected by <@{ALICE}>" in message.text and "latency too high" in message.text
    assert running_front.runtime.repos.endpoints.every() == []


def test_a_viewer_is_refused_privately_and_nothing_changes(running_front: RunningFront) -> None:
    running_front.post("/deploy", "iris v1", user="U0VIEWER")
    running_front.drain()
    (refused,) = running_front.api.responses
    assert refused.body["response_type"] == "ephemeral"
    # told what a viewer can do: not to ask with /promote, which they may not use
    assert refused.body["text"] == (
        "only admins of dev can deploy — you may look (`/mlops status`, `/history`) but not "
        "ask for deploys in dev: a developer of dev can ask for it with "
        "`/promote iris v1 to dev`, or an admin deploy it"
    )
    assert running_front.api.calls_to("chat.postMessage") == []
    (entry,) = running_front.runtime.repos.audit.entries()
    assert (entry.actor_id, entry.outcome) == ("U0VIEWER", "refused")


def test_a_workspace_without_user_groups_is_reported_and_ids_still_count(
    slack_api: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    slack_api.usergroups_plan_upgrade_required = True
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    directory = GroupDirectory(poster, ["@mlops-admins"], ttl_s=60)
    with caplog.at_level(logging.WARNING):
        directory.check()
        assert directory.groups_of(CAROL) == frozenset()
    warnings = [r.getMessage() for r in caplog.records if "plan_upgrade_required" in r.getMessage()]
    assert warnings == [
        "this Slack workspace has no user groups (plan_upgrade_required): role entries given "
        "as @handles (@mlops-admins) match nobody; list user ids instead"
    ]
    assert len(slack_api.calls_to("usergroups.list")) == 1  # not asked again


def test_group_membership_is_fetched_again_after_its_ttl(slack_api: SlackEmulator) -> None:
    now = [0.0]
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    directory = GroupDirectory(poster, ["@mlops-admins"], ttl_s=300, clock=lambda: now[0])
    assert directory.groups_of(CAROL) == {"mlops-admins"}
    assert directory.groups_of(BOB) == frozenset()
    slack_api.add_usergroup("S0ADMINS", handle="mlops-admins", users=[BOB])
    now[0] = 299.0
    assert directory.groups_of(BOB) == frozenset()  # still the cached answer
    now[0] = 301.0
    assert directory.groups_of(BOB) == {"mlops-admins"}
    assert len(slack_api.calls_to("usergroups.users.list")) == 2


def test_group_membership_fails_closed_when_slack_stops_answering_after_its_ttl(
    slack_api: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    directory = GroupDirectory(
        poster, ["@mlops-admins"], ttl_s=300, grace_s=60, clock=lambda: now[0]
    )
    assert directory.groups_of(CAROL) == {"mlops-admins"}
    # Carol leaves the group, and the bot loses the scope to read it
    slack_api.add_usergroup("S0ADMINS", handle="mlops-admins", users=[])
    slack_api.fail("usergroups.users.list", "missing_scope", times=10)
    with caplog.at_level(logging.WARNING, logger="chatops.slack"):
        now[0] = 330.0  # past the TTL, within the grace: the last answer, said so
        assert directory.groups_of(CAROL) == {"mlops-admins"}
        now[0] = 361.0  # past the grace: membership is unknown, so it grants nothing
        assert directory.groups_of(CAROL) == frozenset()
        now[0] = 362.0
        assert directory.groups_of(CAROL) == frozenset()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said[0] == (
        "WARNING",
        "could not read user groups (missing_scope): trusting the answer of 330 s ago for at "
        "most 30 s more",
    )
    assert (
        "ERROR",
        "could not read user groups (missing_scope): group membership is unknown, so @handles "
        "in roles grant nothing until Slack answers again",
    ) in said


def test_approving_on_a_frozen_endpoint_keeps_the_request_pending_and_tells_everyone(
    running_front: RunningFront,
) -> None:
    running_front.post("/promote", "iris v2 to dev", user=BOB)
    running_front.post("/lock", "iris in dev quarter-end freeze", user=ALICE)
    running_front.drain()
    message, buttons = request_message(running_front)
    request = buttons[0]["value"]

    assert click(running_front, CAROL, "approve", request, message.ts).status_code == 200
    running_front.drain()
    # the approver is told why, privately
    told = running_front.api.responses[-1]
    assert told.body["response_type"] == "ephemeral"
    assert re.fullmatch(
        r"iris in dev is frozen by <@U0ALICE> since \d\d:\d\d UTC: quarter-end freeze\. Once an "
        r"admin lifts it with `/unlock iris in dev`, approve again: request "
        + request
        + r" stays pending \(until \d{4}-\d\d-\d\d \d\d:\d\d UTC\)\.",
        told.body["text"],
    ), told.body["text"]
    # the request's message says so and keeps its buttons; the requester is named in its thread
    message = next(m for m in running_front.api.messages(OPS) if m.ts == message.ts)
    assert "Still pending: iris in dev is frozen" in message.text
    assert any(b["type"] == "actions" for b in message.blocks)
    thread = [m for m in running_front.api.messages(OPS) if m.thread_ts == message.ts]
    assert [m.text.split(":")[0] for m in thread] == [
        f"<@{BOB}> <@{CAROL}> approved deploying iris v2 to dev, but it cannot be deployed now"
    ]
    repos = running_front.runtime.repos
    assert repos.approvals.get(request).state == "pending"
    assert repos.operations.recent() == []
    assert repos.endpoints.every() == []

    # once unfrozen, the same request is approved and deploys
    running_front.post("/unlock", "iris in dev", user=ALICE)
    running_front.drain()
    click(running_front, CAROL, "approve", request, message.ts)
    running_front.drain()
    assert repos.approvals.get(request).state == "approved"
    (endpoint,) = repos.endpoints.every()
    assert (endpoint.name, endpoint.version) == ("iris", 2)
