"""`deploy <model> v<N> | <N> | @<alias> [to <env>] [--override "<reason>"] [--dry-run]`"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from commands.base import (
    Context,
    Reply,
    UsageError,
    check_name,
    dry_run,
    shown,
    take_flag,
    tokens,
)
from core.registry.events import MAX_VERSION, version_number

NAME = "deploy"
SUMMARY = "serve a registered model version on its endpoint"
USAGE = 'deploy <model> v<N>|<N>|@<alias> [to <env>] [--override "<reason>"] [--dry-run]'
EXAMPLES = [
    "deploy iris v2",
    "deploy iris 2 to prod",
    "deploy iris @champion",
    'deploy iris v2 to prod --override "hotfix for incident 42"',
    "deploy iris v2 to prod --dry-run",
]
DETAILS = """\
The endpoint is named after the model. A new deployment starts beside the old one and takes
the traffic only after its health check and a smoke-test prediction on the model's input
example pass; the old one then stops. If anything fails, what served before keeps serving.
Resources stay those of the endpoint (or the environment's defaults): change them with /scale.
An environment with a promotion order takes a version only after it served healthy long
enough in the one before (e.g. 30 min in dev); an admin may deploy anyway with
`--override "<reason>"`, which is audited and said in the operation's thread.

`--dry-run` (or `/plan deploy …`) shows what it would do and what would stop it, and
changes nothing."""

_VERSION = re.compile(r"^[vV]?(-?\d+)$")
_ALIAS = re.compile(r"^@([A-Za-z0-9_-]{1,64})$")
OVERRIDE = "--override"
MAX_REASON = 300


class Deploy(BaseModel):
    model: str
    version: int | None = None
    alias: str | None = None
    env: str | None = None
    override: str | None = None  # an admin's reason to deploy against the promotion order
    dry_run: bool = False


def take_override(text: str, usage: str, example: str) -> tuple[str, str | None] | UsageError:
    """`text` without its `--override "<reason>"`, and the reason (None when there is no
    override). The reason is quoted, or the words after the flag up to the next `--flag`."""
    taken = take_flag(text, OVERRIDE[2:])
    if taken is None:
        return UsageError(f"The reason after `{OVERRIDE}` has no closing quote.", usage, example)
    rest, reason = taken
    if reason is None:
        return text, None
    if not reason:
        return UsageError(
            f'Say why you override the promotion order: `{OVERRIDE} "<reason>"`.', usage, example
        )
    return rest, reason[:MAX_REASON]


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Deploy | UsageError:
    text, dry = dry_run(text)
    taken = take_override(text, USAGE, EXAMPLES[3])
    if isinstance(taken, UsageError):
        return taken
    text, override = taken
    words = tokens(text)
    if not words:
        return _error("Say which model and version to deploy.")
    model, rest = words[0], words[1:]
    if bad := check_name(model, "model name", USAGE, EXAMPLES[0]):
        return bad
    if not rest:
        return _error(f"Say which version of `{model}` to deploy: v<N>, <N> or @<alias>.")
    which, rest = rest[0], rest[1:]
    version = alias = None
    if (match := _VERSION.match(which)) is not None:
        version = version_number(match.group(1))
        if version is None and match.group(1).lstrip("-0").isdigit() and "-" not in which:
            return _error(
                f"`{shown(which)}` is not a version: MLflow numbers them up to v{MAX_VERSION}."
            )
        if version is None:
            return _error(f"`{shown(which)}` is not a version: versions start at v1.")
    elif (match := _ALIAS.match(which)) is not None:
        alias = match.group(1)
    elif which.lower() in ("to", "in"):
        return _error(f"Say which version of `{model}` to deploy before `{which}`.")
    else:
        return _error(f"`{shown(which)}` is not a version: use v<N> (e.g. v3), <N> or @<alias>.")
    env = None
    if rest:
        if rest[0].lower() not in ("to", "in"):
            return _error(f"Unexpected `{shown(rest[0])}`: after the version comes `to <env>`.")
        if len(rest) == 1:
            return _error(f"Say which environment after `{rest[0]}`, e.g. `to prod`.")
        env = rest[1]
        if bad := check_name(env, "environment name", USAGE, EXAMPLES[1]):
            return bad
        if len(rest) > 2:
            return _error(f"Unexpected `{shown(' '.join(rest[2:]))}` after the environment.")
    return Deploy(
        model=model, version=version, alias=alias, env=env, override=override, dry_run=dry
    )


def run(cmd: Deploy, ctx: Context) -> Reply:
    if cmd.dry_run:
        return plan(cmd, ctx)
    if ctx.or_request and cmd.override is None:
        asked = _asked(cmd, ctx)
        del asked["override"]
        return ctx.core.approvals.deploy_or_request(**asked, reporter=ctx.reporter)
    return ctx.core.deployer.deploy(**_asked(cmd, ctx), reporter=ctx.reporter)


def plan(cmd: Deploy, ctx: Context) -> Reply:
    """What the deploy would do, changing nothing: asked for as the deploy is, every flag
    honoured."""
    return ctx.core.planner.deploy(**_asked(cmd, ctx))


def _asked(cmd: Deploy, ctx: Context) -> dict[str, Any]:
    """What the deploy and its plan are both asked."""
    return {
        "model": cmd.model,
        "version": cmd.version,
        "alias": cmd.alias,
        "env": cmd.env,
        "actor": ctx.actor,
        "command": ctx.text,
        "override": cmd.override,
    }
