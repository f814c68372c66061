"""Block Kit for status reports and operation messages, each with a plain-text fallback."""

from __future__ import annotations

from typing import Any

from bot.slack import messages
from bot.slack.ids import APPROVE, REJECT
from bot.text import ago
from commands.base import StatusReport
from core.approvals import ApprovalRequested, metrics_text
from core.models import ApprovalRow

Blocks = list[dict[str, Any]]
MAX_SECTION = 2900  # Slack rejects a text object over 3,000 characters


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION]}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_SECTION]}]}


def fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:1900]} for k, v in pairs[:10]],
    }


def status(report: StatusReport) -> tuple[str, Blocks]:
    where = f" in {report.env}" if report.env else ""
    if not report.endpoints:
        text = messages.STATUS_EMPTY.format(where=where)
        return text, [section(text)]
    title = messages.STATUS_TITLE.format(where=where)
    blocks: Blocks = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    lines = [title]
    for ep in report.endpoints[:45]:  # Slack allows 50 blocks a message
        health = messages.UP if ep.up else messages.DOWN
        replicas = f"{ep.replicas} replica{'s' if ep.replicas != 1 else ''}"
        line = (
            f"*{ep.name}* ({ep.env}) {health} · {ep.model} v{ep.version} · {ep.resources} · "
            f"{replicas} · since {ago(ep.since)}\n{ep.url}"
        )
        if report.detail:
            line += f"\n{ep.detail} · target {ep.target} · since {ep.since:%Y-%m-%d %H:%M} UTC"
        if ep.underway:
            line += f"\n:hourglass_flowing_sand: {ep.underway}"
        blocks.append(section(line))
        lines.append(
            f"{ep.env}/{ep.name}: {ep.model} v{ep.version}, {ep.resources}, "
            f"{'up' if ep.up else 'down'}, {ep.url}"
        )
    return "\n".join(lines), blocks


def approval(req: ApprovalRequested) -> tuple[str, Blocks]:
    """The request with its evidence, and Approve / Reject buttons bound to its id."""
    a = req.approval
    head = f"*{a.requester_name} asks to deploy {a.model} v{a.version} to {a.env}*"
    if a.reason:
        head += f"\n_Why:_ {a.reason}"
    live = (
        (f"Live now: v{req.live.version}", metrics_text(req.live))
        if req.live is not None
        else ("Live now", f"nothing of {a.model} serves in {a.env}")
    )
    blocks: Blocks = [
        section(head),
        fields([(f"Candidate: v{a.version}", metrics_text(req.candidate)), live]),
        context(
            f"Request `{a.id}` · open until {a.expires_at:%Y-%m-%d %H:%M} UTC · an admin of "
            f"{a.env} who did not ask decides, once"
        ),
        decision_buttons(a, production=req.production),
    ]
    return req.text, blocks


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
    return [*kept, section(text)]


def noted(blocks: Blocks, text: str) -> Blocks:
    """The request as it was shown, buttons kept, with a note above them (it stays open)."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    buttons = [b for b in blocks if b.get("type") == "actions"]
    return [*kept, section(text), *buttons]


def _button(label: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
        "style": style,
    }
