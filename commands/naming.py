"""How commands are named where people type them: the namespace command that takes the whole
grammar (`/mlops deploy iris v1`, its name configurable) and, when a front offers them, the
commands of their own (`/deploy iris v1`) that Slack leaves free.

Texts name a command in a neutral form (`core.marks.command("deploy iris v2")`); a front
renders it with the `Naming` of its settings, so a hint never names a command the front does
not register. This module knows the table's names only, not its modules: the command table
(`commands.registry`) and `help` both read it.
"""

from __future__ import annotations

from dataclasses import dataclass

# the command table's names, in the order help lists them (commands.registry checks it)
NAMES = (
    "deploy", "scale", "rollback", "stop", "plan", "status", "register", "promote", "approve",
    "reject", "lock", "unlock", "cancel", "canary", "alias", "history", "token", "help",
)  # fmt: skip

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
DIRECT = tuple(name for name in NAMES if name not in RESERVED)


@dataclass(frozen=True)
class Naming:
    """The commands one front registers: `namespace`, and the `DIRECT` ones when `direct`."""

    namespace: str = NAMESPACE
    direct: bool = True

    def typed(self, line: str) -> str:
        """A command line (`deploy iris v2`, `/deploy iris v2`) as typed here: through a
        command of its own when it has one, else through the namespace."""
        line = line.strip().lstrip("/")
        name = line.partition(" ")[0].lower()
        if self.direct and name in self.registered_names():
            return f"/{line}"
        return f"/{self.namespace} {line}".rstrip()

    def registered_names(self) -> tuple[str, ...]:
        """The direct commands registered (none named like the namespace)."""
        return tuple(n for n in DIRECT if n != self.namespace) if self.direct else ()

    def slash_commands(self) -> list[str]:
        """Every slash command registered: the namespace, then the direct ones."""
        return [f"/{self.namespace}", *(f"/{n}" for n in self.registered_names())]


# as the front that offers every command Slack leaves free names them (the defaults)
DEFAULT = Naming()
