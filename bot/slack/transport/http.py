"""The HTTP front's door: only requests Slack signed, for a team the bot serves, reach Bolt.

Everything is checked in the cheapest order: the path and method, the declared size (over
about 1 MB: 413, the body never read), the signature headers' form and the timestamp's age
(401), then the body read up to the cap (413 past it) and its signature, checked once, by
slack_sdk's `SignatureVerifier` (401). Only then is the body parsed, once (`payloads.parse`),
and the parsed payload is what Bolt dispatches: 400 when it is not a payload Slack sends or
lacks what a listener relies on, 403 for a team not served. A refusal is logged as one short
line, never with the body, so neither the log nor the memory grows with what an unsigned
sender posts.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.asgi.http_response import AsgiHttpResponse
from slack_sdk.signature import Clock, SignatureVerifier

from bot.slack.transport import payloads

log = logging.getLogger("chatops.slack")

MAX_BODY = 1 << 20  # Slack's own payloads are far smaller (a slash command: under 4 KB)
MAX_AGE_S = 300  # Slack's advice: older requests may be replays
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_SIGNATURE = re.compile(rb"v0=[0-9a-f]{64}")

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SignedOnly:
    """ASGI app serving `app` (Bolt, which checks no signature itself) at `path`: see the
    module docstring."""

    def __init__(
        self,
        app: App,
        *,
        path: str,
        secret: str,
        teams: Collection[str],
        now: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a signing secret is needed to check requests")
        self.app = app
        self.path = path
        self.verifier = SignatureVerifier(secret, clock=_Clock(now))
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
        if not self.verifier.is_valid(body, stamp.decode(), signature.decode()):
            return await self._refuse(send, 401, "bad signature")
        payload = payloads.parse(body, headers.get(b"content-type", b""))
        if payload is None:
            return await self._refuse(send, 400, "signed, but not a payload Slack sends")
        if (why := payloads.problem(payload)) is not None:
            return await self._refuse(send, 400, f"signed, but {why}")
        if payloads.kind(payload) not in payloads.UNTEAMED and not (
            payloads.teams(payload) & self.teams
        ):
            return await self._refuse(send, 403, "from a team this bot does not serve")
        if payloads.kind(payload) == "ssl_check":
            return await _answer(send, 200, "")
        request = BoltRequest(
            # already parsed: Bolt takes a dict as it is (its `mode` then only means that it
            # checks no signature, which is done above, once)
            body=payload,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()},
            mode="socket_mode",
        )
        try:
            response = self.app.dispatch(request)
        except Exception as exc:  # Bolt's answer never becomes a traceback for the sender
            log.error("a signed request could not be handled: %s", type(exc).__name__)
            return await _answer(send, 400, "could not handle the request")
        if response.status == 404:  # no listener takes it: acked all the same, as Slack
            return await _answer(send, 200, "")  # would otherwise retry it or show an error
        answer = AsgiHttpResponse(
            status=response.status, headers=response.headers, body=response.body
        )
        await send(answer.get_response_start())
        await send(answer.get_response_body())

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


async def _answer(send: Any, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
