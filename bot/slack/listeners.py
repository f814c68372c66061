"""Slash-command listeners: the same for HTTP and Socket Mode.

A listener only parses: text that does not parse, and /help, are answered in the ack
(ephemeral); everything else is handed to the dispatcher before the ack, so whoever sees the
ack can see the work under way. Nothing slow happens before the ack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot.slack.dispatch import Dispatcher
from bot.slack.ids import APPROVE, REJECT
from commands import help as help_command
from commands.base import UsageError
from commands.registry import COMMANDS, parse


class Seen:
    """Requests already handed on, by Slack's own id for them, in this front's memory: a
    retried delivery or a double click is acknowledged again but handed on once. (Fronts
    sharing a database are kept from running one twice after the ack, by `Work`.)"""

    def __init__(
        self, *, ttl_s: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._at: dict[str, float] = {}
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        """True the first time `key` is seen within the TTL."""
        if not key:
            return True
        now = self.clock()
        with self._lock:
            if len(self._at) > 10_000:
                self._at = {k: t for k, t in self._at.items() if now - t < self.ttl_s}
            seen = self._at.get(key)
            if seen is not None and now - seen < self.ttl_s:
                return False
            self._at[key] = now
            return True


class Listeners:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.seen = Seen()

    def register(self, app: App) -> None:
        for name in COMMANDS:
            app.command(f"/{name}")(self.on_command)
        for action in (APPROVE, REJECT):
            app.action(action)(self.on_decision)

    def on_decision(self, ack: Ack, body: dict[str, Any]) -> None:
        """Approve / Reject clicked on an approval request: decided in the worker."""
        action = (body.get("actions") or [{}])[0]
        user = (body.get("user") or {}).get("id", "")
        stamp = action.get("action_ts") or ""
        key = f"action:{user}:{stamp}" if stamp else ""
        if not self.seen.first(key):
            ack()
            return
        self.dispatcher.submit(
            {
                "type": "block_actions",
                "action": action.get("action_id", ""),
                "request": action.get("value", ""),
                "user_id": (body.get("user") or {}).get("id", ""),
                "channel_id": (body.get("channel") or {}).get("id", ""),
                "response_url": body.get("response_url", ""),
                "command": f"/{action.get('action_id', '')}",
                "text": f"{action.get('value', '')} (button)",
                "delivery": key,
            }
        )
        ack()

    def on_command(self, ack: Ack, command: dict[str, Any]) -> None:
        found = parse(command.get("command", ""), command.get("text") or "")
        if isinstance(found, UsageError):
            ack(response_type="ephemeral", text=found.text)
            return
        module, parsed = found
        if module is help_command:
            ack(response_type="ephemeral", text=help_command.describe(parsed.command))
            return
        trigger = command.get("trigger_id") or ""
        key = f"command:{trigger}" if trigger else ""
        if self.seen.first(key):
            self.dispatcher.submit({**command, "delivery": key})
        ack()
