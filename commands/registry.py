"""Every command, found by name; one grammar for every front."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from commands import (
    alias,
    approve,
    canary,
    cancel,
    deploy,
    help,
    history,
    lock,
    plan,
    promote,
    register,
    reject,
    rollback,
    scale,
    status,
    stop,
    token,
    unlock,
)
from commands.base import MAX_TEXT, Context, Reply, UsageError, shown
from commands.naming import DIRECT, NAMES, NAMESPACE, RESERVED, Naming
from core.marks import command, unmarked

__all__ = [
    "COMMANDS",
    "DIRECT",
    "NAMESPACE",
    "RESERVED",
    "Naming",
    "describe",
    "execute",
    "parse",
    "split",
]

COMMANDS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        deploy,
        scale,
        rollback,
        stop,
        plan,
        status,
        register,
        promote,
        approve,
        reject,
        lock,
        unlock,
        cancel,
        canary,
        alias,
        history,
        token,
        help,
    )
}


if tuple(COMMANDS) != NAMES:  # help and every front read the names from commands.naming
    raise ImportError(f"commands.naming.NAMES is not the table's names: {list(COMMANDS)}")


def split(line: str, *, namespace: str = NAMESPACE) -> tuple[str, str]:
    """The command an entry names and its arguments, however it was typed:
    `/deploy iris v1`, `/mlops deploy iris v1` or `deploy iris v1` -> ("deploy", "iris v1").
    The namespace alone is a request for help. What users type carries no marks of the
    bot's own (`core.marks`)."""
    head, _, rest = unmarked(line).strip().partition(" ")
    name, rest = head.lstrip("/").lower(), rest.strip()
    if name == namespace.lstrip("/").lower():
        head, _, rest = rest.partition(" ")
        return (head.lstrip("/").lower() or "help"), rest.strip()
    return name, rest


def parse(name: str, text: str) -> tuple[ModuleType, Any] | UsageError:
    """The command module and its parsed arguments, or what was wrong with the text."""
    module = COMMANDS.get(name.lstrip("/").lower())
    if module is None:
        return UsageError(
            f"There is no command `{shown(name.lstrip('/'))}` (commands: {', '.join(COMMANDS)}).",
            help.USAGE,
            help.EXAMPLES[1],
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


# in the table's help texts, `/name …` (in backticks) or /name names a command of the table
_PROSE = re.compile(r"`/([a-z]+)([^`]*)`|(?<![\w/`])/([a-z]+)\b")


def prose(text: str) -> str:
    """A help text of the table with each command it names as a mark a front renders."""

    def mark(found: re.Match[str]) -> str:
        name, rest = (found[1], found[2]) if found[1] else (found[3], "")
        if name not in COMMANDS:
            return found[0]
        line = command(name + rest)
        return f"`{line}`" if found[1] else line

    return _PROSE.sub(mark, text)


def describe(name: str | None = None) -> str:
    """Every command in a line, or one in detail, its usage and examples as commands (marks
    a front renders as its users type them)."""
    if name is None:
        width = max(len(m.USAGE) for m in COMMANDS.values())
        lines = ["Commands:"]
        lines += [
            f"  {command(m.USAGE)}{' ' * (width - len(m.USAGE))}  {prose(m.SUMMARY)}"
            for m in COMMANDS.values()
        ]
        lines.append(f"`{command(help.NAME + ' <command>')}` explains one in detail.")
        return "\n".join(lines)
    module = COMMANDS[name]
    examples = "\n".join(f"  {command(e)}" for e in module.EXAMPLES)
    return (
        f"{command(module.USAGE)}\n{prose(module.SUMMARY)}.\n\n{prose(module.DETAILS)}\n\n"
        f"Examples:\n{examples}"
    )


def execute(line: str, ctx: Context) -> Reply:
    """Parse and run one command line; bad text changes nothing and says what was wrong."""
    name, text = split(line)
    found = parse(name, text)
    if isinstance(found, UsageError):
        return found
    module, parsed = found
    reply: Reply = module.run(parsed, ctx)
    return reply
