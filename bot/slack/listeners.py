"""Slash-command listeners: the same for HTTP and Socket Mode.

A listener only parses: text that does not parse, and /help, are answered in the ack
(ephemeral); everything else is handed to the dispatcher before the ack, so whoever sees the
ack can see the work under way. Nothing slow happens before the ack.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.slack.dispatch import Dispatcher
from commands import help as help_command
from commands.base import UsageError
from commands.registry import COMMANDS, parse


class Listeners:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def register(self, app: App) -> None:
        for name in COMMANDS:
            app.command(f"/{name}")(self.on_command)

    def on_command(self, ack: Ack, command: dict[str, Any]) -> None:
        found = parse(command.get("command", ""), command.get("text") or "")
        if isinstance(found, UsageError):
            ack(response_type="ephemeral", text=found.text)
            return
        module, parsed = found
        if module is help_command:
            ack(response_type="ephemeral", text=help_command.describe(parsed.command))
            return
        self.dispatcher.submit(dict(command))
        ack()
