"""`alias <model> v<N> [in <env>] [if serving]`"""

from __future__ import annotations

import re

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, check_name, shown, tokens

NAME = "alias"
SUMMARY = "move an environment's registry alias to a version, serving nothing new (admins)"
USAGE = "alias <model> v<N> [in <env>] [if serving]"
EXAMPLES = ["alias iris v6 in prod", "alias iris v6 in prod if serving"]
DETAILS = """\
An environment that names a registry alias (`"alias": "prod"` in its settings) has the
registry say what serves there: `@prod` of a model names the version prod serves. When the
alias moves outside the bot, the announce channel is told ("`@prod` now names iris v7, prod
serves v6") with a button for each way back to agreement: /deploy the version it names, or
this command, which moves the alias back and changes nothing that serves. Refused while an
operation is under way on the endpoint (its rollout moves the alias itself when it ends), and
for an environment that names no alias. A registry that refuses the write says so.
`if serving` moves it only while the environment serves that version (what a drift's *Move
back* button runs: once something else serves, the click changes nothing and says so)."""

_VERSION = re.compile(r"^[vV]?(\d{1,9})$")


class Alias(BaseModel):
    model: str
    version: int
    env: str | None = None
    if_serving: bool = False


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Alias | UsageError:
    words = tokens(text)
    if_serving = [w.lower() for w in words[-2:]] == ["if", "serving"]
    if if_serving:
        words = words[:-2]
    if not words:
        return _error("Say which model, which version its alias names, and where.")
    model, rest = words[0], words[1:]
    if bad := check_name(model, "model name", USAGE, EXAMPLES[0]):
        return bad
    if not rest:
        return _error(f"Say which version of `{model}` the alias names, e.g. `v6`.")
    match = _VERSION.match(rest[0])
    if match is None or int(match.group(1)) < 1:
        return _error(f"`{shown(rest[0])}` is not a version: use v<N> (e.g. v6).")
    version, rest = int(match.group(1)), rest[1:]
    env = None
    if rest:
        if rest[0].lower() != "in":
            return _error(f"Unexpected `{shown(rest[0])}`: the environment comes as `in <env>`.")
        if len(rest) == 1:
            return _error("Say which environment after `in`, e.g. `in prod`.")
        env = rest[1]
        if bad := check_name(env, "environment name", USAGE, EXAMPLES[0]):
            return bad
        if len(rest) > 2:
            return _error(f"Unexpected `{shown(' '.join(rest[2:]))}` after the environment.")
    return Alias(model=model, version=version, env=env, if_serving=if_serving)


def run(cmd: Alias, ctx: Context) -> Reply:
    return ctx.core.aliases.move(
        model=cmd.model,
        version=cmd.version,
        env=cmd.env,
        actor=ctx.actor,
        command=ctx.text,
        if_serving=cmd.if_serving,
    )
