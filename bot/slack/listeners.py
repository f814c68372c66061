"""Slash-command and button listeners: the same for HTTP and Socket Mode.

A listener only parses and records: text that does not parse, and /help, are answered in the
ack (ephemeral); everything else is recorded as a job in the state database before the ack,
so an acknowledged request survives any process that would run it. A retried delivery (same
Slack id) records nothing. Nothing slow happens before the ack.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack, App

from bot.slack import messages
from bot.slack.dispatch import Dispatcher
from bot.slack.ids import APPROVE, REJECT
from bot.slack.jobs import FRONT, AnyJob, ButtonClick, Query, SlashCommand
from bot.slack.mrkdwn import escape
from commands import help as help_command
from commands import history as history_command
from commands import status as status_command
from commands.base import UsageError
from commands.registry import COMMANDS, parse
from core.errors import StoreError
from core.jobs import JobQueue

log = logging.getLogger("chatops.slack")


class Listeners:
    def __init__(self, queue: JobQueue, dispatcher: Dispatcher) -> None:
        self.queue = queue
        self.dispatcher = dispatcher

    def register(self, app: App) -> None:
        for name in COMMANDS:
            app.command(f"/{name}")(self.on_command)
        for action in (APPROVE, REJECT):
            app.action(action)(self.on_decision)

    def on_decision(self, ack: Ack, body: dict[str, Any]) -> None:
        """Approve / Reject clicked on an approval request: a job of its own."""
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        stamp = action.get("action_ts") or ""
        job = ButtonClick(
            approve=action.get("action_id") == APPROVE,
            request=str(action.get("value", "")),
            user_id=user,
            channel_id=str((body.get("channel") or {}).get("id", "")),
            response_url=str(body.get("response_url", "")),
        )
        self._record(ack, f"action:{user}:{stamp}" if stamp else "", job)

    def on_command(self, ack: Ack, command: dict[str, Any]) -> None:
        found = parse(command.get("command", ""), command.get("text") or "")
        if isinstance(found, UsageError):  # escaped: `<model>` shows, `<!here>` pings nobody
            ack(response_type="ephemeral", text=escape(found.text))
            return
        module, parsed = found
        if module is help_command:
            ack(response_type="ephemeral", text=escape(help_command.describe(parsed.command)))
            return
        kind = Query if module in (status_command, history_command) else SlashCommand
        job = kind(
            command=str(command.get("command", "")),
            text=str(command.get("text") or ""),
            user_id=str(command.get("user_id", "")),
            channel_id=str(command.get("channel_id", "")),
            response_url=str(command.get("response_url", "")),
        )
        trigger = command.get("trigger_id") or ""
        self._record(ack, f"command:{trigger}" if trigger else "", job)

    def _record(self, ack: Ack, key: str, job: AnyJob) -> None:
        unready = self.dispatcher.unready
        if unready is not None:
            ack(response_type="ephemeral", text=messages.NOT_READY.format(reason=unready))
            return
        began = time.perf_counter()
        try:
            recorded = self.queue.record(key=key, front=FRONT, job=job, kind=job.kind)
        except StoreError as exc:
            log.error("could not record a job: %s", exc.message)
            ack(response_type="ephemeral", text=messages.NOT_RECORDED.format(error=exc.message))
            return
        spent = time.perf_counter() - began
        if spent > 0.02:  # a slow write delays every ack behind it: worth knowing why
            log.warning("recording a job took %.0f ms", spent * 1000)
        if recorded is None:
            log.info("%s was recorded already (a retried delivery): not again", key)
        else:
            self.dispatcher.nudge()
        ack()
