"""A Slack Web API emulator: a real HTTP server that ``slack_sdk.WebClient(base_url=api_url)``
talks to, answering as Slack does, with switches for the failures Slack can answer with.

    with start_emulator() as slack:
        slack.add_channel("C0001", name="deploys")
        client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        client.chat_postMessage(channel="C0001", text="hi")
        assert [m.text for m in slack.messages("C0001")] == ["hi"]

The world (``workspace.py``) and the switches change only under one lock, so tests may set
them at any time, from any thread, while the app under test is calling.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from tests.slack_api.limits import Refused, check_message
from tests.slack_api.records import Call, ResponsePost, _ResponseTarget
from tests.slack_api.workspace import (
    Answer,
    Ephemeral,
    Message,
    PublishedView,
    SlackError,
    Workspace,
)

__all__ = [
    "Call",
    "Ephemeral",
    "Message",
    "PublishedView",
    "ResponsePost",
    "SlackEmulator",
    "start_emulator",
]


# what the app's manifest asks for, as an installed app is granted them
GRANTED_SCOPES = (
    "commands",
    "chat:write",
    "users:read",
    "usergroups:read",
    "im:write",
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
)


# methods Slack documents as not accepting JSON: the arguments of a JSON body go unread
FORM_ONLY = frozenset({"conversations.history", "conversations.replies"})


class SlackEmulator:
    """One emulated workspace served over HTTP on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        app_token: str = "xapp-1-A0001-1-emulated",
    ) -> None:
        self.bot_token = bot_token
        # Socket Mode: `apps.connections.open` (app-level token only) answers this URL
        self.app_token = app_token
        self.socket_url: str | None = None
        # granted to the token; Slack lists them in the x-oauth-scopes header of each answer
        self.scopes: list[str] = list(GRANTED_SCOPES)
        self.usergroups_plan_upgrade_required = False
        self._lock = threading.RLock()
        self._world = Workspace(team_id=team_id, bot_user_id=bot_user_id, clock=time.monotonic)
        self._calls: list[Call] = []
        self._responses: list[ResponsePost] = []
        self._targets: dict[str, _ResponseTarget] = {}
        self._target_ids = itertools.count(1)
        self._rate_limits: dict[str, list[int]] = {}
        self._failures: dict[str, list[str]] = {}
        self._held: dict[str, threading.Event] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.emulator = self
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="slack-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(
        self, name: str = "", *, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        """A new URL that records what is posted to it. ``channel`` is where ``in_channel``
        answers appear; ``message_ts`` is the message ``replace_original``/``delete_original``
        act on (the message an interactive payload came from)."""
        with self._lock:
            key = f"R{next(self._target_ids):04d}"
            url = f"{self.url}/response/{key}/{quote(name or 'hook', safe='')}"
            self._targets[key] = _ResponseTarget(url, name, channel, message_ts)
            return url

    # -- what happened -------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    @property
    def responses(self) -> list[ResponsePost]:
        with self._lock:
            return list(self._responses)

    @property
    def ephemerals(self) -> list[Ephemeral]:
        with self._lock:
            return list(self._world.ephemerals)

    @property
    def views(self) -> list[PublishedView]:
        with self._lock:
            return list(self._world.views)

    def messages(self, channel: str) -> list[Message]:
        """Messages of ``channel`` (id, name, or a user id for their IM) now, replies included,
        oldest first. An unknown channel raises ``KeyError``."""
        with self._lock:
            return self._world.messages(channel)

    def wait_for(self, predicate: Callable[[SlackEmulator], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {timeout} s; so far:\n{self.summary()}")
            time.sleep(0.01)

    def summary(self) -> str:
        """One line per call and response_url post, for failure messages."""
        with self._lock:
            lines = [
                f"  {c.method} -> {c.status} {c.error or 'ok'} {_short(c.args)}"
                for c in self._calls
            ]
            lines += [
                f"  response_url {r.name or r.url} <- {_short(r.body)}" for r in self._responses
            ]
        return "\n".join(lines) or "  (no calls)"

    # -- world and switches --------------------------------------------------------------------

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str,
        member: bool = True,
        is_im: bool = False,
        private: bool = False,
    ) -> None:
        with self._lock:
            self._world.add_channel(
                channel_id, name=name, member=member, is_im=is_im, private=private
            )

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        groups: list[str] | tuple[str, ...] = (),
        real_name: str | None = None,
        tz: str = "",
    ) -> None:
        """A person; `tz` (an IANA zone) is the time zone they set, which users.info gives."""
        with self._lock:
            self._world.add_user(
                user_id, name=name, real_name=real_name or name, groups=list(groups), tz=tz
            )

    def add_usergroup(self, group_id: str, *, handle: str, users: list[str]) -> None:
        with self._lock:
            self._world.add_usergroup(group_id, handle=handle, users=list(users))

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer 429 with ``Retry-After: retry_after``."""
        with self._lock:
            self._rate_limits.setdefault(method, []).extend([retry_after] * times)

    def fail(self, method: str, error: str, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer 200 ``{"ok": false, "error": error}``."""
        with self._lock:
            self._failures.setdefault(method, []).extend([error] * times)

    def hold(self, method: str) -> threading.Event:
        """Calls of ``method`` wait (unanswered, as behind a slow network) until the event
        returned is set; other calls are answered meanwhile."""
        with self._lock:
            return self._held.setdefault(method, threading.Event())

    # -- serving -------------------------------------------------------------------------------

    def _call(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, str], Answer]:
        """Status, extra headers and JSON answer of one Web API call, recorded as it is made."""
        with self._lock:
            held = self._held.get(method)
        if held is not None:
            held.wait(60)
        with self._lock:
            status, headers = 200, {}
            try:
                if method == "apps.connections.open":
                    answer = self._open_connection(token)
                elif method not in self._world.methods:
                    raise SlackError("unknown_method")
                else:
                    answer = self._bot_call(method, args, token, headers)
            except SlackError as refusal:
                if refusal.code == "ratelimited":
                    status = 429
                answer = {"ok": False, "error": refusal.code, **refusal.detail}
            error = None if answer["ok"] else str(answer["error"])
            self._calls.append(Call(method, args, time.monotonic(), token, status, error))
            return status, headers, answer

    def _bot_call(
        self, method: str, args: dict[str, Any], token: str | None, headers: dict[str, str]
    ) -> Answer:
        if token is None:
            raise SlackError("not_authed")
        if token != self.bot_token:
            raise SlackError("invalid_auth")
        headers["x-oauth-scopes"] = ",".join(self.scopes)
        if self._rate_limits.get(method):
            headers["Retry-After"] = str(self._rate_limits[method].pop(0))
            raise SlackError("ratelimited")
        if self._failures.get(method):
            raise SlackError(self._failures[method].pop(0))
        if method.startswith("usergroups.") and self.usergroups_plan_upgrade_required:
            raise SlackError("plan_upgrade_required")
        needed = self._world.scope_needed(method, args)
        if needed and needed not in self.scopes:
            raise SlackError("missing_scope", needed=needed, provided=",".join(self.scopes))
        return {"ok": True, **self._world.methods[method](args)}

    def _open_connection(self, token: str | None) -> Answer:
        """A Socket Mode URL, for the app-level token only, as Slack answers it."""
        if token is None:
            raise SlackError("not_authed")
        if token.startswith(("xoxb-", "xoxp-")):
            raise SlackError("not_allowed_token_type")
        if token != self.app_token:
            raise SlackError("invalid_auth")
        if self.socket_url is None:
            raise SlackError("internal_error")
        return {"ok": True, "url": self.socket_url}

    def _respond(self, key: str, raw: bytes) -> tuple[int, str]:
        """Status and plain-text answer of a POST to a response_url, as Slack's hooks answer."""
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                return 404, "no_service"
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return 400, "invalid_payload"
            if not isinstance(body, dict):
                return 400, "invalid_payload"
            self._responses.append(ResponsePost(target.url, body, time.monotonic(), target.name))
            if not body.get("delete_original") and not (body.get("text") or body.get("blocks")):
                return 400, "no_text"
            try:
                check_message(body.get("text"), body.get("blocks"))
            except Refused as refusal:
                return 400, refusal.code
            try:
                self._apply(target, body)
            except SlackError as refusal:
                return 400, refusal.code
            return 200, "ok"

    def _apply(self, target: _ResponseTarget, body: dict[str, Any]) -> None:
        channel = self._world.find(target.channel) if target.channel else None
        if channel is None:
            return
        if target.message_ts and body.get("delete_original"):
            self._world.delete(channel, target.message_ts)
        elif target.message_ts and body.get("replace_original"):
            self._world.edit(channel, target.message_ts, body)
        elif body.get("response_type") == "in_channel":
            self._world.post(channel, {**body, "reply_broadcast": False})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: SlackEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; calls are recorded on the emulator instead

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        emulator = self.server.emulator
        if parts.path.startswith("/api/"):
            method = parts.path.removeprefix("/api/")
            args = dict(parse_qsl(parts.query, keep_blank_values=True))
            form = self._body(raw, args, json_read=method not in FORM_ONLY)
            token = self._token(args, from_form=form)
            status, headers, answer = emulator._call(method, args, token)
            self._send(status, json.dumps(answer), "application/json; charset=utf-8", headers)
        elif parts.path.startswith("/response/") and self.command == "POST":
            status, text = emulator._respond(parts.path.split("/")[2], raw)
            self._send(status, text, "text/plain; charset=utf-8")
        else:
            self._send(404, "not found", "text/plain; charset=utf-8")

    def _body(self, raw: bytes, args: dict[str, Any], *, json_read: bool = True) -> bool:
        """Merge the body's arguments into ``args`` (a JSON body's only if ``json_read``);
        whether it was a form (tokens allowed)."""
        kind = self.headers.get_content_type()
        if kind == "application/json":
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            if isinstance(body, dict) and json_read:
                args.update(body)
            return False
        if kind == "multipart/form-data":
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            message = BytesParser(policy=policy.HTTP).parsebytes(head + raw)
            for part in message.iter_parts():
                field = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(field, str) and isinstance(payload, bytes):
                    args[field] = payload.decode("utf-8", "replace")
            return True
        args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return True

    def _token(self, args: dict[str, Any], *, from_form: bool) -> str | None:
        # Slack reads a token from the header, the query or a form field, never from JSON.
        auth = self.headers.get("Authorization", "")
        in_args = args.pop("token", None)
        if auth.startswith("Bearer "):
            return auth.removeprefix("Bearer ").strip()
        return str(in_args) if in_args and from_form else None

    def _send(
        self, status: int, text: str, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _short(data: dict[str, Any], limit: int = 160) -> str:
    text = json.dumps(data, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def start_emulator(
    *, bot_token: str = "xoxb-test-token", team_id: str = "T0001", bot_user_id: str = "UBOT"
) -> SlackEmulator:
    """A started emulator; call ``stop()`` (or use it as a context manager) when done."""
    return SlackEmulator(bot_token=bot_token, team_id=team_id, bot_user_id=bot_user_id).start()
