"""`deploy <model> v<N> | <N> | @<alias> [to <env>] [--canary <N>,<N>] [--shadow <N>]
[--override "<reason>"] [--dry-run]`"""

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
    take_word,
    tokens,
)
from core.config import canary_steps
from core.registry.events import MAX_VERSION, version_number

NAME = "deploy"
SUMMARY = "serve a registered model version on its endpoint"
USAGE = (
    "deploy <model> v<N>|<N>|@<alias> [to <env>] [--canary <N>,<N>] [--shadow <N>] "
    '[--override "<reason>"] [--dry-run]'
)
EXAMPLES = [
    "deploy iris v2",
    "deploy iris 2 to prod",
    "deploy iris @champion",
    "deploy iris v3 to prod --canary 10,50 --shadow 20",
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

`--canary 10,50` (local endpoints) lets the new version answer 10% of requests, then 50%,
before it takes them all; `--shadow 20` copies 20% of requests to it and compares its answers
with what serves (callers get only the serving version's). Each step bakes for the
environment's `bake_s`; its card in the thread shows both versions side by side, with
Promote, Hold and Abort (`/canary iris promote|hold|abort`). A new version that fails more,
answers slower or predicts otherwise than the environment allows is aborted by itself.
Unset, an environment's `rollout` policy decides; `--canary 0` switches at once.

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
    canary: list[int] | None = None  # None: the environment's rollout policy
    shadow: int | None = None


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


def take_gradual(text: str) -> tuple[str, list[int] | None, int | None] | UsageError:
    """`text` without its `--canary <N>,<N>` and `--shadow <N>`, and their values (None when
    not given)."""
    text, canary = take_word(text, "canary")
    text, shadow = take_word(text, "shadow")
    steps: list[int] | None = None
    if canary is not None:
        parts = [p.strip().rstrip("%") for p in canary.split(",")]
        if not canary or not all(p.isdigit() and len(p) <= 3 for p in parts):
            return UsageError(
                "Give the canary's shares in percent, rising: `--canary 10,50` "
                "(`--canary 0`: no canary).",
                USAGE,
                EXAMPLES[3],
            )
        steps = [int(p) for p in parts]
        if steps == [0]:
            steps = []
        else:
            try:
                canary_steps(steps)
            except ValueError as exc:
                return UsageError(f"`--canary {shown(canary)}`: {exc}.", USAGE, EXAMPLES[3])
    copied: int | None = None
    if shadow is not None:
        value = shadow.rstrip("%")
        if not value.isdigit() or not 0 <= int(value) <= 100:
            return UsageError(
                "Give the share of requests to copy to the new version, 0 to 100: `--shadow 20`.",
                USAGE,
                EXAMPLES[3],
            )
        copied = int(value)
    return text, steps, copied


def parse(text: str) -> Deploy | UsageError:
    text, dry = dry_run(text)
    taken = take_override(text, USAGE, EXAMPLES[4])
    if isinstance(taken, UsageError):
        return taken
    text, override = taken
    gradual = take_gradual(text)
    if isinstance(gradual, UsageError):
        return gradual
    text, canary, shadow = gradual
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
        model=model,
        version=version,
        alias=alias,
        env=env,
        override=override,
        dry_run=dry,
        canary=canary,
        shadow=shadow,
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
        "canary": cmd.canary,
        "shadow": cmd.shadow,
    }
