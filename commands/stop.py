"""`stop <endpoint> [in <env>] [--dry-run]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError, dry_run
from commands.lock import Target, parse_endpoint_only

NAME = "stop"
SUMMARY = "stop serving an endpoint (admins)"
USAGE = "stop <endpoint> [in <env>] [--dry-run]"
EXAMPLES = ["stop iris in dev", "stop iris in dev --dry-run"]
DETAILS = """\
Every deployment of the endpoint stops after answering the requests it holds, reported step
by step like a rollout. It leaves /status only once the platform confirmed nothing of it
serves; if the platform refused, the stop fails, says what still serves, and /status keeps
showing it. Its history stays in /history and the audit trail. `/deploy` brings it back.
`--dry-run` (or `/plan stop …`) shows what would stop, changing nothing."""


class Stop(Target):
    dry_run: bool = False


def parse(text: str) -> Stop | UsageError:
    text, dry = dry_run(text)
    found = parse_endpoint_only(
        text, USAGE, EXAMPLES[0], "stopping takes only the endpoint and `in <env>`."
    )
    if isinstance(found, UsageError):
        return found
    return Stop(endpoint=found.endpoint, env=found.env, dry_run=dry)


def run(cmd: Stop, ctx: Context) -> Reply:
    if cmd.dry_run:
        return plan(cmd, ctx)
    return ctx.core.deployer.stop(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text, reporter=ctx.reporter
    )


def plan(cmd: Target, ctx: Context) -> Reply:
    """What the stop would stop, changing nothing."""
    return ctx.core.planner.stop(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
