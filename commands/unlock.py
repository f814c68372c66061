"""`/unlock <endpoint> [in <env>]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError
from commands.lock import Target, parse_endpoint_only

NAME = "unlock"
SUMMARY = "lift a freeze, or a lock a stopped operation left behind (admins)"
USAGE = "/unlock <endpoint> [in <env>]"
EXAMPLES = ["/unlock iris in prod"]
DETAILS = """\
The refusal of a locked endpoint names the exact /unlock to type. Unlocking an endpoint while a
rollout runs lets a second one start beside it: use it for what is stuck, not what is slow."""


def parse(text: str) -> Target | UsageError:
    return parse_endpoint_only(
        text, USAGE, EXAMPLES[0], "unlocking takes only the endpoint and `in <env>`."
    )


def run(cmd: Target, ctx: Context) -> Reply:
    return ctx.core.deployer.unlock(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
