"""`/stop <endpoint> [in <env>]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown
from commands.lock import parse_target

NAME = "stop"
SUMMARY = "stop serving an endpoint (admins)"
USAGE = "/stop <endpoint> [in <env>]"
EXAMPLES = ["/stop iris in dev"]
DETAILS = """\
Its servers stop after answering the requests they hold, and it leaves /status; its history
stays in /history and the audit trail. `/deploy` brings it back."""


class Stop(BaseModel):
    endpoint: str
    env: str | None = None


def parse(text: str) -> Stop | UsageError:
    found = parse_target(text, USAGE, EXAMPLES[0])
    if isinstance(found, UsageError):
        return found
    endpoint, env, rest = found
    if rest:
        return UsageError(
            f"Unexpected `{shown(' '.join(rest))}`: stopping takes only the "
            "endpoint and `in <env>`.",
            USAGE,
            EXAMPLES[0],
        )
    return Stop(endpoint=endpoint, env=env)


def run(cmd: Stop, ctx: Context) -> Reply:
    return ctx.core.deployer.stop(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
