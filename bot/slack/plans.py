"""A plan in Block Kit: what the command would do, each check it would meet, the verdict;
everything the registry, settings or users named escaped, within Slack's limits."""

from __future__ import annotations

from collections.abc import Callable

from bot.slack import messages
from bot.slack.blocks import Blocks, context, fallback, header, section
from bot.slack.mrkdwn import SECTION, escape, fit, fit_line, mention
from core.plans import PlanReport


def plan(report: PlanReport, *, shown: Callable[[str], str] = escape) -> tuple[str, Blocks]:
    """The plan's message; `shown` escapes core text (keeping the mentions the bot means)."""
    rows = []
    for key, value in report.rows():
        admins = key == "admins"  # ids the settings name, shown as who they are
        text = ", ".join(mention(a) for a in report.approvers) if admins else shown(value)
        rows.append(fit_line(f"*{key}*: {text}", SECTION // 8))
    checks = [
        fit_line(
            f"{messages.PLAN_PASSED if c.ok else messages.PLAN_REFUSED} *{escape(c.name)}* "
            f"{shown(c.text)}",
            SECTION // 6,
        )
        for c in report.checks
    ]
    verdict = shown(report.sentence)
    blocks: Blocks = [header(messages.PLAN_TITLE.format(summary=report.summary))]
    if rows:
        blocks.append(section("\n".join(rows)))
    blocks += [
        section(fit("\n".join(checks), SECTION)),
        section(f"*{verdict}*"),
        context(messages.PLAN_CHANGES_NOTHING),
    ]
    title = messages.PLAN_TITLE.format(summary=shown(report.summary))
    return fallback(f"{title}\n{verdict}"), blocks
