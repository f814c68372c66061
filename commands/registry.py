"""Every command, found by name; one grammar for every front."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from commands import (
    approve,
    cancel,
    deploy,
    help,
    history,
    lock,
    promote,
    register,
    reject,
    rollback,
    scale,
    status,
    stop,
    unlock,
)
from commands.base import MAX_TEXT, Context, Reply, UsageError, shown

COMMANDS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        deploy,
        scale,
        rollback,
        stop,
        status,
        register,
        promote,
        approve,
        reject,
        lock,
        unlock,
        cancel,
        history,
        help,
    )
}


def split(line: str) -> tuple[str, str]:
    """`/deploy iris v1` -> ("deploy", "iris v1")."""
    head, _, rest = line.strip().partition(" ")
    return head.lstrip("/").lower(), rest.strip()


def parse(name: str, text: str) -> tuple[ModuleType, Any] | UsageError:
    """The command module and its parsed arguments, or what was wrong with the text."""
    module = COMMANDS.get(name.lstrip("/").lower())
    if module is None:
        known = ", ".join(f"/{n}" for n in COMMANDS)
        return UsageError(
            f"There is no command `/{shown(name.lstrip('/'))}` (commands: {known}).",
            "/help [command]",
            "/help deploy",
        )
    if len(text) > MAX_TEXT:
        return UsageError(
            f"That is {len(text)} characters: commands are at most {MAX_TEXT}.",
            module.USAGE,
            module.EXAMPLES[0],
        )
    parsed = module.parse(text)
    if isinstance(parsed, UsageError):
        return parsed
    return module, parsed


def execute(line: str, ctx: Context) -> Reply:
    """Parse and run one command line; bad text changes nothing and says what was wrong."""
    name, text = split(line)
    found = parse(name, text)
    if isinstance(found, UsageError):
        return found
    module, parsed = found
    reply: Reply = module.run(parsed, ctx)
    return reply
