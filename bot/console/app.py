"""The console front: the same commands as in Slack, typed in a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape

from bot.console.render import ConsoleReporter, render
from commands.base import Context, UsageError
from commands.registry import execute
from core.admission.roles import Actor
from core.config import CONSOLE_USER
from core.moments import UTC_ZONE, Zone, zone_named
from core.runtime import Runtime
from core.scrub import scrub


def local_zone() -> Zone:
    """The machine's time zone, which the console reads and shows times in: `TZ`, else what
    /etc/localtime links to; UTC when neither names a zone this machine knows."""
    name = os.environ.get("TZ", "").removeprefix(":")
    if not name:
        try:
            name = os.readlink("/etc/localtime").partition("zoneinfo/")[2]
        except OSError:
            name = ""
    if name in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"):
        return UTC_ZONE
    return zone_named(name) or UTC_ZONE


class ConsoleApp:
    def __init__(self, runtime: Runtime, *, actor: str, console: Console | None = None) -> None:
        self.runtime = runtime
        self.actor = actor
        self.console = console or Console(highlight=False)
        self.reporter = ConsoleReporter(self.console)
        self.zone = local_zone()

    def run_line(self, line: str) -> bool:
        """Run one command line; True when it did what was asked."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            line = "/" + line
        ctx = Context(
            core=self.runtime,
            actor=Actor(id=CONSOLE_USER, name=self.actor),
            reporter=self.reporter,
            text=line,
            zone=lambda: self.zone,
        )
        try:
            reply = execute(line, ctx)
        except Exception as exc:
            self.console.print(
                f"[red]internal error: {escape(type(exc).__name__)}: {escape(scrub(str(exc)))}[/]"
            )
            return False
        render(self.console, reply)
        return bool(reply.ok)

    def run_lines(self, lines: Iterable[str]) -> bool:
        results = [self.run_line(line) for line in lines]
        return all(results)

    def offer_demo(self, *, ask: bool) -> None:
        if not self.runtime.registry_is_empty():
            return
        if ask:
            answer = self.console.input(
                "The model registry is empty. Create the demo model [bold]iris[/] "
                "(versions 1 and 2, scikit-learn)? [Y/n] "
            )
            if answer.strip().lower() not in ("", "y", "yes"):
                self.console.print("No demo. Register a model in MLflow, then `/deploy` it.")
                return
        self.create_demo()

    def create_demo(self) -> None:
        with self.console.status("Training and registering the demo model iris…"):
            versions = self.runtime.create_demo()
        listed = ", ".join(f"v{v}" for v in versions)
        self.console.print(
            f"Created the demo model [bold]iris[/] ({listed}; alias @champion "
            f"-> v{versions[-1]}) in {escape(scrub(self.runtime.settings.mlflow_tracking_uri))}"
        )

    def interactive(self) -> None:
        self.console.print(
            "Type a command such as [bold]/deploy iris v1[/], [bold]/help[/], or [bold]exit[/]."
        )
        while True:
            try:
                line = self.console.input("[bold]chatops>[/] ")
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            if line.strip().lower() in ("exit", "quit", "/exit", "/quit"):
                return
            self.run_line(line)


__all__ = ["ConsoleApp", "UsageError"]
