"""`lock <endpoint> [in <env>] <reason>`, and the endpoint grammar /unlock, /stop,
/rollback and /cancel share"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, check_name, shown, tokens

NAME = "lock"
SUMMARY = "freeze an endpoint: nothing deploys or scales it until unlocked (admins)"
USAGE = "lock <endpoint> [in <env>] <reason>"
EXAMPLES = ["lock iris in prod quarter-end release freeze"]
DETAILS = """\
A freeze stays until an admin types `/unlock <endpoint>`. Every rollout also holds its
endpoint while it runs: a second /deploy or /scale is told who holds it, since when and for
what, and the lock is released when the rollout ends (or after two hours, should every bot
die); `/cancel <endpoint>` stops a rollout that should not finish."""


class Lock(BaseModel):
    endpoint: str
    env: str | None = None
    reason: str = ""


def parse_target(
    text: str, usage: str, example: str
) -> tuple[str, str | None, list[str]] | UsageError:
    words = tokens(text)
    if not words:
        return UsageError("Say which endpoint.", usage, example)
    endpoint, rest = words[0], words[1:]
    if bad := check_name(endpoint, "endpoint name", usage, example):
        return bad
    env = None
    if rest and rest[0].lower() == "in":
        if len(rest) == 1:
            return UsageError("Say which environment after `in`, e.g. `in prod`.", usage, example)
        env, rest = rest[1], rest[2:]
        if bad := check_name(env, "environment name", usage, example):
            return bad
    return endpoint, env, rest


class Target(BaseModel):
    """An endpoint and its environment: what /rollback, /stop, /unlock and /cancel take."""

    endpoint: str
    env: str | None = None


def parse_endpoint_only(
    text: str, usage: str, example: str, nothing_else: str
) -> Target | UsageError:
    found = parse_target(text, usage, example)
    if isinstance(found, UsageError):
        return found
    endpoint, env, rest = found
    if rest:
        return UsageError(f"Unexpected `{shown(' '.join(rest))}`: {nothing_else}", usage, example)
    return Target(endpoint=endpoint, env=env)


def parse(text: str) -> Lock | UsageError:
    found = parse_target(text, USAGE, EXAMPLES[0])
    if isinstance(found, UsageError):
        return found
    endpoint, env, rest = found
    if not rest:
        return UsageError(
            f"Say why `{endpoint}` is frozen: the reason is shown to whoever tries to change it.",
            USAGE,
            EXAMPLES[0],
        )
    return Lock(endpoint=endpoint, env=env, reason=" ".join(rest)[:300])


def run(cmd: Lock, ctx: Context) -> Reply:
    return ctx.core.deployer.freeze(
        endpoint=cmd.endpoint, env=cmd.env, reason=cmd.reason, actor=ctx.actor, command=ctx.text
    )
