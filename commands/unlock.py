"""`/unlock <endpoint> [in <env>]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown
from commands.lock import parse_target

NAME = "unlock"
SUMMARY = "lift a freeze, or a lock a stopped operation left behind (admins)"
USAGE = "/unlock <endpoint> [in <env>]"
EXAMPLES = ["/unlock iris in prod"]
DETAILS = """\
The refusal of a locked endpoint names the exact /unlock to type. Unlocking an endpoint while a
rollout runs lets a second one start beside it: use it for what is stuck, not what is slow."""


class Unlock(BaseModel):
    endpoint: str
    env: str | None = None


def parse(text: str) -> Unlock | UsageError:
    found = parse_target(text, USAGE, EXAMPLES[0])
    if isinstance(found, UsageError):
        return found
    endpoint, env, rest = found
    if rest:
        return UsageError(
            f"Unexpected `{shown(' '.join(rest))}`: unlocking takes only the "
            "endpoint and `in <env>`.",
            USAGE,
            EXAMPLES[0],
        )
    return Unlock(endpoint=endpoint, env=env)


def run(cmd: Unlock, ctx: Context) -> Reply:
    return ctx.core.deployer.unlock(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
