"""The Slack front for real: a running HTTP app, signed requests, a Slack Web API emulator."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.slack.app import EVENTS_PATH, SlackFront
from bot.slack.settings import SlackSettings
from core.config import Settings
from core.runtime import Runtime
from tests.conftest import make_settings
from tests.slack_api.emulator import SlackEmulator

BOT_TOKEN = "xoxb-1111-2222-emulated0token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OPS, RANDOM = "C0OPS", "C0RANDOM"
ALICE = "U0ALICE"
_TRIGGERS = itertools.count(1000)


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    """Alice administers dev and prod; everyone else is a viewer."""
    base = make_settings(tmp_path / "state", registry_uri)
    for env in base.environments:
        env.admins = [ALICE]
    return base


@pytest.fixture
def slack_api() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(bot_token=BOT_TOKEN).start()
    emulator.add_channel(OPS, name="ops", member=True)
    emulator.add_channel(RANDOM, name="random", member=False)
    emulator.add_user(ALICE, name="alice")
    yield emulator
    emulator.stop()


def post_command(
    url: str,
    api: SlackEmulator,
    command: str,
    text: str = "",
    *,
    channel: str = OPS,
    user: str = ALICE,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    trigger_id: str | None = None,
) -> httpx.Response:
    """A slash-command request signed exactly as Slack signs it."""
    body = urllib.parse.urlencode(
        {
            "token": "verification-token-unused",
            "team_id": "T0001",
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": "alice",
            "command": command,
            "text": text,
            "api_app_id": "A0001",
            "is_enterprise_install": "false",
            "response_url": api.response_url(command),
            # Slack gives every invocation its own trigger id
            "trigger_id": trigger_id or f"{next(_TRIGGERS)}.{int(time.time())}",
        }
    )
    return signed_post(url, body, secret=secret, timestamp=timestamp, headers=headers)


def signed_post(
    url: str,
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """`body`, form-encoded, posted as Slack posts it: signed with `secret` at `timestamp`
    (now, unless given)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return httpx.post(
        url,
        content=body,
        timeout=10,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
            **(headers or {}),
        },
    )


def post_click(
    url: str,
    api: SlackEmulator,
    user: str,
    *,
    action_id: str,
    value: str,
    message_ts: str,
    thread_ts: str | None = None,
    block_id: str = "",
    channel: str = OPS,
    response: str = "",
) -> httpx.Response:
    """A button click (`block_actions`) signed exactly as Slack signs it, on the message
    `message_ts` of `channel`; what is posted to its response_url is recorded under
    `response` (default: `click-<user>`)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "api_app_id": "A0001",
        "team": {"id": "T0001"},
        "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": channel.lower()},
        "message": {"ts": message_ts, "text": "clicked"}
        | ({"thread_ts": thread_ts} if thread_ts else {}),
        "response_url": api.response_url(response or f"click-{user}"),
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
    return signed_post(url, urllib.parse.urlencode({"payload": json.dumps(payload)}))


@dataclass
class RunningFront:
    front: SlackFront
    url: str
    api: SlackEmulator
    runtime: Runtime

    def post(self, command: str, text: str = "", **options: Any) -> httpx.Response:
        return post_command(self.url, self.api, command, text, **options)

    def click(self, user: str, **options: Any) -> httpx.Response:
        return post_click(self.url, self.api, user, **options)

    def drain(self, timeout: float = 60) -> None:
        """Wait until every operation the front started has ended."""
        assert self.front.dispatcher.wait_idle(timeout), "operations still running"


@pytest.fixture
def slack_settings(slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch) -> SlackSettings:
    # the same variables a deployment sets; the Web API URL points at the emulator
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("CHATOPS_SLACK_UPDATE_INTERVAL", "0.3")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    return SlackSettings()


@pytest.fixture
def running_front(
    runtime: Runtime, slack_settings: SlackSettings, slack_api: SlackEmulator
) -> Iterator[RunningFront]:
    front = SlackFront(slack_settings, runtime=runtime)
    server = front.http_server(host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    port = server.port
    yield RunningFront(
        front=front, url=f"http://127.0.0.1:{port}{EVENTS_PATH}", api=slack_api, runtime=runtime
    )
    server.close()
    front.close()


def texts(messages: list[Any]) -> str:
    return "\n".join(m.text for m in messages)


def bot_environment(
    api: SlackEmulator,
    *,
    port: int,
    state_dir: Path,
    tracking_uri: str,
    environments: list[dict[str, Any]],
    **extra: str,
) -> dict[str, str]:
    """The variables a deployed `chatops run` in HTTP mode gets, Slack pointed at `api`."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": api.api_url,
        "PORT": str(port),
        "SLACK_HOST": "127.0.0.1",
        "CHATOPS_STATE_DIR": str(state_dir),
        "CHATOPS_MLFLOW_TRACKING_URI": tracking_uri,
        "CHATOPS_ENVIRONMENTS": json.dumps(environments),
        "CHATOPS_SLACK_UPDATE_INTERVAL": "0.3",
        **extra,
    }
    env.pop("SLACK_APP_TOKEN", None)
    return env
