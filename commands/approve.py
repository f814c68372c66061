"""`approve <request> [--override "<reason>"]` and `/reject <request> [reason]`: an admin
decides a /promote request."""

from __future__ import annotations

import re

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown, tokens
from commands.deploy import take_override

NAME = "approve"
SUMMARY = "approve a promotion request, which deploys it (admins)"
USAGE = 'approve <request> [--override "<reason>"]'
EXAMPLES = [
    "approve apr-1a2b3c4d5e",
    'approve apr-1a2b3c4d5e --override "hotfix for incident 42"',
]
DETAILS = """\
In Slack the request's Approve button does the same. Only an admin of the request's
environment who did not ask for it can approve; a request is decided once, before it expires.
A version the environment's promotion order does not let in yet stays pending; an admin may
approve it anyway with `--override "<reason>"`, which is audited and said in the thread."""

REQUEST = re.compile(r"^apr-[0-9a-f]{10}$")


class Decide(BaseModel):
    request: str
    approve: bool
    reason: str = ""
    override: str | None = None  # an admin's reason to deploy against the promotion order


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
    taken = take_override(text, USAGE, EXAMPLES[1])
    if isinstance(taken, UsageError):
        return taken
    decided = parse_decision(taken[0], approve=True, usage=USAGE, example=EXAMPLES[0])
    if isinstance(decided, UsageError):
        return decided
    return decided.model_copy(update={"override": taken[1]})


def run(cmd: Decide, ctx: Context) -> Reply:
    return ctx.core.approvals.settle(
        cmd.request,
        actor=ctx.actor,
        approve=cmd.approve,
        reason=cmd.reason,
        command=ctx.text,
        shown=ctx.on_decided or (lambda _decided: ctx.reporter),
        resume=ctx.resume,
        override=cmd.override,
    )
