"""Slash-command, event and button listeners: the same for HTTP and Socket Mode.

A listener only parses and records: slash-command text that does not parse, and help, are
answered in the ack (ephemeral); everything else is recorded as a job (`core.store.jobs`)
before the ack, so an acknowledged request survives any process that would run it. Mentions
and DMs are always recorded (an event's ack carries no answer): the worker answers them where
they were typed. A retried delivery (same Slack id, `event_id` for events) records nothing.
Nothing slow happens before the ack.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from slack_bolt import Ack, App

from bot.slack.intake.dispatch import Dispatcher
from bot.slack.intake.jobs import (
    FRONT,
    AnnouncedAction,
    AnyJob,
    ButtonClick,
    CanaryClick,
    DirectMessage,
    HomeOpened,
    Mention,
    Query,
    RollbackClick,
    SlashCommand,
)
from bot.slack.posting.oncall import BROKEN_BUTTON, click_of
from bot.slack.rendering import messages
from bot.slack.rendering.ids import (
    ALIAS_ANNOUNCED,
    APPROVE,
    CANARY_ACTIONS,
    DEPLOY_ANNOUNCED,
    PROMOTE_ANNOUNCED,
    REJECT,
    ROLLBACK,
)
from bot.slack.rendering.mrkdwn import shown
from commands import canary as canary_command
from commands import help as help_command
from commands import history as history_command
from commands import status as status_command
from commands import token as token_command
from commands.base import UsageError
from commands.naming import NAMESPACE, Naming
from commands.plan import is_plan
from commands.registry import describe, parse, split
from core.errors import StoreError
from core.store.jobs import JobQueue

log = logging.getLogger("chatops.slack")
QUICK = (status_command, history_command, help_command, token_command, canary_command)
_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*")


class Listeners:
    def __init__(
        self,
        queue: JobQueue,
        dispatcher: Dispatcher,
        *,
        command: str = NAMESPACE,
        direct: bool = True,
    ) -> None:
        self.queue = queue
        self.dispatcher = dispatcher
        self.command = command
        self.direct = direct

    def register(self, app: App) -> None:
        app.command(f"/{self.command}")(self.on_command)
        for name in self.naming.registered_names():
            app.command(f"/{name}")(self.on_command)
        for action in (APPROVE, REJECT):
            app.action(action)(self.on_decision)
        for action in (DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED, ALIAS_ANNOUNCED):
            app.action(action)(self.on_announced)
        app.action(ROLLBACK)(self.on_rollback)
        for action in CANARY_ACTIONS:
            app.action(action)(self.on_canary)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("app_home_opened")(self.on_home)

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
            **self._naming,
        )
        self._record(ack, f"action:{user}:{stamp}" if stamp else "", job, job.kind)

    def on_announced(self, ack: Ack, body: dict[str, Any]) -> None:
        """A button of a registry announcement: run as the command it stands for."""
        job = AnnouncedAction.of_click(body, namespace=self.command)
        self._clicked(ack, body, job, "command", broken=messages.ANNOUNCE_BAD_BUTTON)

    def on_rollback(self, ack: Ack, body: dict[str, Any]) -> None:
        """Roll back clicked on an endpoint announced down: a job the core admits."""
        self._clicked(ack, body, click_of(body), "command")

    def on_canary(self, ack: Ack, body: dict[str, Any]) -> None:
        """Promote, Hold or Abort on a canary's card: `/canary` as the clicker typed it,
        quick (never behind the deploy it decides)."""
        self._clicked(ack, body, CanaryClick.of_click(body), "query")

    def _clicked(
        self,
        ack: Ack,
        body: dict[str, Any],
        job: AnnouncedAction | RollbackClick | CanaryClick | None,
        kind: str,
        *,
        broken: str = BROKEN_BUTTON,
    ) -> None:
        """A button that stands for a command, recorded as that command of whoever clicked,
        once per click; a button the bot did not make (`job` None) is answered `broken`."""
        if job is None:
            ack(response_type="ephemeral", text=broken)
            return
        job = job.model_copy(update=self._naming)
        stamp = (body.get("actions") or [{}])[0].get("action_ts") or ""
        self._record(ack, f"action:{job.user_id}:{stamp}" if stamp else "", job, kind)

    def on_command(self, ack: Ack, command: dict[str, Any]) -> None:
        job = SlashCommand(
            command=str(command.get("command", "")),
            text=str(command.get("text") or ""),
            user_id=str(command.get("user_id", "")),
            channel_id=str(command.get("channel_id", "")),
            response_url=str(command.get("response_url", "")),
            **self._naming,
        )
        found = parse(*job.entry)
        if isinstance(found, UsageError):  # escaped: `<model>` shows, `<!here>` pings nobody
            ack(response_type="ephemeral", text=shown(found.text, self.naming))
            return
        module, parsed = found
        if module is help_command:
            text = shown(describe(parsed.command), self.naming)
            ack(response_type="ephemeral", text=text)
            return
        if module in QUICK or is_plan(module, parsed):  # plans change nothing: quick
            job = Query(**job.model_dump(exclude={"kind"}))
        trigger = command.get("trigger_id") or ""
        self._record(ack, f"command:{trigger}" if trigger else "", job, job.kind)

    def on_mention(self, ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
        """`@chatops deploy iris v3` in a channel or thread; answered where it was typed."""
        text = _MENTION.sub("", str(event.get("text") or ""), count=1).strip()
        job = Mention(text=text, **self._where(event))
        self._record(ack, self._event_key(body), job, self._kind(text))

    def on_message(self, ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A direct message to the bot; edits, joins and messages of bots are no commands."""
        if (
            event.get("channel_type") != "im"
            or event.get("subtype")
            or event.get("bot_id")
            or not event.get("user")
        ):
            ack()
            return
        text = str(event.get("text") or "").strip()
        job = DirectMessage(text=text, **self._where(event))
        self._record(ack, self._event_key(body), job, self._kind(text))

    def on_home(self, ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            ack()  # the Messages tab opened: nothing to show
            return
        job = HomeOpened(user_id=str(event["user"]), **self._naming)
        self._record(ack, self._event_key(body), job, "query")

    @property
    def naming(self) -> Naming:
        """The commands this front registers: what its answers tell people to type."""
        return Naming(self.command, self.direct)

    @property
    def _naming(self) -> dict[str, Any]:
        # recorded with each job: its answers name commands as this front registers them
        return {"namespace": self.command, "direct": self.direct}

    def _where(self, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "user_id": str(event.get("user", "")),
            "channel_id": str(event.get("channel", "")),
            "ts": str(event.get("ts", "")),
            "thread_ts": event.get("thread_ts") or None,
            **self._naming,
        }

    def _kind(self, text: str) -> str:
        """Queue typed status, history and help (and text that does not parse) as quick."""
        found = parse(*split(text, namespace=self.command))
        if isinstance(found, UsageError) or found[0] in QUICK or is_plan(*found):
            return "query"
        return "command"

    @staticmethod
    def _event_key(body: dict[str, Any]) -> str:
        # Slack retries a delivery it thinks failed with the same event_id
        event_id = body.get("event_id") or ""
        return f"event:{event_id}" if event_id else ""

    def _record(self, ack: Ack, key: str, job: AnyJob, kind: str) -> None:
        unready = self.dispatcher.refusing
        if unready is not None:
            if isinstance(
                job,
                (SlashCommand, Query, ButtonClick, AnnouncedAction, RollbackClick, CanaryClick),
            ):
                ack(response_type="ephemeral", text=messages.NOT_READY.format(reason=unready))
            else:
                ack()  # an event's ack carries no answer; Slack would retry it meanwhile
            return
        began = time.perf_counter()
        try:
            recorded = self.queue.record(key=key, front=FRONT, job=job, kind=kind)
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
