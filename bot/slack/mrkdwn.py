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
from collections.abc import Iterable

SECTION = 3000
FIELD = 2000
HEADER = 150
BUTTON = 75
FALLBACK = 4000
BLOCKS = 50
HOME_BLOCKS = 100

# bidirectional embeddings, overrides and isolates; zero-width spaces, joiners and marks
_HIDDEN = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u180e]")
_BROADCAST = re.compile(r"<(?=!)")


def clean(text: str) -> str:
    """`text` without characters that reorder or hide what is shown."""
    return _HIDDEN.sub("", text)


def escape(text: str, *, mentions: Iterable[str] = ()) -> str:
    """`text` shown literally in mrkdwn: `<model>` stays `<model>`, `<!channel>` pings nobody.
    `mentions`: user ids whose `<@id>` the bot wrote on purpose, kept as mentions."""
    shown = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for user in mentions:
        if user:
            shown = shown.replace(f"&lt;@{user}&gt;", f"<@{user}>")
    return shown


def mention(user: str) -> str:
    """A mention of `user` (an id Slack gave us, never user text)."""
    return f"<@{clean(user)}>" if re.fullmatch(r"[UW][A-Z0-9]+", user) else escape(user)


def defuse(text: str) -> str:
    """The last edge's net: the bot never means to ping a channel or a group, so no `<!…>`
    (`<!channel>`, `<!here>`, `<!subteam^…>`) reaches Slack as markup, whatever was missed."""
    return _BROADCAST.sub("&lt;", text)


def fit(text: str, limit: int, *, more: str = "… and {n} more lines") -> str:
    """`text` cut to at most `limit` characters at a line boundary, saying how many lines were
    left out; a single over-long line is cut at the limit with `…`."""
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
    """One line of at most `limit` characters (a header, a button, a field)."""
    return text if len(text) <= limit else _cut(text, limit)


def tail(text: str, limit: int) -> str:
    """The last lines of a log that fit in `limit` characters, cut at line boundaries."""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    for line in reversed(text.split("\n")):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # one line longer than the limit: its end is what tells most
        return "…" + text[-(limit - 1) :]
    return "\n".join(reversed(kept))


def _cut(text: str, limit: int) -> str:
    cut = text[: limit - 1]
    # never end inside an escape (`&lt;`), which would show half of it
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _open_code(text: str) -> bool:
    return text.count("```") % 2 == 1
