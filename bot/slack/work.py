"""Running one slash command after its ack: /status answers, deploys and scales report.

Everything here needs only the command payload Slack sent, so it runs the same in the
process that acked it or in a worker process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.webhook import WebhookClient

from bot.slack import messages
from bot.slack.blocks import section
from bot.slack.blocks import status as status_blocks
from bot.slack.groups import GroupDirectory
from bot.slack.poster import Poster
from bot.slack.reporter import ThreadReporter
from commands import status as status_command
from commands.base import Context, HelpText, StatusReport, UsageError
from commands.registry import parse
from core.events import NullReporter, Outcome, Refusal, Reporter
from core.roles import Actor

if TYPE_CHECKING:
    from core.runtime import Runtime

log = logging.getLogger("chatops.slack")

Command = dict[str, Any]


def line_of(command: Command) -> str:
    return f"{command.get('command', '')} {command.get('text') or ''}".strip()


class Responder:
    """Slack's `response_url` for one command: messages only its requester sees, or the
    channel when asked."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(
        self,
        *,
        text: str,
        response_type: str = "ephemeral",
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        if not self.url:
            log.warning("no response_url to answer on")
            return
        response = WebhookClient(self.url, timeout=15).send(
            text=text, blocks=blocks, response_type=response_type
        )
        if response.status_code != 200:
            log.warning("response_url answered HTTP %s", response.status_code)


class Work:
    def __init__(
        self,
        *,
        runtime: Runtime,
        poster: Poster,
        bot_name: str = "chatops",
        min_interval: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.poster = poster
        self.bot_name = bot_name
        self.min_interval = min_interval
        settings = runtime.settings
        handles = {
            entry
            for env in settings.environments
            for entry in (*env.admins, *env.developers)
            if entry.startswith("@")
        }
        self.groups = GroupDirectory(poster, handles, ttl_s=settings.group_cache_ttl_s)

    def groups_of(self, user: str) -> frozenset[str]:
        return self.groups.groups_of(user)

    def run(self, command: Command) -> None:
        """Run the command (already parsed once to ack it); never raises."""
        respond = Responder(str(command.get("response_url") or ""))
        try:
            found = parse(command.get("command", ""), command.get("text") or "")
            if isinstance(found, UsageError):  # the ack said so already
                return
            module, parsed = found
            if module is status_command:
                self._status(parsed, command, respond)
            else:
                self._operation(module.run, parsed, command, respond)
        except Exception as exc:
            log.exception("%s failed unexpectedly", line_of(command))
            try:
                respond(
                    text=messages.INTERNAL_ERROR.format(
                        command=line_of(command), error=type(exc).__name__
                    )
                )
            except Exception:
                log.exception("could not tell the requester")

    def _context(self, command: Command, reporter: Reporter) -> Context:
        user = str(command.get("user_id", ""))
        actor = Actor(id=user, name=f"<@{user}>", groups=self.groups_of(user))
        return Context(core=self.runtime, actor=actor, reporter=reporter, text=line_of(command))

    def _status(self, parsed: Any, command: Command, respond: Responder) -> None:
        reply = status_command.run(parsed, self._context(command, NullReporter()))
        if isinstance(reply, StatusReport):
            text, blocks = status_blocks(reply)
            respond(
                response_type="in_channel" if parsed.public else "ephemeral",
                text=text,
                blocks=blocks,
            )
        else:
            respond(text=reply.text)

    def _operation(self, run: Any, parsed: Any, command: Command, respond: Responder) -> None:
        reporter = ThreadReporter(
            poster=self.poster,
            channel=command.get("channel_id", ""),
            user=command.get("user_id", ""),
            command=line_of(command),
            respond=respond,
            bot_name=self.bot_name,
            min_interval=self.min_interval,
        )
        reply = run(parsed, self._context(command, reporter))
        if isinstance(reply, (Refusal, UsageError, HelpText)):
            respond(text=reply.text)
        elif isinstance(reply, Outcome) and reporter.ts is None:
            # the thread could not be opened anywhere: the requester still gets the end
            respond(text=reply.text, blocks=[section(reply.text)])
