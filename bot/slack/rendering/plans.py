"""A plan in Block Kit: what the command would do, each requirement it would meet, the verdict;
everything the registry, settings or users named escaped, within Slack's limits, and what
does not fit counted (metrics by name, requirements by line)."""

from __future__ import annotations

from bot.slack.rendering import messages
from bot.slack.rendering.blocks import Blocks, context, fallback, header, rendered, section
from bot.slack.rendering.mrkdwn import SECTION, fit, fit_line, mention, plain_text, shown
from commands.naming import DEFAULT, Naming
from core.admission.plans import PlanReport

ROW = SECTION // 8


def plan(report: PlanReport, naming: Naming = DEFAULT) -> tuple[str, Blocks]:
    """The plan's message, its commands named as `naming` registers them."""
    rows = []
    for key, value in report.rows():
        if key == "admins":  # ids the settings name, shown as who they are
            text = ", ".join(mention(a) for a in report.approvers)
        elif key == "metrics":
            text = _metrics(report, ROW - len(key) - 8, naming)
        else:
            text = shown(value, naming)
        rows.append(fit_line(f"*{key}*: {text}", ROW))
    requirements = [
        fit_line(
            f"{messages.PLAN_PASSED if c.ok else messages.PLAN_REFUSED} *{shown(c.name, naming)}* "
            f"{shown(c.text, naming)}",
            SECTION // 6,
        )
        for c in report.requirements
    ]
    verdict = shown(report.sentence, naming)
    blocks: Blocks = [
        header(plain_text(messages.PLAN_TITLE.format(summary=report.summary), naming))
    ]
    if rows:
        blocks.append(section("\n".join(rows)))
    blocks += [
        section(fit("\n".join(requirements), SECTION, more=messages.PLAN_MORE_REQUIREMENTS)),
        section(f"*{verdict}*"),
        context(messages.PLAN_CHANGES_NOTHING),
    ]
    title = messages.PLAN_TITLE.format(summary=shown(report.summary, naming))
    return rendered(fallback(f"{title}\n{verdict}"), blocks, naming)


def _metrics(report: PlanReport, limit: int, naming: Naming) -> str:
    """As many whole metric comparisons as fit in `limit`, then how many more there are."""
    listed: list[str] = []
    size = 0
    for i, m in enumerate(report.metrics):
        item = shown(m.describe(), naming)
        note = messages.AND_MORE.format(n=len(report.metrics) - i)
        if size + len(item) + 2 + len(note) > limit:
            return "; ".join(listed) + messages.AND_MORE.format(n=len(report.metrics) - i)
        listed.append(item)
        size += len(item) + 2
    return "; ".join(listed)
