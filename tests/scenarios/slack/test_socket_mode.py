"""Socket Mode: the same app and listeners as HTTP, fed by Slack's socket envelopes.

Slack's socket server is out of reach here; the envelope and the client that answers it are
the parts of slack_sdk's protocol Bolt's handler uses, so those are what the test plays.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.app import SlackFront
from bot.slack.settings import Mode, SlackSettings
from commands.registry import DIRECT, NAMESPACE
from core.runtime import Runtime
from tests.scenarios.slack.conftest import ALICE, BOT_TOKEN, OPS
from tests.slack_api.emulator import SlackEmulator


class EnvelopeClient(BaseSocketModeClient):
    """Records the envelope acknowledgements Slack's socket server would receive."""

    def __init__(self, web_client: Any) -> None:
        self.web_client = web_client
        self.logger = logging.getLogger("socket-mode-test")
        self.sent: list[SocketModeResponse] = []

    def send_socket_mode_response(self, response: Any) -> None:
        self.sent.append(response)


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
    handler = socket_front.socket_mode_handler()
    assert handler.app is socket_front.app
    client = EnvelopeClient(socket_front.client)
    registered = (NAMESPACE, *DIRECT)  # Slack's own names (/status, /help) are never ours
    for name in registered:
        handler.handle(client, envelope(f"/{name}", "`"))  # wrong for every command
    assert len(client.sent) == len(registered)
    for response in client.sent:
        assert response.payload and response.payload["response_type"] == "ephemeral"


def test_a_deploy_over_socket_mode_reports_in_the_channel(
    socket_front: SlackFront, slack_api: SlackEmulator
) -> None:
    client = EnvelopeClient(socket_front.client)
    socket_front.socket_mode_handler().handle(client, envelope("/deploy", "iris v1"))
    (ack,) = client.sent
    assert ack.envelope_id == "env-/deploy-iris v1" and not ack.payload
    assert socket_front.dispatcher.wait_idle(60)
    assert any("iris v1 is live at" in m.text for m in slack_api.messages(OPS))
