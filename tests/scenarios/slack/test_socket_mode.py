"""Socket Mode: the same app and listeners as HTTP, fed by Slack's socket envelopes.

The envelope and the client that answers it are the parts of slack_sdk's protocol Bolt's
handler uses, so those are what these tests play; test_run_socket.py runs the whole front
against a Socket Mode server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.app import SlackFront
from bot.slack.settings import Mode, SlackSettings
from commands.registry import DIRECT, NAMESPACE
from core.runtime import Runtime
from tests.scenarios.slack.conftest import ALICE, BOT_TOKEN, OPS
from tests.slack_api.emulator import SlackEmulator


class EnvelopeClient(AsyncBaseSocketModeClient):
    """Records the envelope acknowledgements Slack's socket server would receive."""

    def __init__(self, web_client: Any) -> None:
        self.web_client = web_client
        self.logger = logging.getLogger("socket-mode-test")
        self.sent: list[SocketModeResponse] = []

    async def send_socket_mode_response(self, response: Any) -> None:
        self.sent.append(response)


def handle(front: SlackFront, *requests: SocketModeRequest) -> list[SocketModeResponse]:
    """What the front's Socket Mode handler acks to `requests`, handled one by one."""
    client = EnvelopeClient(front.client)

    async def run() -> None:
        handler = front.socket_mode_handler()
        assert handler.app is front.app
        for request in requests:
            await handler.handle(client, request)
        await handler.client.close()

    asyncio.run(run())
    return client.sent


def envelope(command: str, text: str) -> SocketModeRequest:
    return SocketModeRequest(
        type="slash_commands",
        envelope_id=f"env-{command}-{text}",
        payload={
            "command": command,
            "text": text,
            "user_id": ALICE,
            "user_name": "alice",
            "channel_id": OPS,
            "channel_name": "ops",
            "team_id": "T0001",
            "response_url": "",
            "trigger_id": "1.2.3",
            "api_app_id": "A0001",
        },
    )


@pytest.fixture
def socket_front(
    runtime: Runtime, slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A0001-1111-emulated")
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("CHATOPS_SLACK_UPDATE_INTERVAL", "0.3")
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    settings = SlackSettings()
    assert settings.mode is Mode.SOCKET
    front = SlackFront(settings, runtime=runtime)
    yield front
    front.close()


def test_every_command_is_wired_in_socket_mode_as_in_http(socket_front: SlackFront) -> None:
    registered = (NAMESPACE, *DIRECT)  # Slack's own names (/status, /help) are never ours
    sent = handle(socket_front, *(envelope(f"/{name}", "`") for name in registered))
    assert len(sent) == len(registered)  # wrong for every command
    for response in sent:
        assert response.payload and response.payload["response_type"] == "ephemeral"


def test_a_deploy_over_socket_mode_reports_in_the_channel(
    socket_front: SlackFront, slack_api: SlackEmulator
) -> None:
    (ack,) = handle(socket_front, envelope("/deploy", "iris v1"))
    assert ack.envelope_id == "env-/deploy-iris v1" and not ack.payload
    assert socket_front.dispatcher.wait_idle(60)
    assert any("iris v1 is live at" in m.text for m in slack_api.messages(OPS))


def test_every_envelope_is_acked_taken_or_not(socket_front: SlackFront) -> None:
    unknown_button = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": ALICE},
        "actions": [{"action_id": "no-such-button", "value": "x", "action_ts": "1.2"}],
    }
    reaction = {
        "type": "event_callback",
        "team_id": "T0001",
        "event_id": "Ev-reaction",
        "event": {"type": "reaction_added", "user": ALICE, "reaction": "tada"},
    }
    unregistered = envelope("/notours", "hello").payload
    malformed = {**unknown_button, "actions": "notalist"}
    requests = [
        SocketModeRequest(type="interactive", envelope_id="env-button", payload=unknown_button),
        SocketModeRequest(type="events_api", envelope_id="env-reaction", payload=reaction),
        SocketModeRequest(type="slash_commands", envelope_id="env-cmd", payload=unregistered),
        SocketModeRequest(type="interactive", envelope_id="env-bad", payload=malformed),
    ]
    acked = [r.envelope_id for r in handle(socket_front, *requests)]
    assert acked == ["env-button", "env-reaction", "env-cmd", "env-bad"]
