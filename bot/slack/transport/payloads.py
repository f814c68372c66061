"""What Slack sends, parsed once and checked for the shape our listeners rely on.

Both transports meet here: the HTTP door parses a signed body with `parse` and Socket Mode
hands over envelopes slack_sdk already parsed; either way `problem` says, before Bolt sees a
payload, why it is not one Slack sends (a 400 over HTTP, an empty ack over the socket), so a
signed but malformed request is answered, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

UNTEAMED = frozenset({"url_verification", "ssl_check"})
# what Slack sends besides slash commands and event callbacks; each needs nothing more of its
# shape from us (Bolt reads what it needs of them with .get)
_INTERACTIVE = frozenset(
    {
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
        "block_suggestion",
        "interactive_message",
        "app_rate_limited",
    }
)


def parse(body: bytes, content_type: bytes) -> dict[str, Any] | None:
    """The payload of a request body: Slack's JSON, its form (a slash command, `ssl_check`) or
    its form with a JSON `payload` (buttons); None when it is none of them."""
    try:
        if content_type.split(b";")[0].strip() == b"application/json":
            data = json.loads(body)
        else:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            data = json.loads(form["payload"]) if "payload" in form else form
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def kind(payload: dict[str, Any]) -> str:
    """`command` for a slash command, `ssl_check`, else the payload's own `type` ("" if none)."""
    if "ssl_check" in payload:
        return "ssl_check"
    if isinstance(payload.get("command"), str) and "type" not in payload:
        return "command"
    kind_ = payload.get("type")
    return kind_ if isinstance(kind_, str) else ""


def problem(payload: dict[str, Any]) -> str | None:
    """Why `payload` is not something Slack sends, in a few words; None when it is."""
    found = kind(payload)
    if found in ("command", "ssl_check", "url_verification") or found in _INTERACTIVE:
        return None
    if found == "event_callback":
        event = payload.get("event")
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            return None
        return "an event callback without an event"
    if found == "block_actions":
        actions = payload.get("actions")
        if not isinstance(payload.get("user"), dict):
            return "a button click without its user"
        if isinstance(actions, list) and actions and all(isinstance(a, dict) for a in actions):
            return None
        return "a button click without a list of actions"
    return "not a payload Slack sends"


def teams(payload: dict[str, Any]) -> set[str]:
    """The team (and Enterprise Grid org) ids a payload comes from."""
    ids = {payload.get("team_id"), payload.get("enterprise_id")}
    for key in ("team", "enterprise"):
        if isinstance(payload.get(key), dict):
            ids.add(payload[key].get("id"))
    if isinstance(payload.get("user"), dict):
        ids.add(payload["user"].get("team_id"))
    return {i for i in ids if isinstance(i, str) and i}
