"""`/rollback <endpoint> [in <env>]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError
from commands.lock import Target, parse_endpoint_only

NAME = "rollback"
SUMMARY = "serve again the version that served before the current one (admins)"
USAGE = "/rollback <endpoint> [in <env>]"
EXAMPLES = ["/rollback iris in prod"]
DETAILS = """\
The same rollout as /deploy, with the endpoint's current resources: the previous version
starts beside the current one and takes the traffic once healthy."""


def parse(text: str) -> Target | UsageError:
    return parse_endpoint_only(
        text,
        USAGE,
        EXAMPLES[0],
        "a rollback goes to the previous version; for another, use `/deploy`.",
    )


def run(cmd: Target, ctx: Context) -> Reply:
    return ctx.core.deployer.rollback(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text, reporter=ctx.reporter
    )
