"""Running one slash command after its ack: /status answers, deploys and scales report.

Everything here needs only the command payload Slack sent, so it runs the same in the
process that acked it or in a worker process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.slack import messages
from bot.slack.blocks import approval as approval_blocks
from bot.slack.blocks import decided as decided_blocks
from bot.slack.blocks import section
from bot.slack.blocks import status as status_blocks
from bot.slack.groups import GroupDirectory
from bot.slack.ids import APPROVE
from bot.slack.poster import NO_ACCESS, Poster
from bot.slack.reporter import ThreadReporter
from commands import approve as approve_command
from commands import reject as reject_command
from commands import status as status_command
from commands.base import Context, StatusReport, UsageError
from commands.registry import parse
from core.approvals import ApprovalRequested
from core.errors import StoreError
from core.events import LogReporter, Notice, NullReporter, Outcome, Refusal, Reporter
from core.models import Operation
from core.registry.runs import Registered
from core.roles import Actor
from core.scrub import scrub, scrub_value

if TYPE_CHECKING:
    from core.runtime import Runtime

log = logging.getLogger("chatops.slack")

Command = dict[str, Any]  # a slash command's payload, or a button click's (type block_actions)


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
        text, blocks = scrub(text), scrub_value(blocks)  # the last edge before Slack
        # never replace_original: a button's message changes only through chat.update
        try:
            response = WebhookClient(self.url, timeout=15).send(
                text=text, blocks=blocks, response_type=response_type, replace_original=False
            )
        except (ValueError, OSError, SlackClientError) as exc:  # a response_url we cannot use
            log.warning("could not answer on the response_url: %s", type(exc).__name__)
            return
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

    def reporter_for(self, op: Operation) -> Reporter:
        """Where an operation taken over from another bot process reports: its own thread."""
        if op.reply_to.get("front") != "slack" or not op.reply_to.get("channel"):
            return LogReporter()
        return ThreadReporter.resuming(
            op.reply_to,
            poster=self.poster,
            bot_name=self.bot_name,
            min_interval=self.min_interval,
        )

    def groups_of(self, user: str) -> frozenset[str]:
        return self.groups.groups_of(user)

    def run(self, command: Command) -> None:
        """Run a slash command (already parsed once to ack it) or a button click; never
        raises: what goes wrong is told to the requester."""
        respond = Responder(str(command.get("response_url") or ""))
        if not self._first_delivery(str(command.get("delivery") or "")):
            return
        try:
            if command.get("type") == "block_actions":
                self._decision(command, respond)
                return
            found = parse(command.get("command", ""), command.get("text") or "")
            if isinstance(found, UsageError):  # the ack said so already
                return
            module, parsed = found
            if module is status_command:
                self._status(parsed, command, respond)
            elif module in (approve_command, reject_command):
                self._decision(command, respond, parsed=parsed)
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

    def _first_delivery(self, key: str) -> bool:
        """False for a request another front sharing the database handed on already (a
        Slack retry that reached it): checked here, after the ack, to keep acks fast."""
        if not key:
            return True
        try:
            if self.runtime.first_delivery(key):
                return True
        except StoreError as exc:  # better a rare double than a lost command
            log.warning("could not check %s against the state database: %s", key, exc.message)
            return True
        log.info("%s was handed on already (a retried delivery): not run again", key)
        return False

    def _actor(self, command: Command) -> Actor:
        user = str(command.get("user_id", ""))
        return Actor(id=user, name=f"<@{user}>", groups=self.groups_of(user))

    def _context(self, command: Command, reporter: Reporter) -> Context:
        return Context(
            core=self.runtime,
            actor=self._actor(command),
            reporter=reporter,
            text=line_of(command),
        )

    def _reporter(
        self,
        command: Command,
        respond: Responder,
        *,
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> ThreadReporter:
        return ThreadReporter(
            poster=self.poster,
            channel=channel or command.get("channel_id", ""),
            user=command.get("user_id", ""),
            command=line_of(command),
            respond=respond,
            bot_name=self.bot_name,
            min_interval=self.min_interval,
            thread_ts=thread_ts,
        )

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
        reporter = self._reporter(command, respond)
        reply = run(parsed, self._context(command, reporter))
        if isinstance(reply, ApprovalRequested):
            self._post_request(reply, command, respond)
        elif isinstance(reply, (Registered, Notice)):
            respond(response_type="in_channel", text=reply.text)
        elif isinstance(reply, Outcome):
            if reporter.ts is None:
                # the thread could not be opened anywhere: the requester still gets the end
                respond(text=reply.text, blocks=[section(reply.text)])
        else:
            respond(text=reply.text)

    def _post_request(self, req: ApprovalRequested, command: Command, respond: Responder) -> None:
        text, blocks = approval_blocks(req)
        try:
            posted = self.poster.call(
                "chat.postMessage",
                channel=command.get("channel_id", ""),
                text=text,
                blocks=blocks,
            )
        except SlackApiError as exc:
            if exc.response.get("error") not in NO_ACCESS:
                raise
            respond(text=messages.NOT_IN_CHANNEL_REQUEST.format(bot=self.bot_name) + "\n" + text)
            return
        self.runtime.approvals.shown_at(
            req.approval.id,
            {"channel": posted.get("channel"), "ts": posted.get("ts"), "blocks": blocks},
        )

    def _decision(self, command: Command, respond: Responder, *, parsed: Any = None) -> None:
        """A click on Approve / Reject, or `/approve` / `/reject`: decide, show the decision
        in place of the buttons, then deploy in the request's thread."""
        if parsed is None:
            approve, request, reason = command["action"] == APPROVE, command["request"], ""
        else:
            approve, request, reason = parsed.approve, parsed.request, parsed.reason
        approvals = self.runtime.approvals
        actor = self._actor(command)
        decided = approvals.decide(
            request, actor=actor, approve=approve, reason=reason, command=line_of(command)
        )
        if isinstance(decided, Refusal):
            respond(text=decided.text)
            return
        where = decided.approval.where or {}
        stamp = f"{decided.approval.decided_at:%Y-%m-%d %H:%M} UTC"
        verdict = (
            f":white_check_mark: Approved by {actor.shown} at {stamp}; deploying in this thread"
            if approve
            else f":no_entry: Rejected by {actor.shown} at {stamp}"
            + (f": {reason}" if reason else "")
        )
        if where.get("ts"):
            self.poster.try_call(
                "chat.update",
                channel=where["channel"],
                ts=where["ts"],
                text=verdict,
                blocks=decided_blocks(list(where.get("blocks") or []), verdict),
            )
        else:
            respond(response_type="in_channel", text=verdict)
        reporter = self._reporter(
            command, respond, channel=where.get("channel"), thread_ts=where.get("ts")
        )
        done = approvals.carry_out(decided, approver=actor, reporter=reporter)
        if isinstance(done.outcome, Refusal):
            respond(text=done.outcome.text)
