"""What only a front knows how to write, in a neutral form the core and the command table use:
a command (`/mlops deploy …` or `/deploy …` in Slack, depending on its settings) and a person
the bot means to notify (a mention in Slack, a name on the console).

A mark is delimited by characters of Unicode's private use area. Fronts take them out of
whatever users type (`unmarked`, at parse), so user text can neither forge a mention nor a
command hint; each front renders the marks of a text (`render`) and escapes the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_COMMAND = ("\ue000", "\ue001")
_PERSON = ("\ue002", "\ue003")
_MARK = re.compile("\ue000([^\ue000-\ue003]*)\ue001|\ue002([^\ue000-\ue003]*)\ue003")
_ANY = re.compile("[\ue000-\ue003]")


def command(line: str) -> str:
    """`line` (a command of the table and its arguments: `deploy iris v2 to prod`) as a
    front names it for its users."""
    return f"{_COMMAND[0]}{unmarked(line).strip()}{_COMMAND[1]}"


def person(name: str) -> str:
    """`name` (as a front recorded it for whom it names: requester, approver, holder) as the
    bot means it: a mention where the front has them."""
    return f"{_PERSON[0]}{unmarked(name)}{_PERSON[1]}" if name else ""


def unmarked(text: str) -> str:
    """`text` without any mark: what users typed is never taken for the bot's own."""
    return _ANY.sub("", text)


def render(
    text: str,
    *,
    command: Callable[[str], str],
    person: Callable[[str], str],
    other: Callable[[str], str],
) -> str:
    """`text` with each command and person rendered as a front does, and everything between
    passed through `other` (a front's escaping)."""
    out: list[str] = []
    pos = 0
    for m in _MARK.finditer(text):
        out.append(other(unmarked(text[pos : m.start()])))
        out.append(command(m[1]) if m[1] is not None else person(m[2]))
        pos = m.end()
    out.append(other(unmarked(text[pos:])))
    return "".join(out)


def plain(text: str) -> str:
    """`text` for logs, the audit trail's export and anything that is no front: commands as
    the grammar reads them (`/deploy iris v2`), people by the name recorded."""
    return render(text, command=lambda line: f"/{line}", person=str, other=str)
