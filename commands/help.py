"""`help [command]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, HelpText, Reply, UsageError, shown, tokens
from commands.naming import NAMES

NAME = "help"
SUMMARY = "explain the commands, with examples"
USAGE = "help [command]"
EXAMPLES = ["help", "help scale"]
DETAILS = "Without a command: every command in one line. With one: its grammar and examples."


class Help(BaseModel):
    command: str | None = None


def parse(text: str) -> Help | UsageError:
    words = tokens(text)
    if not words:
        return Help()
    name = words[0].lstrip("/").lower()
    if name not in NAMES or len(words) > 1:
        return UsageError(
            f"There is no command `{shown(' '.join(words))}` to explain "
            f"(commands: {', '.join(NAMES)}).",
            USAGE,
            EXAMPLES[1],
        )
    return Help(command=name)


def run(cmd: Help, ctx: Context) -> Reply:
    """Help is rendered by the front from the command table (`commands.registry.describe`)."""
    return HelpText(cmd.command)
