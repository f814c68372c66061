"""Block Kit for status reports, history and operation messages, each with a plain-text
fallback; every one within Slack's limits (bot/slack/mrkdwn.py) and with whatever users or
the registry named escaped."""

from __future__ import annotations

import re
from typing import Any

from bot.slack import messages
from bot.slack.ids import APPROVE, REJECT
from bot.slack.mrkdwn import (
    BLOCKS,
    BUTTON,
    FALLBACK,
    FIELD,
    HEADER,
    SECTION,
    escape,
    fit,
    fit_line,
)
from bot.text import ago, traffic
from commands.base import HistoryReport, StatusReport
from core.approvals import ApprovalRequested
from core.events import EndpointStatus
from core.models import ApprovalRow
from core.registry.runs import Registered
from core.status import Problems

Blocks = list[dict[str, Any]]
_PERSON = re.compile(r"<@[UW][A-Z0-9]+>")


def section(text: str) -> dict[str, Any]:
    """A section of mrkdwn the caller escaped already."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text, SECTION)}]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": fit_line(text, HEADER)}}


def fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": fit(f"*{k}*\n{v}", FIELD)} for k, v in pairs[:10]],
    }


def fallback(text: str) -> str:
    """A message's `text`: what notifications and screen readers show."""
    return fit(text, FALLBACK)


def person(name: str) -> str:
    """A name the front recorded for someone: a mention when it is one (`<@U…>`, written by
    the bot from Slack's user id), else shown literally."""
    return name if _PERSON.fullmatch(name) else escape(name)


def status(report: StatusReport) -> tuple[str, Blocks]:
    text, blocks = _endpoints(report)
    if report.problems is None:
        return text, blocks
    told = problems(report.problems)
    return fallback(f"{text}\n{told}"), [*blocks, section(told)]


def problems(found: Problems) -> str:
    """What readiness found wrong, one escaped line each, as many as fit in a section."""
    lines = [messages.READINESS_TITLE.format(ago=ago(found.at), n=len(found.findings))]
    for f in found.findings:
        line = messages.READINESS_LINE.format(
            scope=escape(f.scope), check=escape(f.check), found=escape(f.detail), fix=escape(f.fix)
        )
        lines.append(fit_line(line, SECTION // 4))
    return fit("\n".join(lines), SECTION, more=messages.READINESS_MORE)


def _endpoints(report: StatusReport) -> tuple[str, Blocks]:
    where = f" in {escape(report.env)}" if report.env else ""
    if not report.endpoints:
        text = messages.STATUS_EMPTY.format(where=where)
        return text, [section(text)]
    title = messages.STATUS_TITLE.format(where=where)
    blocks: Blocks = [header(title)]
    lines = [title]
    # the header, the line saying what did not fit, and what readiness found wrong
    room = BLOCKS - 2 - (report.problems is not None)
    shown = report.endpoints if len(report.endpoints) <= room + 1 else report.endpoints[:room]
    for ep in shown:
        blocks.append(section(_endpoint(ep, detail=report.detail)))
        lines.append(
            f"{escape(ep.env)}/{escape(ep.name)}: {escape(ep.model)} v{ep.version}, "
            f"{escape(ep.resources)}, {'up' if ep.up else 'down'}, {escape(ep.url)}"
        )
    hidden = report.endpoints[len(shown) :]
    if hidden:
        envs = sorted({ep.env for ep in hidden})
        asks = ", ".join(messages.STATUS_ASK.format(env=escape(env)) for env in envs)
        more = messages.STATUS_MORE.format(n=len(hidden), asks=asks)
        blocks.append(context(more))
        lines.append(more)
    return fallback("\n".join(lines)), blocks


def _endpoint(ep: EndpointStatus, *, detail: bool) -> str:
    health = messages.UP if ep.up else messages.DOWN
    replicas = f"{ep.replicas} replica{'s' if ep.replicas != 1 else ''}"
    line = (
        f"*{escape(ep.name)}* ({escape(ep.env)}) {health} · {escape(ep.model)} v{ep.version} · "
        f"{escape(ep.resources)} · {replicas} · since {ago(ep.since)}\n{escape(ep.url)}"
    )
    if detail:
        line += (
            f"\n{escape(ep.detail)} · target {escape(ep.target)} · "
            f"since {ep.since:%Y-%m-%d %H:%M} UTC"
        )
    seen = traffic(ep.traffic)
    if seen:  # cut, not left out, when a target says much
        line += f"\n:bar_chart: {fit_line(escape(seen), SECTION // 4)}"
    if ep.underway:
        line += f"\n:hourglass_flowing_sand: {escape(ep.underway)}"
    return line


def history(report: HistoryReport) -> tuple[str, Blocks]:
    """Newest first, as many entries to a section as fit: 50 entries fit in a message."""
    if not report.entries:
        where = f" for {escape(report.endpoint)}" if report.endpoint else ""
        text = messages.HISTORY_EMPTY.format(where=where)
        return text, [section(text)]
    title = messages.HISTORY_TITLE.format(
        n=len(report.entries), where=f" of {report.endpoint}" if report.endpoint else ""
    )
    blocks: Blocks = [header(title)]
    page: list[str] = []
    for e in report.entries:
        op = f" ({escape(e.operation_id)})" if e.operation_id else ""
        approver = f", approved by {person(e.approver)}" if e.approver else ""
        why = f" — {escape(e.detail)}" if e.detail else ""
        line = fit(
            f"{e.at:%Y-%m-%d %H:%M:%S} {person(e.actor_name)}: `{escape(e.command)}` in "
            f"{escape(e.env)} → {escape(e.outcome)}{op}{approver}{why}",
            SECTION // 3,
        )
        if sum(len(p) + 1 for p in page) + len(line) > SECTION:
            blocks.append(section("\n".join(page)))
            page = []
        page.append(line)
    blocks.append(section("\n".join(page)))
    text = "\n".join(b["text"]["text"] for b in blocks[1:])
    return fallback(f"{title}\n{text}"), blocks[:BLOCKS]


def metrics(values: dict[str, float], *, first: set[str], limit: int = FIELD - 100) -> str:
    """Metrics as `name value`, those named in `first` (the ones both versions share, so they
    can be compared) before the others, as many as fit, then how many more there are."""
    if not values:
        return messages.NO_METRICS
    names = sorted(values, key=lambda k: (k not in first, k))
    shown: list[str] = []
    size = 0
    for k in names:
        item = f"{escape(k)} {values[k]:.4g}"
        if size + len(item) + 2 > limit - 30:
            break
        shown.append(item)
        size += len(item) + 2
    left = len(names) - len(shown)
    return ", ".join(shown) + (messages.AND_MORE.format(n=left) if left else "")


def approval(req: ApprovalRequested) -> tuple[str, Blocks]:
    """The request with its evidence, and Approve / Reject buttons bound to its id."""
    a = req.approval
    model, env = escape(a.model), escape(a.env)
    head = f"*{person(a.requester_name)} asks to deploy {model} v{a.version} to {env}*"
    if a.reason:
        head += f"\n_Why:_ {escape(a.reason)}"
    shared = set(req.candidate.metrics) & set(req.live.metrics if req.live else {})
    live = (
        (f"Live now: v{req.live.version}", metrics(req.live.metrics, first=shared))
        if req.live is not None
        else ("Live now", f"nothing of {model} serves in {env}")
    )
    blocks: Blocks = [
        section(head),
        fields([(f"Candidate: v{a.version}", metrics(req.candidate.metrics, first=shared)), live]),
        context(
            f"Request `{escape(a.id)}` · open until {a.expires_at:%Y-%m-%d %H:%M} UTC · an admin "
            f"of {env} who did not ask decides, once"
        ),
        decision_buttons(a, production=req.production),
    ]
    text = (
        f"{person(a.requester_name)} asks to deploy {model} v{a.version} to {env} "
        f"(request {escape(a.id)})"
    )
    return fallback(text), blocks


def decision_buttons(a: ApprovalRow, *, production: bool) -> dict[str, Any]:
    """Approve / Reject for one request; approving in production asks to confirm first."""
    approve = _button("Approve", APPROVE, a.id, "primary")
    if production:
        approve["confirm"] = {
            "title": {"type": "plain_text", "text": f"Deploy to {a.env}?"[:100]},
            "text": {
                "type": "mrkdwn",
                "text": messages.CONFIRM_PRODUCTION.format(
                    model=a.model, version=a.version, env=a.env
                ),
            },
            "confirm": {"type": "plain_text", "text": "Approve and deploy"},
            "deny": {"type": "plain_text", "text": "Not yet"},
            "style": "primary",
        }
    return {
        "type": "actions",
        "block_id": f"decide-{a.id}",
        "elements": [approve, _button("Reject", REJECT, a.id, "danger")],
    }


def decided(blocks: Blocks, text: str) -> Blocks:
    """The request as it was shown, its buttons replaced by the decision."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    return [*kept, section(text)][:BLOCKS]


def noted(blocks: Blocks, text: str) -> Blocks:
    """The request as it was shown, buttons kept, with a note above them (it stays open)."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    buttons = [b for b in blocks if b.get("type") == "actions"]
    return [*kept, section(text), *buttons][-BLOCKS:]


def _button(label: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": fit_line(label, BUTTON)},
        "action_id": action_id,
        "value": value,
        "style": style,
    }


def registered(reg: Registered) -> tuple[str, Blocks]:
    """A registered version: where it came from, its metrics (as many as fit), what next."""
    label = f"{escape(reg.model)} v{reg.version}"
    head = (
        f"Registered *{label}* from run `{escape(reg.run_id[:8])}` of {escape(reg.experiment)} "
        f"(ended {reg.ended_at:%Y-%m-%d %H:%M} UTC)"
    )
    listed = metrics(reg.metrics, first=set(), limit=SECTION - len(head) - 200)
    nxt = messages.REGISTERED_NEXT.format(model=escape(reg.model), version=reg.version)
    text = f"{head}\n{listed}\n{nxt}"
    return fallback(text), [section(text)]
