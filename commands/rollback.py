"""`/rollback <endpoint> [in <env>]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown
from commands.lock import parse_target

NAME = "rollback"
SUMMARY = "serve again the version that served before the current one (admins)"
USAGE = "/rollback <endpoint> [in <env>]"
EXAMPLES = ["/rollback iris in prod"]
DETAILS = """\
The same rollout as /deploy, with the endpoint's current resources: the previous version
starts beside the current one and takes the traffic once healthy."""


class Rollback(BaseModel):
    endpoint: str
    env: str | None = None


def parse(text: str) -> Rollback | UsageError:
    found = parse_target(text, USAGE, EXAMPLES[0])
    if isinstance(found, UsageError):
        return found
    endpoint, env, rest = found
    if rest:
        return UsageError(
            f"Unexpected `{shown(' '.join(rest))}`: a rollback goes to the "
            "previous version; for another, use `/deploy`.",
            USAGE,
            EXAMPLES[0],
        )
    return Rollback(endpoint=endpoint, env=env)


def run(cmd: Rollback, ctx: Context) -> Reply:
    return ctx.core.deployer.rollback(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text, reporter=ctx.reporter
    )
