"""Block Kit for status reports, history and operation messages, each with a plain-text
fallback; every one within Slack's limits (bot/slack/rendering/mrkdwn.py) and with whatever users or
the registry named escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack.rendering import messages
from bot.slack.rendering.ids import APPROVE, REJECT
from bot.slack.rendering.mrkdwn import (
    BLOCKS,
    BUTTON,
    CONFIRM,
    FALLBACK,
    FIELD,
    HEADER,
    SECTION,
    escape,
    fit,
    fit_line,
    named,
    person,
    shown,
)
from bot.text import ago, traffic
from commands.base import HistoryReport, StatusReport
from commands.naming import DEFAULT, Naming
from core.events import EndpointStatus
from core.oncall.status import Problems
from core.store.models import ApprovalRow

if TYPE_CHECKING:  # types only: the front imports this module and never loads MLflow
    from core.admission.approvals import ApprovalRequested
    from core.registry.runs import Registered

Blocks = list[dict[str, Any]]


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


def rendered(text: str, blocks: Blocks, naming: Naming) -> tuple[str, Blocks]:
    """A message whose texts still hold marks (commands of `messages`), rendered for
    `naming`: every command as the front registers it."""
    return named(text, naming), _named(blocks, naming)


def _named(value: Any, naming: Naming) -> Any:
    if isinstance(value, str):
        return named(value, naming)
    if isinstance(value, list):
        return [_named(v, naming) for v in value]
    if isinstance(value, dict):
        return {k: _named(v, naming) for k, v in value.items()}
    return value


def status(report: StatusReport, naming: Naming = DEFAULT) -> tuple[str, Blocks]:
    text, blocks = _endpoints(report)
    if report.problems is not None:
        told = problems(report.problems)
        text, blocks = fallback(f"{text}\n{told}"), [*blocks, section(told)]
    return rendered(text, blocks, naming)


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
    # the header, the line saying what is on other pages, and what readiness found wrong
    room = BLOCKS - 2 - (report.problems is not None)
    pages = -(-len(report.endpoints) // room) if len(report.endpoints) > room + 1 else 1
    page = min(report.page, pages)
    first = (page - 1) * room
    shown = report.endpoints[first : first + room] if pages > 1 else report.endpoints
    title = messages.STATUS_TITLE.format(where=where)
    if pages > 1:
        title += messages.STATUS_PAGE.format(page=page, pages=pages)
    blocks: Blocks = [header(title)]
    lines = [title]
    if report.page > pages:
        lines.append(messages.STATUS_NO_PAGE.format(page=report.page, pages=pages))
        blocks.append(context(lines[-1]))
    for ep in shown:
        blocks.append(section(_endpoint(ep, detail=report.detail)))
        lines.append(
            f"{escape(ep.env)}/{escape(ep.name)}: {escape(ep.model)} v{ep.version}, "
            f"{escape(ep.resources)}, {'up' if ep.up else 'down'}, {escape(ep.url)}"
        )
    after = len(report.endpoints) - first - len(shown)
    if after > 0:
        ask = messages.STATUS_ASK.format(
            where=f" in {report.env}" if report.env else "", page=page + 1
        )
        more = messages.STATUS_MORE.format(n=after, asks=ask)
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
    if ep.drift:
        line += f"\n:warning: {escape(ep.drift)}"
    return line


def history(report: HistoryReport, naming: Naming = DEFAULT) -> tuple[str, Blocks]:
    """Newest first, as many entries to a section as fit: 50 entries fit in a message."""
    if not report.entries:
        where = f" for {escape(report.endpoint)}" if report.endpoint else ""
        text = messages.HISTORY_EMPTY.format(where=where)
        return text, [section(text)]
    title = messages.HISTORY_TITLE.format(
        n=len(report.entries), where=f" of {report.endpoint}" if report.endpoint else ""
    )
    blocks: Blocks = [header(title)]
    pages: list[list[str]] = [[]]
    for e in report.entries:
        op = f" ({escape(e.operation_id)})" if e.operation_id else ""
        approver = f", approved by {person(e.approver)}" if e.approver else ""
        why = f" — {shown(e.detail, naming)}" if e.detail else ""
        line = fit(
            f"{e.at:%Y-%m-%d %H:%M:%S} {person(e.actor_name)}: `{escape(e.command)}` in "
            f"{escape(e.env)} → {escape(e.outcome)}{op}{approver}{why}",
            SECTION // 3,
        )
        if sum(len(p) + 1 for p in pages[-1]) + len(line) > SECTION:
            pages.append([])
        pages[-1].append(line)
    kept = pages[: BLOCKS - 2] if len(pages) > BLOCKS - 1 else pages
    blocks += [section("\n".join(p)) for p in kept]
    left = sum(len(p) for p in pages[len(kept) :])
    if left:
        blocks.append(context(messages.HISTORY_MORE.format(n=left)))
    text = "\n".join(b["text"]["text"] if "text" in b else "" for b in blocks[1:])
    return fallback(f"{title}\n{text}"), blocks


def metrics(values: dict[str, float], *, first: set[str], limit: int = FIELD - 100) -> str:
    """Metrics as `name value`, those named in `first` (the ones both versions share, so they
    can be compared) before the others, as many as fit, then how many more there are."""
    if not values:
        return messages.NO_METRICS
    names = sorted(values, key=lambda k: (k not in first, k))
    listed: list[str] = []
    size = 0
    for k in names:
        item = f"{escape(k)} {values[k]:.4g}"
        if size + len(item) + 2 > limit - 30:
            break
        listed.append(item)
        size += len(item) + 2
    left = len(names) - len(listed)
    return ", ".join(listed) + (messages.AND_MORE.format(n=left) if left else "")


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
                "text": fit_line(
                    messages.CONFIRM_PRODUCTION.format(
                        model=escape(a.model), version=a.version, env=escape(a.env)
                    ),
                    CONFIRM,
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


def registered(reg: Registered, naming: Naming = DEFAULT) -> tuple[str, Blocks]:
    """A registered version: where it came from, its metrics (as many as fit), what next."""
    label = f"{escape(reg.model)} v{reg.version}"
    head = (
        f"Registered *{label}* from run `{escape(reg.run_id[:8])}` of {escape(reg.experiment)} "
        f"(ended {reg.ended_at:%Y-%m-%d %H:%M} UTC)"
    )
    listed = metrics(reg.metrics, first=set(), limit=SECTION - len(head) - 200)
    nxt = messages.REGISTERED_NEXT.format(model=reg.model, version=reg.version)
    text = f"{head}\n{listed}\n{nxt}"
    return rendered(fallback(text), [section(text)], naming)
