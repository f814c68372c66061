"""`/help [command]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, HelpText, Reply, UsageError, shown, tokens

NAME = "help"
SUMMARY = "explain the commands, with examples"
USAGE = "/help [command]"
EXAMPLES = ["/help", "/help scale"]
DETAILS = "Without a command: every command in one line. With one: its grammar and examples."


class Help(BaseModel):
    command: str | None = None


def parse(text: str) -> Help | UsageError:
    from commands.registry import COMMANDS

    words = tokens(text)
    if not words:
        return Help()
    name = words[0].lstrip("/").lower()
    if name not in COMMANDS or len(words) > 1:
        known = ", ".join(COMMANDS)
        return UsageError(
            f"There is no command `{shown(' '.join(words))}` to explain (commands: {known}).",
            USAGE,
            EXAMPLES[1],
        )
    return Help(command=name)


def run(cmd: Help, ctx: Context) -> Reply:
    return HelpText(describe(cmd.command, namespace=ctx.namespace))


def describe(name: str | None = None, *, namespace: str | None = None) -> str:
    """Every command in a line, or one in detail. With `namespace` (Slack), each is shown as
    typed through it (`/mlops deploy …`), since some have no slash command of their own."""
    from commands.registry import COMMANDS, usage

    def typed(line: str) -> str:
        return usage(line, namespace=namespace) if namespace else line

    if name is None:
        width = max(len(typed(m.USAGE)) for m in COMMANDS.values())
        lines = ["Commands:"]
        lines += [f"  {typed(m.USAGE).ljust(width)}  {m.SUMMARY}" for m in COMMANDS.values()]
        lines.append(f"`{typed('/help <command>')}` explains one in detail.")
        return "\n".join(lines)
    module = COMMANDS[name]
    examples = "\n".join(f"  {typed(e)}" for e in module.EXAMPLES)
    return f"{typed(module.USAGE)}\n{module.SUMMARY}.\n\n{module.DETAILS}\n\nExamples:\n{examples}"
