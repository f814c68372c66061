"""Block Kit for what served an endpoint at a moment (`/history <endpoint> --at …`): one
line per environment, each naming the operation that switched it and linking its thread."""

from __future__ import annotations

import re

from bot.slack.rendering.blocks import Blocks, context, fallback, header, section
from bot.slack.rendering.mrkdwn import BLOCKS, escape, shown
from commands.naming import DEFAULT, Naming
from core.oncall.timemachine import ServedAt, Switch

THREAD_LINKED = " · <{link}|its thread>"
THREAD_IN = " · its thread is in <#{channel}>"
TIMES_IN = "Times in {zone}"
_CHANNEL = re.compile(r"[CG][A-Z0-9]+")


def served_at(
    report: ServedAt, links: dict[str, str], naming: Naming = DEFAULT
) -> tuple[str, Blocks]:
    """The message; `links` holds each operation's thread permalink, as Slack gave it."""
    lines = [shown(report.remark, naming)] if report.remark else []
    if not lines:
        for env in report.envs:
            found = report.of(env)
            lines += [shown(report.line(s), naming) + _thread(s, links) for s in found] or [
                escape(report.nothing(env)) + "."
            ]
    kept = lines[: BLOCKS - 3]
    blocks: Blocks = [header(report.title)]
    blocks += [section(line) for line in kept]
    if len(lines) > len(kept):
        blocks.append(context(f"… and {len(lines) - len(kept)} more environments"))
    blocks.append(context(TIMES_IN.format(zone=escape(report.zone.name))))
    return fallback("\n".join([escape(report.title), *lines])), blocks


def _thread(s: Switch, links: dict[str, str]) -> str:
    link = links.get(s.operation, "")
    if link:
        return THREAD_LINKED.format(link=link)
    channel = str(s.where.get("channel") or "")
    if s.where.get("front") == "slack" and _CHANNEL.fullmatch(channel):
        return THREAD_IN.format(channel=channel)
    return ""
