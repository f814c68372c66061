"""`plan deploy|scale|rollback|stop <its arguments>`"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import BaseModel

from commands import deploy, rollback, scale, stop
from commands.base import Context, Reply, UsageError, shown, tokens

NAME = "plan"
SUMMARY = "show what a deploy, scale, rollback or stop would do, changing nothing"
USAGE = "plan deploy|scale|rollback|stop <its arguments>"
EXAMPLES = [
    "plan deploy iris v2 to prod",
    "plan scale iris 2cpu 2 replicas",
    "plan rollback iris in prod",
    "plan stop iris in dev",
]
DETAILS = """\
The same as adding `--dry-run` to the command. Anyone may ask. It shows the version and its
run, its metrics against the version that serves now, the resources before and after,
whether a build is reused or made, who may approve (and whether you may do it yourself), and
each check the command would meet: permission, the endpoint or model, the environment's
limits, the endpoint's lock and what is under way on it. It takes no lock, starts nothing and
is recorded in /history as planned. In the console the exit code is 0 only when the command
would go ahead."""

PLANNED: dict[str, ModuleType] = {m.NAME: m for m in (deploy, scale, rollback, stop)}


class Plan(BaseModel):
    command: str
    args: Any  # what that command's own grammar parsed


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Plan | UsageError:
    words = tokens(text)
    if not words:
        return _error("Say which command to plan: deploy, scale, rollback or stop.")
    name = words[0].lstrip("/").lower()
    module = PLANNED.get(name)
    if module is None:
        return _error(
            f"`{shown(words[0])}` cannot be planned: plan deploy, scale, rollback or stop."
        )
    parsed = module.parse(" ".join(words[1:]))
    if isinstance(parsed, UsageError):
        return parsed
    return Plan(command=name, args=parsed)


def run(cmd: Plan, ctx: Context) -> Reply:
    reply: Reply = PLANNED[cmd.command].plan(cmd.args, ctx)
    return reply


def is_plan(module: ModuleType, parsed: Any) -> bool:
    """Whether a parsed command only plans (`/plan`, or `--dry-run`): it changes nothing."""
    return module.NAME == NAME or bool(getattr(parsed, "dry_run", False))
