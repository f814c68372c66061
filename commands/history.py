"""`history [endpoint] [N]`"""

from __future__ import annotations

from pydantic import BaseModel

from commands.base import Context, HistoryReport, Reply, UsageError, check_name, shown, tokens

NAME = "history"
SUMMARY = "show recent attempts to change what serves, allowed or refused"
USAGE = "history [endpoint] [N]"
EXAMPLES = ["history", "history iris 5"]
DETAILS = """\
Newest first: when, who, the exact command, environment, outcome, operation and approver.
N is at most 50 (default 10). `chatops audit export` writes the whole trail as CSV or JSON."""


class History(BaseModel):
    endpoint: str | None = None
    limit: int = 10


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[1])


def parse(text: str) -> History | UsageError:
    words = tokens(text)
    endpoint, limit = None, 10
    if words and not _number(words[0]):
        endpoint, words = words[0], words[1:]
        if bad := check_name(endpoint, "endpoint name", USAGE, EXAMPLES[1]):
            return bad
    if words:
        if not _number(words[0]) or not 1 <= int(words[0]) <= 50:
            return _error(f"`{shown(words[0])}` is not a number of entries from 1 to 50.")
        limit, words = int(words[0]), words[1:]
    if words:
        return _error(f"Unexpected `{shown(' '.join(words))}` after the number of entries.")
    return History(endpoint=endpoint, limit=limit)


def run(cmd: History, ctx: Context) -> Reply:
    rows = ctx.core.repos.audit.entries(endpoint=cmd.endpoint, limit=cmd.limit)
    return HistoryReport(entries=rows, endpoint=cmd.endpoint)


def _number(word: str) -> bool:
    # str.isdigit() is true for `²` and other digits int() cannot read
    return word.isascii() and word.isdigit()
