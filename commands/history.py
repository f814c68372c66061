"""`history [endpoint] [N] [--at "<moment>"]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import (
    Context,
    HistoryReport,
    Reply,
    UsageError,
    check_name,
    shown,
    take_flag,
    tokens,
)
from core.moments import FORMS, Moment, moment

NAME = "history"
SUMMARY = "show recent attempts to change what serves, or what served at a moment"
USAGE = 'history [endpoint] [N] [--at "<moment>"]'
EXAMPLES = [
    "history",
    "history iris 5",
    'history iris --at "2026-12-01 14:00"',
    'history iris --at "2h ago"',
]
DETAILS = """\
Newest first: when, who, the exact command, environment, outcome, operation and approver.
N is at most 50 (default 10). `chatops audit export` writes the whole trail as CSV or JSON.

`--at "<moment>"` answers what served the endpoint in every environment at that moment
instead: the version, who switched it (and who approved), and that operation with its
thread. A moment is an ISO date-time (`2026-12-01 14:00`, `2026-12-01T14:00Z`,
`2026-12-01T14:00+01:00`), a time ago (`2h ago`, `30 min ago`), `yesterday 14:00` or `now`.
Without a zone it is read in your time zone (in Slack the one you set there, in the console
the machine's; else UTC), and every time is shown in it."""
AT = "at"


class History(BaseModel):
    endpoint: str | None = None
    limit: int = 10
    at: Moment | None = None  # what served then, instead of the attempts


def _error(problem: str, example: int = 1) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[example])


def parse(text: str) -> History | UsageError:
    taken = take_flag(text, AT)
    if taken is None:
        return _error(f"The moment after `--{AT}` has no closing quote.", 2)
    text, when = taken
    at = None
    if when is not None:
        at = moment(when)
        if at is None:
            said = (
                f"`{shown(when)}` is not a moment" if when else f"Say which moment after `--{AT}`"
            )
            return _error(f"{said}: use {FORMS}.", 2)
    words = tokens(text)
    endpoint, limit = None, 10
    if words and not _number(words[0]):
        endpoint, words = words[0], words[1:]
        if bad := check_name(endpoint, "endpoint name", USAGE, EXAMPLES[1]):
            return bad
    if at is not None:
        if endpoint is None:
            return _error(f"Say which endpoint: `history <endpoint> --{AT} <moment>`.", 2)
        if words:
            return _error(f"Unexpected `{shown(' '.join(words))}`: `--{AT}` takes no N.", 2)
        return History(endpoint=endpoint, at=at)
    if words:
        if not _number(words[0]) or not 1 <= int(words[0]) <= 50:
            return _error(f"`{shown(words[0])}` is not a number of entries from 1 to 50.")
        limit, words = int(words[0]), words[1:]
    if words:
        return _error(f"Unexpected `{shown(' '.join(words))}` after the number of entries.")
    return History(endpoint=endpoint, limit=limit)


def run(cmd: History, ctx: Context) -> Reply:
    if cmd.at is not None and cmd.endpoint is not None:
        return ctx.core.served_at(cmd.endpoint, cmd.at, ctx.time_zone())
    rows = ctx.core.repos.audit.entries(endpoint=cmd.endpoint, limit=cmd.limit)
    return HistoryReport(entries=rows, endpoint=cmd.endpoint)


def _number(word: str) -> bool:
    # str.isdigit() is true for `²` and other digits int() cannot read
    return word.isascii() and word.isdigit()
