"""The bot's HTTP routes: a path -> ASGI app table, and the routes every mode serves.

The HTTP front serves Slack's `/slack/events` through it; in Socket Mode a small server on
PORT serves the same table without it, so load balancers and Prometheus reach the bot
either way. A route is one line: `routes.add(path, app)` (`add_prefix` for a whole folder,
as the HTTP API's).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from core.metrics.page import CONTENT_TYPE, Exposition

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class Routes:
    """ASGI: each request to the app registered for its exact path; 404 for the rest."""

    def __init__(self) -> None:
        self._apps: dict[str, App] = {}
        self._prefixes: dict[str, App] = {}

    def add(self, path: str, app: App) -> Routes:
        if path in self._apps:
            raise ValueError(f"{path} is served already")
        self._apps[path] = app
        return self

    def add_prefix(self, prefix: str, app: App) -> Routes:
        """`app` serves every path under `prefix` (which ends with `/`)."""
        if not prefix.endswith("/") or prefix in self._prefixes:
            raise ValueError(f"{prefix} is served already, or is no folder")
        self._prefixes[prefix] = app
        return self

    @property
    def paths(self) -> list[str]:
        return sorted([*self._apps, *(f"{p}…" for p in self._prefixes)])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        path = scope.get("path", "")
        app = self._apps.get(path) or next(
            (a for p, a in self._prefixes.items() if path.startswith(p)), None
        )
        if app is None:
            await answer(send, 404, b"not found", TEXT)
            return
        await app(scope, receive, send)


async def answer(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or JSON})
    await send({"type": "http.response.body", "body": body})


def health(mode: str) -> App:
    """`/healthz`: the process answers."""
    body = json.dumps({"ok": True, "mode": mode}).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await answer(send, 200, body)

    return app


def readiness(unready: Callable[[], str | None]) -> App:
    """`/readyz`: 200 when commands can run, else 503 with the reason."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reason = unready()
        body = json.dumps({"ready": reason is None, "reason": reason}).encode()
        await answer(send, 200 if reason is None else 503, body)

    return app


def metrics(exposition: Exposition, *, token: str | None = None) -> App:
    """`/metrics` in Prometheus' text format; with `token`, only for `Authorization: Bearer
    <token>` (401 otherwise). Rendered in a thread: it reads the state database, and the
    event loop must stay free for Slack's acks."""
    expected = f"Bearer {token}".encode() if token else None
    headers = [(b"content-type", CONTENT_TYPE.encode())]
    challenge = [*TEXT, (b"www-authenticate", b'Bearer realm="metrics"')]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if expected is not None:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await answer(send, 401, b"a bearer token is required", challenge)
                return
        body = await asyncio.to_thread(exposition.render)
        await answer(send, 200, body, headers)

    return app
