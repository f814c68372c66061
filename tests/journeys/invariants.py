"""What must hold after every step of a journey, read from what the bot really did: every
request it answered, every Web API call and response_url post the Slack emulator received,
its state database, and what answers on its environments' ports.

Each check returns `Violation`s; a violation's `id` names the invariant, with a narrower
part in brackets where one bug shows through it in one recognisable way (the exception
class of an internal error, the kind of unregistered command), so a known bug is excused
for that way only and any other way the same invariant breaks still fails the test.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psutil
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

from bot.slack.manifest import slash_commands
from commands.registry import COMMANDS, DIRECT, NAMESPACE, RESERVED
from tests.journeys.harness import CANARY, TYPED_MARK, Bot, environments
from tests.slack_api.limits import MAX_HOME_BLOCKS, Refused, check_blocks, check_message

BOT = "chatops"  # the actor of the bot's own automatic operations
SLACK_REFUSALS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "invalid_arguments", "no_text"}
)
# texts that only an internal error produces
INTERNAL = (
    re.compile(r"Something unexpected went wrong(?:.*?\((?P<kind>\w+)\)\. Nothing more)?"),
    re.compile(r"an unexpected (?P<kind>[A-Z]\w+)"),
    re.compile(r"Traceback \(most recent call last\)"),
)
EXCEPTION = re.compile(r"^\w[\w.]*(Error|Exception)\b")
# a `/word` as a command is named in text: not a path (`/dev/x`), not inside a URL
COMMAND = re.compile(r"(?:^|(?<=[\s`(\"'*_>]))/([a-z][a-z0-9_-]{0,31})(?![\w/.-])")
# what a `/word` may name as a command: ours under any name, and Slack's own
NAMES = frozenset({*COMMANDS, *RESERVED, NAMESPACE})
# pings: everyone in a channel, someone the bot has no reason to mention, a channel link
FOREIGN_PINGS = (f"<@{CANARY}", "<!here", "<!channel", "<!everyone", "<#C0SECRET")
# a mention the bot means, shown as text instead of a mention
SHOWN_MENTION = re.compile(r"(?<!cc )&lt;@(U0[A-Z]+)&gt;")
# keys whose strings are never shown to people
HIDDEN = frozenset(
    {
        "type",
        "action_id",
        "block_id",
        "value",
        "url",
        "image_url",
        "style",
        "channel",
        "ts",
        "response_type",
    }
)


@dataclass(frozen=True)
class Violation:
    id: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.id}] {self.where}: {self.detail}"


@dataclass(frozen=True)
class Said:
    """One thing the bot said: where (for the report), its text and blocks as sent."""

    where: str
    text: str | None
    blocks: Any
    home: bool = False

    @property
    def shown(self) -> str:
        """Every string a person sees in it, one per line."""
        return "\n".join(_strings({"text": self.text, "blocks": self.blocks}))


def _strings(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, str):
        if key not in HIDDEN:
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass
class Reader:
    """Reads what the bot said since the last read, once each."""

    bot: Bot
    _calls: int = 0
    _responses: int = 0
    _sent: int = 0

    def new(self) -> list[Said]:
        api = self.bot.api
        said: list[Said] = []
        calls, responses, sent = api.calls, api.responses, self.bot.sent
        for call in calls[self._calls :]:
            where = f"{call.method} {call.args.get('channel') or call.args.get('user_id', '')}"
            if call.error in SLACK_REFUSALS:
                said.append(Said(f"{where} refused by Slack: {call.error}", None, None))
            if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
                blocks = _json(call.args.get("blocks"))
                said.append(Said(where, call.args.get("text"), blocks))
            elif call.method == "views.publish":
                view = _json(call.args.get("view"))
                said.append(Said(where, None, view, home=True))
        for post in responses[self._responses :]:
            said.append(Said(f"response_url {post.name}", post.body.get("text"), post.body))
        for request in sent[self._sent :]:
            where = f"answer to {request.kind} `{request.what}` by {request.user}"
            body = _json(request.body) if request.body else None
            if request.status >= 400:
                said.append(Said(f"{where} (HTTP {request.status})", request.body, None))
            elif isinstance(body, dict):
                said.append(Said(where, body.get("text"), body.get("blocks")))
        self._calls, self._responses, self._sent = len(calls), len(responses), len(sent)
        return said


# -- what the bot says ---------------------------------------------------------------------
def front_answers(said: Iterable[Said]) -> list[Violation]:
    """Every signed request is answered without a server error."""
    return [
        Violation("front-answers", s.where, (s.text or "")[:300])
        for s in said
        if "(HTTP 5" in s.where
    ]


def no_internal_error(said: Iterable[Said], log: str = "") -> list[Violation]:
    """No message, answer or view carries an internal error's text; no traceback is logged
    (`logged-traceback`: what users will meet next, or a side effect that failed unseen)."""
    found = []
    for s in said:
        for pattern in INTERNAL:
            for match in pattern.finditer(s.shown):
                kind = match.groupdict().get("kind") or "unknown"
                found.append(Violation(f"no-internal-error[{kind}]", s.where, _around(match)))
    for block in log.split("Traceback (most recent call last):")[1:]:
        last = next((ln for ln in block.splitlines() if EXCEPTION.match(ln)), "")
        kind = last.split(":")[0].rsplit(".", 1)[-1] or "traceback"
        found.append(Violation(f"logged-traceback[{kind}]", "the bot's log", last[:300]))
    return found


def valid_block_kit(said: Iterable[Said]) -> list[Violation]:
    """Every payload is Block Kit Slack shows, within Slack's limits."""
    found = []
    for s in said:
        if "refused by Slack" in s.where:
            found.append(Violation("valid-block-kit", s.where, "Slack refused it"))
            continue
        try:
            if s.home:
                view = s.blocks if isinstance(s.blocks, dict) else {}
                check_blocks(view.get("blocks") or [], limit=MAX_HOME_BLOCKS)
                View(**view).validate_json()
            elif s.text is not None or s.blocks is not None:
                blocks = s.blocks.get("blocks") if isinstance(s.blocks, dict) else s.blocks
                check_message(s.text, blocks)
        except (Refused, SlackObjectFormationError, TypeError) as exc:
            found.append(Violation("valid-block-kit", s.where, str(exc)[:300]))
    return found


def commands_registered(
    said: Iterable[Said], *, direct: bool, command: str = NAMESPACE
) -> list[Violation]:
    """Every `/word` named is a command the manifest of the same settings registers."""
    registered = {c.lstrip("/") for c in slash_commands(command=command, direct=direct)}
    found = []
    for s in said:
        for match in COMMAND.finditer(s.shown):
            name = match.group(1)
            if name in registered or name not in NAMES:
                continue  # a command, or no command at all (`GET /ping` in a log tail)
            kind = "reserved" if name in RESERVED else "direct-off" if name in DIRECT else "other"
            found.append(Violation(f"commands-registered[{kind}]", s.where, _around(match)))
    return found


def no_foreign_ping(said: Iterable[Said]) -> list[Violation]:
    """The bot pings only whom it means: what users typed (`cc <@…> <!here> …`) is shown
    escaped, never as a mention; and the mentions it means are mentions, not text."""
    found = []
    for s in said:
        text = s.shown
        for ping in (*FOREIGN_PINGS, f"{TYPED_MARK}<@"):
            at = text.find(ping)
            if at >= 0:
                found.append(Violation("no-foreign-ping", s.where, text[max(0, at - 80) : at + 60]))
        for match in SHOWN_MENTION.finditer(text):
            found.append(Violation("own-mentions-ping", s.where, _around(match)))
    return found


def _around(match: re.Match[str], width: int = 90) -> str:
    text = match.string
    return text[max(0, match.start() - width) : match.end() + width].replace("\n", " ")


# -- what the bot did by itself ------------------------------------------------------------
@dataclass
class Traffic:
    """Model traffic the journey sent: server errors per deployment that answered it, and
    the moments at which it cannot say which deployment did (a switch meanwhile)."""

    errors: dict[str, int] = field(default_factory=dict)
    unattributed: list[tuple[str, str, datetime]] = field(default_factory=list)


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=None)


def no_undo_of_admin(bot: Bot, traffic: Traffic) -> list[Violation]:
    """An automatic rollback judges only the version it watches, since its switch: it never
    follows an admin's operation on the endpoint inside the watch (one that changed
    something: a deploy of what already serves does not count), never returns to a version
    an admin just rolled away from or that failed its own watch, and never rolls back a
    version that answered none of the journey's failing requests (nor was down)."""
    ops = {op["id"]: op for op in bot.rows("operations")}
    watches = {w["id"]: w for w in bot.rows("watches")}
    # operations that succeeded changing nothing ("iris v2 is already live …")
    idle = {
        e["operation_id"]
        for e in bot.rows("events", "WHERE kind = 'succeeded' AND message LIKE '% already %'")
    }
    found = []
    for op in ops.values():
        plan = json.loads(op["plan"] or "{}")
        if op["requested_by"] != BOT or not plan.get("automatic"):
            continue
        w = watches.get(str(plan.get("watch")))
        if w is None:
            continue
        where = f"{op['id']} ({op['command']})"
        watched = ops.get(w["operation_id"])
        begun, asked = _time(w["started_at"]), _time(op["created_at"])
        if watched is not None and watched["kind"] == "rollback":
            found.append(
                Violation(
                    "no-undo-of-admin",
                    where,
                    f"returns {w['endpoint']} in {w['env']} to v{w['previous']}, which "
                    f"{watched['requested_by']} had just rolled back from ({watched['id']})",
                )
            )
        for other in ops.values():
            if (
                other["requested_by"] != BOT
                and (other["env"], other["endpoint"]) == (w["env"], w["endpoint"])
                and other["id"] != w["operation_id"]
                and other["state"] == "succeeded"
                and other["id"] not in idle
                and begun < _time(other["created_at"]) < asked
            ):
                found.append(
                    Violation(
                        "no-undo-of-admin",
                        where,
                        f"follows {other['requested_by']}'s {other['kind']} ({other['id']}) "
                        f"inside the watch of {w['operation_id']}",
                    )
                )
        failed_before = [
            x
            for x in watches.values()
            if (x["env"], x["endpoint"], x["version"]) == (w["env"], w["endpoint"], w["previous"])
            and x["state"] in ("rolled_back", "failed", "held")
            and x["finished_at"]
            and _time(x["finished_at"]) < asked
        ]
        if failed_before:
            found.append(
                Violation(
                    "no-undo-of-admin",
                    where,
                    f"returns to v{w['previous']}, which failed its own watch "
                    f"({failed_before[0]['id']}: {failed_before[0]['detail']})",
                )
            )
        down = "was down" in (w["detail"] or "")
        unsure = any(
            (env, name) == (w["env"], w["endpoint"]) and at >= begun
            for env, name, at in traffic.unattributed
        )
        if not down and not unsure and not traffic.errors.get(w["deployment"]):
            found.append(
                Violation(
                    "no-undo-of-admin",
                    where,
                    f"rolled back v{w['version']} ({w['deployment']}), which answered none of "
                    f"the failing requests: {w['detail']}",
                )
            )
    return found


# -- quiescent state -----------------------------------------------------------------------
def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ours(bot: Bot, port: int) -> bool:
    """Whether what listens on `port` is the bot's (an endpoint host of its state directory),
    not a server of another test run that landed in the range."""
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            try:
                state = psutil.Process(conn.pid).environ().get("CHATOPS_STATE_DIR")
            except (psutil.Error, TypeError):
                return True  # cannot tell: counted as the bot's
            return state == str(bot.state_dir)
    return False


def db_matches_ports(bot: Bot) -> list[Violation]:
    """The endpoints the database lists answer on their ports, and nothing else listens in
    the environments' port ranges."""
    found = []
    rows = bot.rows("endpoints")
    claimed: set[int] = set()
    for row in rows:
        port = int(row["url"].split(":")[2].split("/")[0])
        claimed.add(port)
        try:
            ping = httpx.get(row["url"].replace("/invocations", "/ping"), timeout=5)
            up = ping.status_code == 200
        except httpx.HTTPError:
            up = False
        if not up:
            found.append(
                Violation(
                    "db-matches-ports", f"{row['env']}/{row['name']}", f"{port} answers no ping"
                )
            )
    for env in environments(bot.port, watch_s=bot.watch_s):
        low, high = env["port_range"]
        for port in range(low, high + 1):
            if port not in claimed and _listening(port) and _ours(bot, port):
                found.append(
                    Violation(
                        "db-matches-ports",
                        str(env["name"]),
                        f"port {port} serves, though no endpoint in the database is on it",
                    )
                )
    return found


def no_orphan_lock(bot: Bot) -> list[Violation]:
    """Every lock that is not a freeze is held by an operation still queued or running."""
    live = {
        op["lock_token"]
        for op in bot.rows("operations", "WHERE state IN ('queued', 'running')")
        if op["lock_token"]
    }
    return [
        Violation(
            "no-orphan-lock",
            f"{lock['env']}/{lock['endpoint']}",
            f"held by {lock['holder']} since {lock['since']} ({lock['reason'][:120]}) with no "
            "operation",
        )
        for lock in bot.rows("locks")
        if not lock["sticky"] and lock["token"] not in live
    ]
