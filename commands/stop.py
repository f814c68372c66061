"""`/stop <endpoint> [in <env>]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError
from commands.lock import Target, parse_endpoint_only

NAME = "stop"
SUMMARY = "stop serving an endpoint (admins)"
USAGE = "/stop <endpoint> [in <env>]"
EXAMPLES = ["/stop iris in dev"]
DETAILS = """\
Its servers stop after answering the requests they hold, and it leaves /status; its history
stays in /history and the audit trail. `/deploy` brings it back."""


def parse(text: str) -> Target | UsageError:
    return parse_endpoint_only(
        text, USAGE, EXAMPLES[0], "stopping takes only the endpoint and `in <env>`."
    )


def run(cmd: Target, ctx: Context) -> Reply:
    return ctx.core.deployer.stop(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
