"""Block Kit for status reports and operation messages, each with a plain-text fallback."""

from __future__ import annotations

from typing import Any

from bot.slack import messages
from bot.text import ago
from commands.base import StatusReport

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
        blocks.append(section(line))
        lines.append(
            f"{ep.env}/{ep.name}: {ep.model} v{ep.version}, {ep.resources}, "
            f"{'up' if ep.up else 'down'}, {ep.url}"
        )
    return "\n".join(lines), blocks
