"""The HTTP front's door: only requests Slack signed, for a team the bot serves, reach Bolt.

Everything is checked in the cheapest order, before anything is parsed: the path and method,
the declared size (over about 1 MB: 413, the body never read), the signature headers' form
and the timestamp's age (401), then the body read up to the cap (413 past it) and its HMAC
(401); only a signed body is parsed, for its team id (400 when it cannot be, 403 for a team not
served). A refusal is logged as one short line, never with the body, so neither the log nor
the memory grows with what an unsigned sender posts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger("chatops.slack")

MAX_BODY = 1 << 20  # Slack's own payloads are far smaller (a slash command: under 4 KB)
MAX_AGE_S = 300  # Slack's advice: older requests may be replays
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_SIGNATURE = re.compile(rb"v0=[0-9a-f]{64}")
_UNTEAMED = ("url_verification", "ssl_check")

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class SignedOnly:
    """ASGI app in front of `inner` (Bolt) for `path`: see the module docstring."""

    def __init__(
        self,
        inner: ASGI,
        *,
        path: str,
        secret: str,
        teams: Collection[str],
        now: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a signing secret is needed to check requests")
        self.inner = inner
        self.path = path
        self.secret = secret.encode()
        self.teams = frozenset(teams)
        self.now = now

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path") != self.path:
            return await _answer(send, 404, "not found")
        if scope.get("method") != "POST":
            return await _answer(send, 405, "method not allowed")
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return await self._refuse(send, 413, "body too large or its size unreadable")
        stamp = headers.get(b"x-slack-request-timestamp", b"")
        signature = headers.get(b"x-slack-signature", b"")
        if not _TIMESTAMP.fullmatch(stamp) or not _SIGNATURE.fullmatch(signature):
            return await self._refuse(send, 401, "not signed")
        if abs(self.now() - int(stamp)) > MAX_AGE_S:
            return await self._refuse(send, 401, "signed too long ago")
        body = await read_body(receive, MAX_BODY)
        if body is None:
            return await self._refuse(send, 413, "body too large")
        mac = hmac.new(self.secret, b"v0:" + stamp + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(b"v0=" + mac.encode(), signature):
            return await self._refuse(send, 401, "bad signature")
        kind, teams = _teams(body, headers.get(b"content-type", b""))
        if kind is None:
            return await self._refuse(send, 400, "signed, but not a payload Slack sends")
        if kind not in _UNTEAMED and not (teams & self.teams):
            return await self._refuse(send, 403, "from a team this bot does not serve")
        try:
            await self.inner(scope, _replay(body), send)
        except Exception as exc:  # Bolt's answer never becomes a traceback for the sender
            log.error("a signed request could not be handled: %s", type(exc).__name__)
            await _answer(send, 400, "could not handle the request")

    async def _refuse(self, send: Any, status: int, why: str) -> None:
        log.warning("refused a request to %s: %s (HTTP %d)", self.path, why, status)
        await _answer(send, status, why)


async def read_body(receive: Any, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than `limit` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _teams(body: bytes, content_type: bytes) -> tuple[str | None, set[str]]:
    """What a signed payload is and the team (and enterprise) ids it comes from; kind None
    when it is neither Slack's JSON nor its form."""
    try:
        if content_type.split(b";")[0].strip() == b"application/json":
            data = json.loads(body)
        else:
            form = {k: v[0] for k, v in parse_qs(body.decode(), strict_parsing=False).items()}
            if "ssl_check" in form:
                return "ssl_check", set()
            data = json.loads(form["payload"]) if "payload" in form else form
    except (ValueError, UnicodeDecodeError):
        return None, set()
    if not isinstance(data, dict):
        return None, set()
    ids = {data.get("team_id"), data.get("enterprise_id")}
    for key in ("team", "enterprise"):
        if isinstance(data.get(key), dict):
            ids.add(data[key].get("id"))
    if isinstance(data.get("user"), dict):
        ids.add(data["user"].get("team_id"))
    return str(data.get("type") or "form"), {i for i in ids if isinstance(i, str) and i}


async def _answer(send: Any, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
