"""`cancel <endpoint> [in <env>]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError
from commands.lock import Target, parse_endpoint_only

NAME = "cancel"
SUMMARY = "stop the rollout or stop under way on an endpoint at its next step (admins)"
USAGE = "cancel <endpoint> [in <env>]"
EXAMPLES = ["cancel iris in prod"]
DETAILS = """\
Whichever bot process runs it stops it before its next step and never switches traffic after
the cancel: what it started is discarded, what served before keeps serving, the operation
ends failed ("cancelled by" you) in its thread, and the endpoint is free again. Use it for a
rollout that should not finish; /unlock cannot lift the lock of one that still runs."""


def parse(text: str) -> Target | UsageError:
    return parse_endpoint_only(
        text, USAGE, EXAMPLES[0], "cancelling takes only the endpoint and `in <env>`."
    )


def run(cmd: Target, ctx: Context) -> Reply:
    return ctx.core.deployer.cancel(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
