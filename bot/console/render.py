"""Replies and events as terminal output (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from bot.text import ago, traffic, traffic_brief
from commands.base import HelpText, HistoryReport, Reply, StatusReport, UsageError
from commands.registry import describe
from core.admission.approvals import ApprovalRequested, Decided
from core.admission.plans import PlanReport
from core.events import EndpointStatus, Event, EventKind, Notice, Outcome, Refusal
from core.marks import command, plain
from core.oncall.timemachine import ServedAt
from core.registry.runs import Registered
from core.scrub import scrub
from core.tokens import Revoked, TokenList


def _shown(text: str) -> str:
    """Text as the terminal may show it: commands and people rendered (`/deploy …`, names as
    recorded), scrubbed (the last edge before it), then escaped."""
    return escape(scrub(plain(text)))


class ConsoleReporter:
    """Each event as one line, as it happens."""

    def __init__(self, console: Console, *, card_every_s: float = 30.0) -> None:
        self.console = console
        # a canary's card, as one line: at each new step, then at most this often
        self.card_every_s = card_every_s
        self._card: tuple[object, float] | None = None

    def report(self, event: Event) -> None:
        c, msg, t = self.console, _shown(event.message), f"[dim]{event.elapsed_s:6.2f}s[/]"
        if event.kind is EventKind.STARTED:
            c.print(f"[bold]▶ {msg}[/]")
        elif event.kind is EventKind.STEP:
            c.print(f"{t} [cyan]…[/] {msg}")
        elif event.kind is EventKind.DONE:
            c.print(f"{t} [green]✓[/] {msg}")
        elif event.kind is EventKind.INFO:
            c.print(f"{t}   {msg}")
        elif event.kind is EventKind.CARD:
            step, last = self._card or (None, 0.0)
            if step != event.data.get("step") or event.elapsed_s - last >= self.card_every_s:
                self._card = (event.data.get("step"), event.elapsed_s)
                c.print(f"{t}   [magenta]{_shown(card_line(event.data))}[/]")
        elif event.kind is EventKind.SUCCEEDED:
            c.print(f"{t} [bold green]✔ {msg}[/]")
        elif event.kind is EventKind.FAILED:
            c.print(f"{t} [bold red]✘ {msg}[/]")
            tail = str(event.data.get("log_tail") or "")
            if tail:
                c.print(Panel(_shown(tail), title="log tail", border_style="red"))
            c.print(f"       [yellow]{_shown(str(event.data.get('serving', '')))}[/]")


def card_line(data: dict[str, Any]) -> str:
    """A canary's card in one line: each version's share, requests, errors and p99, what
    the shadow agreed, and how long it baked."""
    share = int(data.get("share") or 0)
    parts = []
    for i, side in enumerate(data.get("sides") or []):
        if not side:
            continue
        rate = side.get("error_rate")
        p99 = side.get("p99_ms")
        parts.append(
            f"v{side.get('version')} {share if i else 100 - share}%: "
            f"{side.get('requests', 0)} req, "
            f"{'no errors' if not rate else f'{rate:.1%} errors'}"
            + (f", p99 {p99:.0f} ms" if isinstance(p99, int | float) else "")
        )
    copied = data.get("shadowed") or {}
    if copied.get("requests"):
        agreement = copied.get("agreement")
        agreed = f", agreement {agreement:.1%}" if agreement is not None else ""
        parts.append(f"shadow: {copied['requests']} copied{agreed}")
    baked = f"baked {float(data.get('baked_s') or 0):.0f} of {float(data.get('bake_s') or 0):.0f} s"
    held = f", held by {data['held_by']}" if data.get("held_by") else ""
    return f"canary at {share}% · " + " · ".join(parts) + f" · {baked}{held}"


def render(console: Console, reply: Reply) -> None:
    if isinstance(reply, UsageError):
        console.print(f"[red]{_shown(reply.text)}[/]")
    elif isinstance(reply, Refusal):
        console.print(f"[yellow]{_shown(reply.text)}[/]")
    elif isinstance(reply, (Notice, Registered, TokenList, Revoked)):
        console.print(f"[green]{_shown(reply.text)}[/]")
    elif isinstance(reply, HelpText):
        console.print(_shown(describe(reply.command)))
    elif isinstance(reply, StatusReport):
        _status(console, reply)
    elif isinstance(reply, Outcome):
        pass  # its events already told the story, ending with the outcome
    elif isinstance(reply, HistoryReport):
        _history(console, reply)
    elif isinstance(reply, PlanReport):
        _plan(console, reply)
    elif isinstance(reply, ServedAt):
        console.print(_shown(reply.text))
    elif isinstance(reply, ApprovalRequested):
        console.print(Panel(_shown(reply.text), title=f"approval request {reply.approval.id}"))
    elif isinstance(reply, Decided):
        a = reply.approval
        verb = "approved" if reply.approved else "rejected"
        reason = f": {a.decision_reason}" if a.decision_reason else ""
        console.print(
            f"{_shown(a.decided_by)} {verb} {a.model} v{a.version} for {a.env}{_shown(reason)}"
        )
        if isinstance(reply.outcome, Refusal):
            console.print(f"[yellow]{_shown(reply.outcome.text)}[/]")


def _health(ep: EndpointStatus) -> str:
    return "[green]up[/]" if ep.up else "[red]down[/]"


def _status(console: Console, report: StatusReport) -> None:
    _endpoints(console, report)
    found = report.problems
    if found is None:
        return
    table = Table(
        title=f"The readiness check of {ago(found.at)} found {len(found.findings)} problem(s) "
        "(shown to admins only)",
        title_style="bold yellow",
    )
    for column in ("scope", "check", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for f in found.findings:
        table.add_row(_shown(f.scope), _shown(f.check), _shown(f.detail), _shown(f.fix))
    console.print(table)


def _endpoints(console: Console, report: StatusReport) -> None:
    if not report.endpoints:
        where = f" in {report.env}" if report.env else ""
        deploy = command("deploy <model> v<N>")
        console.print(_shown(f"No endpoints{where} yet. Deploy one with `{deploy}`."))
        return
    if report.detail:
        for ep in report.endpoints:
            table = Table(title=f"{ep.name} ({ep.env})", show_header=False)
            for key, value in [
                ("model", f"{ep.model} v{ep.version}"),
                ("health", _health(ep)),
                ("detail", _shown(ep.detail)),
                ("resources", ep.resources),
                ("since", f"{ep.since:%Y-%m-%d %H:%M:%S} UTC ({ago(ep.since)})"),
                ("url", _shown(ep.url)),
                ("target", ep.target),
                ("traffic", _shown(traffic(ep.traffic)) or "not counted"),
                ("underway", _shown(ep.underway) or "nothing"),
                # only a drifted endpoint says it (an environment may name no alias)
                ("alias", f"⚠ {_shown(ep.drift)}" if ep.drift else ""),
            ]:
                if key != "alias" or value:
                    table.add_row(key, value)
            console.print(table)
        return
    table = Table(title="Endpoints")
    for column in (
        "env",
        "endpoint",
        "model",
        "version",
        "resources",
        "replicas",
        "health",
        "since",
        "url",
        "last 5 min",
    ):
        table.add_column(column, no_wrap=column == "url")
    for ep in report.endpoints:
        table.add_row(
            ep.env,
            ep.name,
            ep.model,
            f"v{ep.version}",
            ep.resources,
            str(ep.replicas),
            _health(ep)
            + (f" · {_shown(ep.underway)}" if ep.underway else "")
            + (f" · ⚠ {_shown(ep.drift)}" if ep.drift else ""),
            ago(ep.since),
            _shown(ep.url),
            _shown(traffic_brief(ep.traffic)),
        )
    console.print(table)


def _history(console: Console, report: HistoryReport) -> None:
    if not report.entries:
        console.print(_shown(report.text))
        return
    table = Table(title="History" + (f" of {report.endpoint}" if report.endpoint else ""))
    for column in (
        "when (UTC)",
        "who",
        "command",
        "env",
        "outcome",
        "operation",
        "approver",
        "detail",
    ):
        table.add_column(column)
    for e in report.entries:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            _shown(e.actor_name),
            _shown(e.command),
            e.env,
            e.outcome,
            e.operation_id,
            _shown(e.approver),
            _shown(e.detail),
        )
    console.print(table)


def _plan(console: Console, plan: PlanReport) -> None:
    table = Table(
        title=f"Plan: {_shown(plan.summary)}",
        caption="nothing changes until the command is run",
        show_header=False,
        title_justify="left",
    )
    table.add_column("what", style="bold")
    table.add_column("found", overflow="fold")
    for key, value in plan.rows():
        table.add_row(key, _shown(value))
    for requirement in plan.requirements:
        mark = "[green]✓[/]" if requirement.ok else "[red]✗[/]"
        table.add_row(f"{mark} {requirement.name}", _shown(requirement.text))
    console.print(table)
    colour = "green" if plan.ok else "yellow"
    console.print(f"[bold {colour}]{_shown(plan.sentence)}[/]")
