"""`promote <model> v<N> to <env> [because <reason>]`"""

from __future__ import annotations

import re

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, check_name, shown, tokens

NAME = "promote"
SUMMARY = "ask the admins of an environment to deploy a version there"
USAGE = "promote <model> v<N> to <env> [because <reason>]"
EXAMPLES = ["promote iris v2 to prod", "promote iris v2 to prod because recall is up 4%"]
DETAILS = """\
For developers: an approval request goes to the channel with the version's metrics beside
those of the version live there, and Approve / Reject buttons for its admins (in the console:
`/approve <id>` or `/reject <id> <reason>`). The requester cannot approve their own request;
it can be decided once, and expires (24 hours unless configured otherwise). Approval deploys
exactly that version, in the same thread."""

_VERSION = re.compile(r"^[vV]?(\d{1,9})$")


class Promote(BaseModel):
    model: str
    version: int
    env: str
    reason: str = ""


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Promote | UsageError:
    words = tokens(text)
    if not words:
        return _error("Say which model, version and environment to promote.")
    model, rest = words[0], words[1:]
    if bad := check_name(model, "model name", USAGE, EXAMPLES[0]):
        return bad
    if not rest:
        return _error(f"Say which version of `{model}` to promote, e.g. `v2`.")
    match = _VERSION.match(rest[0])
    if match is None or int(match.group(1)) < 1:
        return _error(
            f"`{shown(rest[0])}` is not a version: use v<N> (e.g. v2); aliases move, "
            "so a request names a version number."
        )
    version, rest = int(match.group(1)), rest[1:]
    if not rest or rest[0].lower() != "to":
        return _error(f"Say where to promote `{model}` v{version}: `to <env>`.")
    if len(rest) == 1:
        return _error("Say which environment after `to`, e.g. `to prod`.")
    env = rest[1]
    if bad := check_name(env, "environment name", USAGE, EXAMPLES[0]):
        return bad
    reason = ""
    if len(rest) > 2:
        if rest[2].lower() != "because" or len(rest) == 3:
            return _error(f"Unexpected `{shown(rest[2])}`: a reason comes as `because <reason>`.")
        reason = " ".join(rest[3:])[:300]
    return Promote(model=model, version=version, env=env, reason=reason)


def run(cmd: Promote, ctx: Context) -> Reply:
    return ctx.core.approvals.request(
        model=cmd.model,
        version=cmd.version,
        env=cmd.env,
        actor=ctx.actor,
        reason=cmd.reason,
        command=ctx.text,
    )
