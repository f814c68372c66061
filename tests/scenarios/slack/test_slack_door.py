"""Only requests Slack signed, for the bot's own team, are served: everything else is refused
with 401/400/413/403 before it is parsed, never with a 500, never logged whole."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
import urllib.parse

import httpx
import pytest

from tests.scenarios.slack.conftest import ALICE, OPS, SIGNING_SECRET, RunningFront

DEPLOY = urllib.parse.urlencode(
    {
        "team_id": "T0001",
        "channel_id": OPS,
        "user_id": ALICE,
        "command": "/deploy",
        "text": "iris v1 to prod",
        "response_url": "http://127.0.0.1:9/none",
        "trigger_id": "1.2.3",
    }
)


def signed(body: str, *, ts: str | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    stamp = ts or str(int(time.time()))
    mac = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={mac}"}


def post(front: RunningFront, body: str, headers: dict[str, str], kind: str) -> httpx.Response:
    return httpx.post(front.url, content=body, headers={"Content-Type": kind, **headers})


FORM = "application/x-www-form-urlencoded"
UNSIGNED = {
    "no headers": {},
    "timestamp abc": {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64},
    "empty timestamp": {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=" + "0" * 64},
    "timestamp 1e9": {"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=" + "0" * 64},
    "made-up signature": {
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    },
    "signature not hex": {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=zz"},
}


@pytest.mark.parametrize("case", sorted(UNSIGNED))
def test_an_unsigned_deploy_by_an_admins_id_is_refused_and_runs_nothing(
    running_front: RunningFront, case: str
) -> None:
    answer = post(running_front, DEPLOY, UNSIGNED[case], FORM)
    assert answer.status_code == 401
    assert running_front.runtime.jobs.unfinished(frozenset({"slack"})) == 0
    assert running_front.runtime.repos.audit.entries(limit=5) == []


def test_unsigned_json_is_401_not_a_traceback(running_front: RunningFront) -> None:
    answer = post(running_front, '{"type": "event_callback"', {}, "application/json")
    assert answer.status_code == 401
    assert "Traceback" not in answer.text


def test_an_old_signature_is_refused(running_front: RunningFront) -> None:
    stale = str(int(time.time()) - 600)
    assert post(running_front, DEPLOY, signed(DEPLOY, ts=stale), FORM).status_code == 401


def test_a_signed_body_that_is_no_slack_payload_is_400(running_front: RunningFront) -> None:
    body = "[1, 2"
    assert post(running_front, body, signed(body), "application/json").status_code == 400


def test_a_signed_request_from_another_team_is_refused(running_front: RunningFront) -> None:
    body = DEPLOY.replace("T0001", "T0THEIRS")
    assert post(running_front, body, signed(body), FORM).status_code == 403
    assert running_front.runtime.repos.audit.entries(limit=5) == []


def test_a_signed_request_of_the_bots_team_is_served(running_front: RunningFront) -> None:
    body = DEPLOY.replace("iris+v1+to+prod", "")  # a usage error: answered in the ack
    answer = post(running_front, body, signed(body), FORM)
    assert answer.status_code == 200, answer.text
    # the placeholder shows, not a link
    assert "&lt;model&gt;" in answer.json()["text"]


def _raw(port: int, head: str, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + payload)
        return s.recv(4096)


def test_a_100_mb_unsigned_body_is_413_unread_and_the_log_stays_small(
    running_front: RunningFront, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = int(urllib.parse.urlsplit(running_front.url).port or 0)
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
    )
    answer = _raw(port, head, b'{"marker": "' + b"A" * 60_000)
    assert answer.startswith(b"HTTP/1.1 413")
    # streamed without a length, with headers that look signed: cut off after about 1 MB
    stamp = str(int(time.time()))
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: v0={'a' * 64}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"A" * 65536
    stream = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 20
    assert _raw(port, head, stream).startswith(b"HTTP/1.1 413")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert len(logged) < 2000 and "AAAA" not in logged


def test_http_mode_refuses_to_start_without_a_signing_secret(
    slack_settings: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    assert main(["run", "--mode", "http"]) == 2
    assert "SLACK_SIGNING_SECRET is not set" in capsys.readouterr().out


def test_a_json_event_of_the_bots_team_reaches_bolt(running_front: RunningFront) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123"})
    answer = post(running_front, body, signed(body), "application/json")
    assert (answer.status_code, answer.json()) == (200, {"challenge": "c-123"})


def test_a_signed_json_that_is_no_slack_payload_is_400_as_readme_says(
    running_front: RunningFront,
) -> None:
    body = json.dumps({"hello": 1})
    answer = post(running_front, body, signed(body), "application/json")
    assert answer.status_code == 400, answer.text
    assert running_front.runtime.jobs.unfinished(frozenset({"slack"})) == 0


def test_a_signed_click_whose_actions_are_no_list_is_400_without_a_traceback(
    running_front: RunningFront, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    click = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": ALICE, "team_id": "T0001"},
        "actions": "notalist",
    }
    body = urllib.parse.urlencode({"payload": json.dumps(click)})
    answer = post(running_front, body, signed(body), FORM)
    assert answer.status_code == 400, answer.text
    assert "Traceback" not in caplog.text and "Traceback" not in answer.text
    assert running_front.runtime.jobs.unfinished(frozenset({"slack"})) == 0


def test_a_slash_command_whose_text_says_payload_is_served(running_front: RunningFront) -> None:
    body = DEPLOY.replace("iris+v1+to+prod", "payload")  # a usage error: answered in the ack
    answer = post(running_front, body, signed(body), FORM)
    assert answer.status_code == 200, answer.text
    assert "payload" in answer.json()["text"]


def test_a_signed_click_no_listener_takes_is_acked(running_front: RunningFront) -> None:
    click = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": ALICE, "team_id": "T0001"},
        "actions": [{"action_id": "no-such-button", "value": "x", "action_ts": "1.2"}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(click)})
    assert post(running_front, body, signed(body), FORM).status_code == 200
