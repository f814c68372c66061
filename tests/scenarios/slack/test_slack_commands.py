"""Slash commands over HTTP: signed requests in, Web API calls out, as a channel would see them."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time

import httpx

from bot.slack.app import EVENTS_PATH, SlackFront
from bot.slack.settings import SlackSettings
from tests.scenarios.slack.conftest import ALICE, OPS, RANDOM, RunningFront, post_command


def thread_of(front: RunningFront, channel: str = OPS) -> tuple[object, list[object]]:
    messages = front.api.messages(channel)
    parents = [m for m in messages if not m.thread_ts or m.thread_ts == m.ts]
    assert len(parents) == 1, [m.text for m in messages]
    parent = parents[0]
    replies = [m for m in messages if m.thread_ts == parent.ts and m.ts != parent.ts]
    return parent, replies


def test_deploy_reports_in_one_thread_and_ends_in_the_parent(running_front: RunningFront) -> None:
    response = running_front.post("/deploy", "iris v1")
    assert response.status_code == 200 and response.text == ""
    running_front.drain()

    parent, replies = thread_of(running_front)
    assert f"<@{ALICE}> is deploying iris v1 to dev" in parent.text
    assert "iris v1 is live at http://127.0.0.1:" in parent.text
    blocks = str(parent.blocks)
    for field in ("Version", "v1", "Resources", "1 cpu, 1 GB, 1 replica", "Smoke test", "Endpoint"):
        assert field in blocks
    steps = "\n".join(r.text for r in replies)
    for step in (
        "resolved iris v1",
        "artifacts fetched and verified",
        "model servers up",
        "smoke test answered",
        "now serves v1",
    ):
        assert step in steps
    assert not any(r.reply_broadcast for r in replies)
    # the parent was kept current, its progress at most about once per interval (0.3 s
    # here); how it ended is sent at once, whenever the last progress update went
    *progress, _final = [c.at for c in running_front.api.calls_to("chat.update")]
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(progress))
    assert running_front.api.responses == []  # nothing ephemeral was needed


def test_usage_errors_answer_only_the_requester_in_the_ack(running_front: RunningFront) -> None:
    response = running_front.post("/scale", "iris 4")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert "`4` needs a unit: 4cpu, 4gb, 4mb or 4 replicas." in body["text"]
    assert "Usage: `/scale" in body["text"]
    help_text = running_front.post("/mlops", "help deploy").json()["text"]
    # a command of its own where the app registers one, else through the namespace
    assert "/deploy &lt;model&gt; v&lt;N&gt;|&lt;N&gt;|@&lt;alias&gt; [to &lt;env&gt;]" in help_text
    assert "/help" not in help_text.replace("/mlops help", "")
    running_front.drain()
    assert running_front.api.calls_to("chat.postMessage") == []


def test_refusals_are_ephemeral_and_change_nothing(running_front: RunningFront) -> None:
    running_front.post("/deploy", "iris v1")
    running_front.drain()
    before = len(running_front.api.calls_to("chat.postMessage"))

    assert running_front.post("/scale", "iris 64cpu").status_code == 200
    running_front.drain()

    (reply,) = running_front.api.responses
    assert reply.body["response_type"] == "ephemeral"
    assert "64 cpu is over the limit of dev: at most 4 cpu per endpoint" in reply.body["text"]
    assert len(running_front.api.calls_to("chat.postMessage")) == before


def test_a_failure_is_broadcast_with_its_log_tail_and_what_still_serves(
    running_front: RunningFront,
) -> None:
    running_front.post("/deploy", "crasher v1")
    running_front.drain()

    parent, replies = thread_of(running_front)
    (failure,) = [r for r in replies if r.reply_broadcast]
    assert "exited while starting (exit code 70)" in failure.text
    assert "fatal: cannot open /dev/accel0" in failure.text  # the log tail
    assert "nothing was serving crasher in dev before" in failure.text
    assert "failed at *start*" in str(parent.blocks)


def test_outside_the_channel_the_requester_is_told_and_progress_goes_to_a_dm(
    running_front: RunningFront,
) -> None:
    running_front.post("/deploy", "iris v1", channel=RANDOM)
    running_front.drain()

    (told,) = running_front.api.responses
    assert told.body["response_type"] == "ephemeral"
    assert "Invite me with `/invite @" in told.body["text"]
    (opened,) = running_front.api.calls_to("conversations.open")
    assert opened.args["users"] == ALICE
    posted = [
        c
        for c in running_front.api.calls_to("chat.postMessage")
        if c.args.get("channel") not in (RANDOM,)
    ]
    channels = {c.args["channel"] for c in posted}
    assert len(channels) == 1
    dm = running_front.api.messages(channels.pop())
    assert any("is live at http://127.0.0.1:" in m.text for m in dm)
    assert running_front.api.messages(RANDOM) == []


def test_rate_limits_are_honoured_and_the_final_message_still_lands(
    running_front: RunningFront,
) -> None:
    running_front.api.rate_limit("chat.update", times=2, retry_after=1)
    running_front.post("/deploy", "iris v1")
    running_front.drain()

    statuses = [c.status for c in running_front.api.calls_to("chat.update")]
    assert statuses[:2] == [429, 429] and 200 in statuses
    parent, _ = thread_of(running_front)
    assert "iris v1 is live at" in parent.text


def test_forged_or_stale_requests_get_401_and_start_nothing(running_front: RunningFront) -> None:
    forged = running_front.post("/deploy", "iris v1", secret="not-the-signing-secret")
    stale = running_front.post("/deploy", "iris v1", timestamp=int(time.time()) - 6 * 60)
    assert (forged.status_code, stale.status_code) == (401, 401)
    running_front.drain()
    assert running_front.api.calls_to("chat.postMessage") == []
    assert running_front.runtime.repos.operations.recent() == []


def test_ack_comes_back_while_the_operation_is_held(
    running_front: RunningFront, registry_uri: str
) -> None:
    path = registry_uri.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, timeout=5)
    lock.execute("BEGIN EXCLUSIVE")  # the registry cannot answer: the deploy waits
    try:
        began = time.perf_counter()
        response = running_front.post("/deploy", "iris v1")
        acked = time.perf_counter() - began
        assert response.status_code == 200 and acked < 1.0
        running_front.api.wait_for(lambda api: api.messages(OPS))
        parent, _ = thread_of(running_front)
        assert "running" in parent.text and "is live" not in parent.text
    finally:
        time.sleep(0.5)
        lock.rollback()
        lock.close()
    running_front.drain()
    parent, _ = thread_of(running_front)
    assert "iris v1 is live at" in parent.text


def test_status_is_private_unless_asked_public(running_front: RunningFront) -> None:
    running_front.post("/deploy", "iris v1")
    running_front.drain()

    running_front.post("/mlops", "status")
    running_front.post("/mlops", "status public")
    running_front.api.wait_for(lambda api: len(api.responses) == 2)

    private, public = running_front.api.responses
    assert private.body["response_type"] == "ephemeral"
    assert public.body["response_type"] == "in_channel"
    for reply in (private, public):
        assert "iris" in reply.body["text"] and "v1" in reply.body["text"]
        assert "up" in reply.body["text"]


def test_healthz_and_readyz_answer(running_front: RunningFront) -> None:
    health = httpx.get(running_front.url.replace("/slack/events", "/healthz"))
    assert health.status_code == 200 and health.json()["ok"] is True
    ready = httpx.get(running_front.url.replace("/slack/events", "/readyz"))
    assert (ready.status_code, ready.json()) == (200, {"ready": True, "reason": None})


def test_a_transient_slack_error_is_retried_and_nothing_is_lost(
    running_front: RunningFront,
) -> None:
    running_front.api.fail("chat.postMessage", "internal_error", times=2)
    running_front.api.fail("chat.update", "service_unavailable", times=1)
    running_front.post("/deploy", "iris v1")
    running_front.drain()

    posts = running_front.api.calls_to("chat.postMessage")
    assert [c.error for c in posts[:3]] == ["internal_error", "internal_error", None]
    parent, replies = thread_of(running_front)
    assert "iris v1 is live at" in parent.text
    assert len(replies) == len([c for c in posts if c.args.get("thread_ts")]) >= 5


def test_a_request_slack_delivers_four_times_runs_once(running_front: RunningFront) -> None:
    stamp = int(time.time())
    responses = [
        running_front.post(
            "/deploy",
            "iris v1",
            timestamp=stamp,
            trigger_id="13345224609.738",
            headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"}
            if n
            else None,
        )
        for n in range(4)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    running_front.drain()
    assert len(running_front.runtime.repos.operations.recent()) == 1
    parent, _ = thread_of(running_front)
    assert "iris v1 is live at" in parent.text


def test_a_retry_reaching_another_front_on_the_same_database_runs_nothing(
    running_front: RunningFront, slack_settings: SlackSettings
) -> None:
    # a second front (its own memory of what it saw) sharing the first one's database
    other = SlackFront(slack_settings, runtime=running_front.runtime)
    server = other.http_server(host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    other_url = f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    try:
        stamp = int(time.time())
        first = running_front.post(
            "/deploy", "iris v1", timestamp=stamp, trigger_id="13345224609.901"
        )
        retries = [
            post_command(
                other_url,
                running_front.api,
                "/deploy",
                "iris v1",
                timestamp=stamp,
                trigger_id="13345224609.901",
                headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"},
            )
            for n in (1, 2, 3)
        ]
        assert [r.status_code for r in (first, *retries)] == [200] * 4
        running_front.drain()
        assert other.dispatcher.wait_idle(30)
    finally:
        server.close()
        other.close()
    assert len(running_front.runtime.repos.operations.recent()) == 1
    # not even a refused second attempt ("locked", "already live") was made
    deploys = running_front.runtime.repos.audit.entries()
    assert [(a.action, a.outcome) for a in deploys] == [("deploy", "succeeded")]
    parent, _ = thread_of(running_front)
    assert "iris v1 is live at" in parent.text
