"""The App Home: for whoever opens it, what serves in every environment, the requests they may
decide (with the same buttons as the request's message), and their own recent requests and
operations. Published with `views.publish`, at most 100 blocks (Slack's limit for a Home):
their own requests and operations are always shown; endpoints that do not fit are counted, by
environment, with the command that lists them.
"""

from __future__ import annotations

from typing import Any

from bot.slack.rendering import messages
from bot.slack.rendering.blocks import Blocks, context, decision_buttons, header, rendered, section
from bot.slack.rendering.mrkdwn import HOME_BLOCKS, SECTION, escape, fit_line, person, shown
from bot.text import ago, traffic
from commands.naming import DEFAULT, Naming
from core.events import EndpointStatus
from core.oncall.overview import Overview
from core.store.models import ApprovalRow, Operation

MAX_BLOCKS = HOME_BLOCKS


def home_view(
    seen: Overview, *, production: frozenset[str], naming: Naming = DEFAULT
) -> dict[str, Any]:
    """The Home tab's view for one person; `production`: environments whose approvals ask
    to confirm; `naming`: how the commands it names are typed."""
    mine: Blocks = [header(messages.HOME_MINE)]
    if not seen.requests and not seen.operations:
        mine.append(context(messages.HOME_NOTHING_MINE))
    mine += [section(_request_line(a)) for a in seen.requests]
    mine += [section(_operation_line(op, naming)) for op in seen.operations]
    decide: Blocks = []
    if seen.to_decide:
        decide.append(header(messages.HOME_TO_DECIDE))
        for a in seen.to_decide:
            decide.append(section(_request_line(a)))
            decide.append(decision_buttons(a, production=a.env in production))
    room = MAX_BLOCKS - 1 - len(decide) - len(mine)
    blocks = [header(messages.HOME_TITLE), *_endpoints(seen, room, naming), *decide, *mine]
    _, blocks = rendered("", blocks, naming)
    return {"type": "home", "blocks": blocks}


def _endpoints(seen: Overview, room: int, naming: Naming) -> Blocks:
    """At most `room` blocks: each environment's endpoints, as many to a section as fit, and
    what did not fit counted by environment, with the command that lists them."""
    if seen.problem:
        return [section(f":warning: {shown(seen.problem, naming)}")]
    if not seen.endpoints:
        return [section(messages.HOME_NO_ENDPOINTS)]
    envs = sorted({ep.env for ep in seen.endpoints})
    sections: list[tuple[str, list[EndpointStatus]]] = []  # (env, endpoints of one section)
    for env in envs:
        text, members = f"*{escape(env)}*", []
        for ep in (e for e in seen.endpoints if e.env == env):
            line = _endpoint_line(ep, naming)
            if len(text) + 1 + len(line) > SECTION:
                sections.append((env, members))
                text, members = "", []
            text += f"\n{line}" if text else line
            members.append(ep)
        sections.append((env, members))
    kept = sections if len(sections) <= room else sections[: max(room - 1, 0)]
    blocks: Blocks = []
    for i, (env, members) in enumerate(kept):
        first = i == 0 or kept[i - 1][0] != env
        lines = [f"*{escape(env)}*"] if first else []
        lines += [_endpoint_line(ep, naming) for ep in members]
        blocks.append(section("\n".join(lines)))
    hidden = [ep for _, members in sections[len(kept) :] for ep in members]
    if hidden:
        where = sorted({ep.env for ep in hidden})
        asks = ", ".join(messages.HOME_ASK.format(env=env) for env in where)
        blocks.append(
            context(
                messages.HOME_MORE_ENDPOINTS.format(
                    n=len(hidden), envs=", ".join(escape(e) for e in where), asks=asks
                )
            )
        )
    return blocks


def _endpoint_line(ep: EndpointStatus, naming: Naming) -> str:
    health = messages.UP if ep.up else messages.DOWN
    replicas = f"{ep.replicas} replica{'s' if ep.replicas != 1 else ''}"
    line = (
        f"*{escape(ep.name)}* · {escape(ep.model)} v{ep.version} · {health} · "
        f"{escape(ep.resources)} · {replicas} · since {ago(ep.since)}"
    )
    if answered := traffic(ep.traffic):
        line += f"\n:bar_chart: {fit_line(escape(answered), SECTION // 4)}"
    if ep.underway:
        line += f"\n:hourglass_flowing_sand: {shown(ep.underway, naming)}"
    if ep.drift:
        line += f"\n:warning: {escape(ep.drift)}"
    return line


def _request_line(a: ApprovalRow) -> str:
    head = (
        f"*{escape(a.model)} v{a.version} to {escape(a.env)}* · asked by "
        f"{person(a.requester_name)} · `{escape(a.id)}`"
    )
    if a.reason:
        head += f"\n_Why:_ {fit_line(escape(a.reason), SECTION // 4)}"
    if a.state == "pending":
        return head + f"\nopen until {a.expires_at:%Y-%m-%d %H:%M} UTC"
    if a.state == "expired":
        return head + f"\nexpired at {a.expires_at:%Y-%m-%d %H:%M} UTC, undecided"
    by = f" by {person(a.decided_by)}" if a.decided_by else ""
    return head + f"\n{escape(a.state)}{by}"


def _operation_line(op: Operation, naming: Naming) -> str:
    when = f"{op.created_at:%Y-%m-%d %H:%M} UTC"
    line = f"`{escape(op.command)}` · {op.state}"
    if op.step and op.state not in ("succeeded", "failed"):
        line += f" at {op.step}"
    line += f" · {when} · `{op.id}`"
    if op.error:
        line += f"\n{fit_line(shown(op.error, naming), SECTION // 4)}"
    return line
