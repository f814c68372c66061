"""`/stop <endpoint> [in <env>]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError
from commands.lock import Target, parse_endpoint_only

NAME = "stop"
SUMMARY = "stop serving an endpoint (admins)"
USAGE = "/stop <endpoint> [in <env>]"
EXAMPLES = ["/stop iris in dev"]
DETAILS = """\
Every deployment of the endpoint stops after answering the requests it holds, reported step
by step like a rollout. It leaves /status only once the platform confirmed nothing of it
serves; if the platform refused, the stop fails, says what still serves, and /status keeps
showing it. Its history stays in /history and the audit trail. `/deploy` brings it back."""


def parse(text: str) -> Target | UsageError:
    return parse_endpoint_only(
        text, USAGE, EXAMPLES[0], "stopping takes only the endpoint and `in <env>`."
    )


def run(cmd: Target, ctx: Context) -> Reply:
    return ctx.core.deployer.stop(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text, reporter=ctx.reporter
    )
