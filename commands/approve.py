"""`/approve <request>` and `/reject <request> [reason]`: an admin decides a /promote request."""

from __future__ import annotations

import re

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown, tokens

NAME = "approve"
SUMMARY = "approve a /promote request, which deploys it (admins)"
USAGE = "/approve <request>"
EXAMPLES = ["/approve apr-1a2b3c4d5e"]
DETAILS = """\
In Slack the request's Approve button does the same. Only an admin of the request's
environment who did not ask for it can approve; a request is decided once, before it expires."""

REQUEST = re.compile(r"^apr-[0-9a-f]{10}$")


class Decide(BaseModel):
    request: str
    approve: bool
    reason: str = ""


def parse_decision(text: str, *, approve: bool, usage: str, example: str) -> Decide | UsageError:
    words = tokens(text)
    if not words:
        return UsageError(
            "Say which request, e.g. the `apr-…` id in the request message.", usage, example
        )
    if not REQUEST.match(words[0]):
        return UsageError(
            f"`{shown(words[0])}` is not a request id: they look like `apr-1a2b3c4d5e`.",
            usage,
            example,
        )
    if approve and len(words) > 1:
        return UsageError(
            f"Unexpected `{shown(' '.join(words[1:]))}`: approving takes only the request id.",
            usage,
            example,
        )
    return Decide(request=words[0], approve=approve, reason=" ".join(words[1:])[:300])


def parse(text: str) -> Decide | UsageError:
    return parse_decision(text, approve=True, usage=USAGE, example=EXAMPLES[0])


def run(cmd: Decide, ctx: Context) -> Reply:
    return ctx.core.approvals.settle(
        cmd.request,
        actor=ctx.actor,
        approve=cmd.approve,
        reason=cmd.reason,
        command=ctx.text,
        shown=lambda _decided: ctx.reporter,
    )
