"""The message of an approval request in Slack: posted with its buttons, updated with what
became of it, and the requester told in its thread."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.slack.posting.poster import NO_ACCESS, Poster
from bot.slack.posting.reporter import Respond
from bot.slack.rendering import messages
from bot.slack.rendering.blocks import approval as approval_blocks
from bot.slack.rendering.blocks import decided as decided_blocks
from bot.slack.rendering.blocks import noted as noted_blocks
from bot.slack.rendering.mrkdwn import escape, named
from commands.naming import DEFAULT, Naming
from core.admission.approvals import ApprovalRequested

if TYPE_CHECKING:
    from core.admission.approvals import Approvals


class RequestMessages:
    def __init__(self, *, approvals: Approvals, poster: Poster, bot_name: str) -> None:
        self.approvals = approvals
        self.poster = poster
        self.bot_name = bot_name

    def post(
        self, req: ApprovalRequested, channel: str, respond: Respond, naming: Naming = DEFAULT
    ) -> None:
        """The request with its buttons in `channel`; when Slack refuses it, the requester is
        told, and a request nobody can see is withdrawn (nobody could decide it). `naming`:
        how the commands it names are typed."""
        text, blocks = approval_blocks(req)
        try:
            posted = self.poster.call("chat.postMessage", channel=channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            if error in NO_ACCESS and error != "is_archived":
                # shown to the requester, who can pass it on: it still can be decided
                told = messages.NOT_IN_CHANNEL_REQUEST.format(bot=self.bot_name)
                respond(text=named(f"{told}\n{text}", naming))
                return
            # nobody can see it, so nobody could decide it: it must not stay pending
            self.approvals.withdraw(req.approval.id, reason=messages.WITHDRAWN.format(error=error))
            hint = (
                messages.REQUEST_HINT_ACCESS if error in NO_ACCESS else messages.REQUEST_HINT_OTHER
            )
            respond(
                text=messages.REQUEST_NOT_POSTED.format(
                    error=escape(error), hint=hint.format(bot=self.bot_name)
                )
            )
            return
        self.approvals.shown_at(
            req.approval.id,
            {"channel": posted.get("channel"), "ts": posted.get("ts"), "blocks": blocks},
        )

    def deciders(self, request: str) -> tuple[str, ...]:
        """The ids of who asked for and who decided `request`, as the bot recorded them."""
        row = self.approvals.lookup(request)
        if row is None:
            return ()
        decider = re.fullmatch(r"<@([UW][A-Z0-9]+)>", row.decided_by or "")
        return (row.requester_id, *(decider.groups() if decider else ()))

    def show(
        self, where: dict[str, Any], verdict: str, respond: Respond, *, keep_buttons: bool
    ) -> None:
        """The request's message says what became of it (the buttons gone once decided)."""
        if not where.get("ts"):
            respond(response_type="in_channel", text=verdict)
            return
        shown = list(where.get("blocks") or [])
        self.poster.try_call(
            "chat.update",
            channel=where["channel"],
            ts=where["ts"],
            text=verdict,
            blocks=noted_blocks(shown, verdict) if keep_buttons else decided_blocks(shown, verdict),
        )

    def tell_requester(self, where: dict[str, Any], text: str) -> None:
        """In the request's thread, naming the requester (who gets a notification)."""
        if where.get("ts"):
            self.poster.try_call(
                "chat.postMessage", channel=where["channel"], thread_ts=where["ts"], text=text
            )
