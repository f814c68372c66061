"""`rollback <endpoint> [in <env>] [from v<N>] [--dry-run]`"""

from __future__ import annotations

import re

from commands.base import Context, Reply, UsageError, dry_run, tokens
from commands.lock import Target, parse_endpoint_only
from core.marks import command

NAME = "rollback"
SUMMARY = "serve again the version that served before the current one (admins)"
USAGE = "rollback <endpoint> [in <env>] [from v<N>] [--dry-run]"
EXAMPLES = [
    "rollback iris in prod",
    "rollback iris in prod --dry-run",
    "rollback iris in prod from v3",
]
DETAILS = """\
The same rollout as /deploy, with the endpoint's current resources: the previous version
starts beside the current one and takes the traffic once healthy. `--dry-run` (or
`/plan rollback …`) shows which version it would go back to, how its metrics compare, and
what would stop it, changing nothing. `from v<N>` rolls back only while the endpoint still
serves v<N> (the *Roll back* button of an outage says it for you)."""

_FROM = re.compile(r"^v?([1-9][0-9]{0,8})$", re.IGNORECASE)


class Rollback(Target):
    dry_run: bool = False
    serving: int | None = None  # roll back only while this version serves


def parse(text: str) -> Rollback | UsageError:
    text, dry = dry_run(text)
    words = tokens(text)
    serving = None
    if len(words) >= 2 and words[-2].lower() == "from":
        version = _FROM.match(words[-1])
        if version is None:
            return UsageError(
                f"`{words[-1][:40]}` is not a version: say `from v3`.", USAGE, EXAMPLES[2]
            )
        serving, text = int(version.group(1)), " ".join(words[:-2])
    found = parse_endpoint_only(
        text,
        USAGE,
        EXAMPLES[0],
        f"a rollback goes to the previous version; for another, use `{command('deploy')}`.",
    )
    if isinstance(found, UsageError):
        return found
    return Rollback(endpoint=found.endpoint, env=found.env, dry_run=dry, serving=serving)


def run(cmd: Rollback, ctx: Context) -> Reply:
    if cmd.dry_run:
        return plan(cmd, ctx)
    return ctx.core.deployer.rollback(
        endpoint=cmd.endpoint,
        env=cmd.env,
        actor=ctx.actor,
        command=ctx.text,
        reporter=ctx.reporter,
        serving=cmd.serving,
    )


def plan(cmd: Target, ctx: Context) -> Reply:
    """Which version the rollback would go back to, changing nothing."""
    return ctx.core.planner.rollback(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
