"""Text made safe and short enough for Slack.

Slack reads `<…>` in message text as markup: `<!channel>` pings a channel, `<@U…>` a person,
`<!subteam^…>` a group, `<https://x|label>` disguises a link. Anything a user typed, a name
from the registry or a remote error is therefore escaped (`&`, `<`, `>`) before it is shown;
only mentions the bot itself means (the people a message is about) are put back. Characters
that reorder or hide text (bidirectional overrides, zero-width) are removed, so a name shows
as what it is.

Limits are Slack's: a text object holds at most 3,000 characters, a header 150, a button 75,
a field 2,000, a message's fallback text 4,000; a message has at most 50 blocks (a Home tab
100). Text that is too long is cut at a line boundary and says how much was left out.
"""

from __future__ import annotations

import re

from commands.naming import DEFAULT, Naming
from core import marks

SECTION = 3000
FIELD = 2000
HEADER = 150
BUTTON = 75
CONFIRM = 300  # the text of a button's confirm dialog
FALLBACK = 4000
BLOCKS = 50
HOME_BLOCKS = 100
CUT = " … ({n} more characters)"
CUT_BEFORE = "({n} characters before) …"
TAIL_CUT = "… ({n} earlier lines)"

# bidirectional embeddings, overrides and isolates; zero-width spaces, joiners and marks
_HIDDEN = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u180e]")
_BROADCAST = re.compile(r"<(?=!)")
_USER = re.compile(r"[UW][A-Z0-9]+")
_RECORDED = re.compile(r"<@([UW][A-Z0-9]+)>")


def clean(text: str) -> str:
    """`text` without characters that reorder or hide what is shown."""
    return _HIDDEN.sub("", text)


def escape(text: str) -> str:
    """`text` shown literally in mrkdwn: `<model>` stays `<model>`, `<!channel>` and `<@U…>`
    ping nobody."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user: str) -> str:
    """A mention of `user` (an id Slack gave us, never user text)."""
    return f"<@{clean(user)}>" if _USER.fullmatch(user) else escape(user)


def person(name: str) -> str:
    """A name the front recorded for someone: a mention when it is one (`<@U…>`, written by
    the bot from Slack's user id), else shown literally."""
    found = _RECORDED.fullmatch(name)
    return mention(found[1]) if found else escape(name)


def shown(text: str, naming: Naming) -> str:
    """Core or command text in mrkdwn: each command it names as `naming` registers it, each
    person the bot means mentioned, and everything else (names, reasons, what users typed,
    their `<@…>` too) escaped."""
    return marks.render(
        text, command=lambda line: escape(naming.typed(line)), person=person, other=escape
    )


def named(text: str, naming: Naming) -> str:
    """mrkdwn (escaped already) whose commands and people are still marks, rendered: each
    command as `naming` registers it, each person the bot means mentioned."""
    return marks.render(
        text, command=lambda line: escape(naming.typed(line)), person=person, other=str
    )


def plain_text(text: str, naming: Naming) -> str:
    """Core text for a `plain_text` object (a header, a button): commands as `naming`
    registers them, people by name, nothing escaped (Slack shows it as it is)."""
    return marks.render(text, command=naming.typed, person=str, other=str)


def defuse(text: str) -> str:
    """The last edge's net: the bot never means to ping a channel or a group, so no `<!…>`
    (`<!channel>`, `<!here>`, `<!subteam^…>`) reaches Slack as markup, whatever was missed;
    and no mark left unrendered reaches it as such."""
    return _BROADCAST.sub("&lt;", named(text, DEFAULT))


def fit(text: str, limit: int, *, more: str = "… and {n} more lines") -> str:
    """`text` cut to at most `limit` characters at a line boundary, saying how many lines were
    left out; a single over-long line is cut at a word's end, saying how many characters."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    for keep in range(len(lines) - 1, 0, -1):
        note = more.format(n=len(lines) - keep)
        head = "\n".join(lines[:keep])
        if len(head) + 1 + len(note) <= limit and not _open_code(head):
            return f"{head}\n{note}"
    return _cut(text, limit)


def fit_line(text: str, limit: int) -> str:
    """One line of at most `limit` characters (a header, a button, a field), cut at a word's
    end saying how many characters were left out."""
    return text if len(text) <= limit else _cut(text, limit)


def tail(text: str, limit: int) -> str:
    """The last lines of a log that fit in `limit` characters, cut at line boundaries, first
    saying how many earlier lines were left out."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    room = limit - len(TAIL_CUT.format(n=f"{len(lines):,}")) - 1
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > room:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # one line longer than the limit: its end is what tells most
        keep = limit - len(CUT_BEFORE.format(n=f"{len(text):,}"))
        return CUT_BEFORE.format(n=f"{len(text) - keep:,}") + text[-keep:]
    return "\n".join([TAIL_CUT.format(n=f"{len(lines) - len(kept):,}"), *reversed(kept)])


def _cut(text: str, limit: int) -> str:
    """`text` cut at a word's end to fit `limit` with a note of how many characters were left
    out: a cut never ends mid-word, mid-number or inside an escape (`&lt;`)."""
    note = CUT.format(n=f"{len(text):,}")  # the longest the note can be
    cut = text[: max(limit - len(note), 0)]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= len(cut) // 2:
        cut = cut[:space]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    cut = cut.rstrip(" ,;·")
    return cut + CUT.format(n=f"{len(text) - len(cut):,}")


def _open_code(text: str) -> bool:
    return text.count("```") % 2 == 1
