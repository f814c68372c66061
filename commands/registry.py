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
    plan,
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
        plan,
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


# The one command that takes the whole grammar: `/mlops deploy iris v1` (its name configurable).
NAMESPACE = "mlops"

# Slack's own commands: an app manifest that registers one of them is refused whole, so they
# are never offered as commands of their own (only through the namespace).
RESERVED = frozenset(
    {
        "active", "apps", "archive", "away", "call", "collapse", "dm", "dnd", "expand", "feed",
        "giphy", "help", "invite", "join", "kick", "leave", "me", "msg", "mute", "open",
        "prefs", "remind", "remove", "rename", "search", "shortcuts", "shrug", "star",
        "status", "topic", "who",
    }
)  # fmt: skip

# Commands that may also be offered on their own (`/deploy …`): every one Slack leaves free.
DIRECT = tuple(name for name in COMMANDS if name not in RESERVED)


def split(line: str, *, namespace: str = NAMESPACE) -> tuple[str, str]:
    """The command an entry names and its arguments, however it was typed:
    `/deploy iris v1`, `/mlops deploy iris v1` or `deploy iris v1` -> ("deploy", "iris v1").
    The namespace alone is a request for help."""
    head, _, rest = line.strip().partition(" ")
    name, rest = head.lstrip("/").lower(), rest.strip()
    if name == namespace.lstrip("/").lower():
        head, _, rest = rest.partition(" ")
        return (head.lstrip("/").lower() or "help"), rest.strip()
    return name, rest


def usage(line: str, *, namespace: str = NAMESPACE) -> str:
    """A usage or example line as typed through the namespace: `/deploy …` -> `/mlops deploy …`."""
    return f"/{namespace} {line.lstrip('/')}"


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
