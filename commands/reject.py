"""`reject <request> [reason]`"""

from __future__ import annotations

from commands.approve import Decide, parse_decision
from commands.approve import run as run
from commands.base import UsageError

NAME = "reject"
SUMMARY = "reject a promotion request, saying why (admins)"
USAGE = "reject <request> [reason]"
EXAMPLES = ["reject apr-1a2b3c4d5e recall dropped on the holdout set"]
DETAILS = """\
In Slack the request's Reject button does the same. The reason is recorded in the audit
trail and shown to the requester."""


def parse(text: str) -> Decide | UsageError:
    return parse_decision(text, approve=False, usage=USAGE, example=EXAMPLES[0])
