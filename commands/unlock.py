"""`unlock <endpoint> [in <env>]`"""

from __future__ import annotations

from commands.base import Context, Reply, UsageError
from commands.lock import Target, parse_endpoint_only

NAME = "unlock"
SUMMARY = "lift a freeze, or a lock an ended or abandoned operation left behind (admins)"
USAGE = "unlock <endpoint> [in <env>]"
EXAMPLES = ["unlock iris in prod"]
DETAILS = """\
A lock whose operation still runs in a live bot process is not lifted (a second rollout beside
it would split the traffic): the answer says who holds it, for what and until when. To stop
such an operation, use `/cancel <endpoint>`: it stops at its next step and frees the lock."""


def parse(text: str) -> Target | UsageError:
    return parse_endpoint_only(
        text, USAGE, EXAMPLES[0], "unlocking takes only the endpoint and `in <env>`."
    )


def run(cmd: Target, ctx: Context) -> Reply:
    return ctx.core.deployer.unlock(
        endpoint=cmd.endpoint, env=cmd.env, actor=ctx.actor, command=ctx.text
    )
