"""`rollback <endpoint> [in <env>] [--dry-run]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError, dry_run
from commands.lock import Target, parse_endpoint_only
from core.marks import command

NAME = "rollback"
SUMMARY = "serve again the version that served before the current one (admins)"
USAGE = "rollback <endpoint> [in <env>] [--dry-run]"
EXAMPLES = ["rollback iris in prod", "rollback iris in prod --dry-run"]
DETAILS = """\
The same rollout as /deploy, with the endpoint's current resources: the previous version
starts beside the current one and takes the traffic once healthy. `--dry-run` (or
`/plan rollback …`) shows which version it would go back to, how its metrics compare, and
what would stop it, changing nothing."""


class Rollback(Target):
    dry_run: bool = False


def parse(text: str) -> Rollback | UsageError:
    text, dry = dry_run(text)
    found = parse_endpoint_only(
        text,
        USAGE,
        EXAMPLES[0],
        f"a rollback goes to the previous version; for another, use `{command('deploy')}`.",
    )
    if isinstance(found, UsageError):
        return found
    return Rollback(endpoint=found.endpoint, env=found.env, dry_run=dry)


def run(cmd: Rollback, ctx: Context) -> Reply:
    if cmd.dry_run:
        return plan(cmd, ctx)
    return ctx.core.deployer.rollback(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text, reporter=ctx.reporter
    )


def plan(cmd: Target, ctx: Context) -> Reply:
    """Which version the rollback would go back to, changing nothing."""
    return ctx.core.planner.rollback(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
