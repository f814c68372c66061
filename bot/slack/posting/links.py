"""Links to messages, as Slack gives them (`chat.getPermalink`)."""

from __future__ import annotations

import re
from typing import Any

from bot.slack.posting.poster import Poster

CHANNEL = re.compile(r"[CGD][A-Z0-9]+")
# a link Slack gave: nothing in it may close the `<…|…>` it is shown in
PERMALINK = re.compile(r"https://[A-Za-z0-9.-]+/archives/[A-Z0-9]+/p[0-9]+(\?[A-Za-z0-9_=&.-]+)?")


def thread_link(poster: Poster, where: dict[str, Any]) -> str:
    """The permalink of the thread `where` names (a `reply_to` or `ThreadReporter.where`),
    "" when it names none in Slack or Slack gives none fit to show."""
    channel = str(where.get("channel") or "")
    ts = str(where.get("thread_ts") or where.get("ts") or "")
    if not (CHANNEL.fullmatch(channel) and ts):
        return ""
    found = poster.try_call("chat.getPermalink", channel=channel, message_ts=ts)
    link = str((found or {}).get("permalink") or "")
    return link if PERMALINK.fullmatch(link) else ""
