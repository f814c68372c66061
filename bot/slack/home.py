"""The App Home: for whoever opens it, what serves in every environment, the requests they may
decide (with the same buttons as the request's message), and their own recent requests and
operations. Published with `views.publish`, at most 100 blocks (Slack's limit for a Home).
"""

from __future__ import annotations

from typing import Any

from bot.slack import messages
from bot.slack.blocks import Blocks, context, decision_buttons, section
from bot.slack.mrkdwn import SECTION, fit_line
from bot.text import ago, traffic
from core.models import ApprovalRow, Operation
from core.overview import Overview

MAX_BLOCKS = 100


def _esc(text: str) -> str:
    """Names and reasons shown as text, never as mrkdwn links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def home_view(seen: Overview, *, production: frozenset[str], command: str) -> dict[str, Any]:
    """The Home tab's view for one person; `production`: environments whose approvals ask
    to confirm."""
    blocks: Blocks = [_header(messages.HOME_TITLE)]
    blocks += _endpoints(seen, command)
    if seen.to_decide:
        blocks.append(_header(messages.HOME_TO_DECIDE))
        for a in seen.to_decide:
            blocks.append(section(_request_line(a)))
            blocks.append(decision_buttons(a, production=a.env in production))
    blocks.append(_header(messages.HOME_MINE))
    if not seen.requests and not seen.operations:
        blocks.append(context(messages.HOME_NOTHING_MINE.format(command=command)))
    for a in seen.requests:
        blocks.append(section(_request_line(a)))
    for op in seen.operations:
        blocks.append(section(_operation_line(op)))
    return {"type": "home", "blocks": _fit(blocks)}


def _endpoints(seen: Overview, command: str) -> Blocks:
    if seen.problem:
        return [section(f":warning: {_esc(seen.problem)}")]
    if not seen.endpoints:
        return [section(messages.HOME_NO_ENDPOINTS.format(command=command))]
    blocks: Blocks = []
    for env in sorted({ep.env for ep in seen.endpoints}):
        blocks.append(section(f"*{_esc(env)}*"))
        for ep in (e for e in seen.endpoints if e.env == env):
            health = messages.UP if ep.up else messages.DOWN
            replicas = f"{ep.replicas} replica{'s' if ep.replicas != 1 else ''}"
            line = (
                f"*{_esc(ep.name)}* · {_esc(ep.model)} v{ep.version} · {health} · "
                f"{_esc(ep.resources)} · {replicas} · since {ago(ep.since)}"
            )
            if seen := traffic(ep.traffic):
                line += f"\n:bar_chart: {fit_line(_esc(seen), SECTION // 4)}"
            if ep.underway:
                line += f"\n:hourglass_flowing_sand: {_esc(ep.underway)}"
            blocks.append(section(line))
    return blocks


def _request_line(a: ApprovalRow) -> str:
    head = (
        f"*{_esc(a.model)} v{a.version} to {_esc(a.env)}* · asked by {_esc(a.requester_name)} · "
        f"`{a.id}`"
    )
    if a.reason:
        head += f"\n_Why:_ {_esc(a.reason)}"
    if a.state == "pending":
        return head + f"\nopen until {a.expires_at:%Y-%m-%d %H:%M} UTC"
    if a.state == "expired":
        return head + f"\nexpired at {a.expires_at:%Y-%m-%d %H:%M} UTC, undecided"
    by = f" by {_esc(a.decided_by)}" if a.decided_by else ""
    return head + f"\n{a.state}{by}"


def _operation_line(op: Operation) -> str:
    when = f"{op.created_at:%Y-%m-%d %H:%M} UTC"
    line = f"`{_esc(op.command)}` · {op.state}"
    if op.step and op.state not in ("succeeded", "failed"):
        line += f" at {op.step}"
    line += f" · {when} · `{op.id}`"
    if op.error:
        line += f"\n{_esc(op.error[:300])}"
    return line


def _fit(blocks: Blocks) -> Blocks:
    """At most 100 blocks: what does not fit is counted, not dropped silently; a request is
    never shown without its buttons."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    cut = MAX_BLOCKS - 1
    if blocks[cut].get("type") == "actions":
        cut -= 1
    return [*blocks[:cut], context(messages.HOME_MORE.format(n=len(blocks) - cut))]
