"""Socket Mode's adapter: Bolt's aiohttp one, acking every envelope. Loaded only by a front in
Socket Mode (aiohttp and the adapter weigh about 12 MB an HTTP front does without)."""

from __future__ import annotations

import logging
import time

from slack_bolt.adapter.socket_mode.aiohttp import SocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import run_bolt_app
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.transport import payloads

log = logging.getLogger("chatops.slack")

# How often the Socket Mode link is pinged: a link that answers no ping within half of it is
# given up and replaced (aiohttp's heartbeat), so a dead link costs seconds, not a minute
SOCKET_PING_S = 3.0


class AckingSocketModeHandler(SocketModeHandler):
    """Bolt's aiohttp Socket Mode adapter, acking every envelope: one no listener takes (a
    button of an unknown action, a command or event the app does not handle) or that is not
    a payload Slack sends gets an empty ack, not none (Slack would show an error or retry)."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        began = time.time()
        payload = req.payload
        if not isinstance(payload, dict) or (why := payloads.problem(payload)) is not None:
            log.warning(
                "acked an envelope that is no Slack payload: %s",
                "not a dict" if not isinstance(payload, dict) else why,
            )
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        try:
            response = run_bolt_app(self.app, req)
        except Exception as exc:
            log.error("an envelope could not be handled: %s", type(exc).__name__)
            response = None
        if response is None or response.status != 200:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await send_async_response(client, req, response, began)
