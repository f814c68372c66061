"""The HTTP API, `/api/v1/<env>/deployments[/<name>]`: what MLflow's `mlflow deployments -t
chatops:/<env>` (the `chatops` deployments plugin) calls, as the owner of a personal token.

A front like Slack's: it checks who calls (`Authorization: Bearer chatops_…`: a token that is
missing, forged, expired or revoked is 401, with no detail; a database that cannot say is
503), keeps each token to its rate (429 with `Retry-After`), translates the call into the
command it stands for (`deploy iris v3 to prod`, `status in prod`, `stop iris in prod`) from
names it checked, records it as a job and waits for the answer a worker runs it to: the
same admission, refusals and texts as a typed command. It decides nothing.

    GET    /api/v1/<env>/deployments          list      `status in <env>`
    GET    /api/v1/<env>/deployments/<name>   get       `status <name> in <env>`
    POST   /api/v1/<env>/deployments          create    `deploy <model> v<N> to <env>`
    PUT    /api/v1/<env>/deployments/<name>   update    the same, for an endpoint named so
    DELETE /api/v1/<env>/deployments/<name>   delete    `stop <name> in <env>`

A create or update carries `{"name", "model_uri": "models:/<model>/<N>" | "models:/<model>@
<alias>", "config": {"wait": "true"}}`; the endpoint is named after its model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from bot.slack.intake.jobs import FRONT, ApiCall
from bot.slack.transport.http import read_body
from commands.base import NAME
from commands.naming import Naming
from core.admission.waiting import settled_in
from core.errors import StoreError
from core.store.jobs import JobQueue, JobState
from core.store.models import ApprovalRow
from core.tokens import Holder, Tokens

log = logging.getLogger("chatops.api")

PREFIX = "/api/v1/"
MAX_BODY = 64 * 1024
_PATH = re.compile(r"/api/v1/([^/]+)/deployments(?:/([^/]+))?/?")
_MODEL_URI = re.compile(r"models:/([^/@\s]+)(?:/([0-9]{1,9})|@([A-Za-z0-9_-]{1,64}))")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}
HEADERS = [(b"content-type", b"application/json")]
UNAUTHORIZED = [*HEADERS, (b"www-authenticate", b'Bearer realm="chatops"')]


class Nudged(Protocol):
    def nudge(self) -> None: ...


class Problem(Exception):
    """A call the API cannot translate: its HTTP status and what was wrong."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class RateLimit:
    """Each token's calls, as a bucket of `per_minute` refilled evenly: a call over it waits
    `retry_after` seconds. Shared by every connection of the front, so a token used from
    two places at once shares one bucket."""

    def __init__(self, per_minute: int, *, now: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.now = now
        self._buckets: dict[str, tuple[float, float]] = {}
        self._guard = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 when `key` may call now (the call is counted), else the seconds to wait."""
        rate = self.per_minute / 60.0
        with self._guard:
            now = self.now()
            tokens, at = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / rate))


class Api:
    """ASGI app for everything under `/api/v1/` (see the module docstring)."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        dispatcher: Nudged,
        tokens: Tokens,
        naming: Naming,
        limit: RateLimit,
        channel: str = "",
        wait_s: float = 3600.0,
    ) -> None:
        self.queue = queue
        self.dispatcher = dispatcher
        self.tokens = tokens
        self.naming = naming
        self.limit = limit
        self.settled = settled_in(queue.db)
        self.channel = channel
        self.wait_s = wait_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        try:
            holder = await asyncio.to_thread(self._holder, headers.get(b"authorization", b""))
        except StoreError as exc:  # nobody is let in, nor told their token is bad
            log.warning("could not check an API token: %s", exc.message)
            text = "The bot cannot check tokens now (its state database failed); try again."
            await _send(send, 503, {"error": text}, [*HEADERS, (b"retry-after", b"5")])
            return
        if holder is None:
            await _send(send, 401, {"error": "unauthorized"}, UNAUTHORIZED)
            return
        wait = self.limit.retry_after(holder.token_id)
        if wait:
            retry = [*HEADERS, (b"retry-after", str(wait).encode())]
            text = f"Too many calls with this token: try again in {wait} s."
            await _send(send, 429, {"error": text}, retry)
            return
        try:
            body = await self._body(scope, receive, headers)
            call = self._translate(scope, body, holder)
        except Problem as problem:
            await _send(send, problem.status, {"error": problem.text})
            return
        kind = "query" if call.call in ("list", "get") else "command"
        try:
            job_id = await asyncio.to_thread(
                self.queue.record, key=f"api:{uuid.uuid4().hex}", front=FRONT, job=call, kind=kind
            )
        except StoreError as exc:
            await _send(send, 503, {"error": f"the bot cannot take calls now: {exc.message}"})
            return
        self.dispatcher.nudge()
        status, answer = await self._answer(str(job_id), call)
        await _send(send, status, answer)

    def _holder(self, authorization: bytes) -> Holder | None:
        scheme, _, secret = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.tokens.holder(secret.strip())

    async def _body(
        self, scope: dict[str, Any], receive: Any, headers: dict[bytes, bytes]
    ) -> dict[str, Any]:
        if scope.get("method") not in ("POST", "PUT"):
            return {}
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise Problem(413, f"The body is over {MAX_BODY // 1024} KiB.")
        raw = await read_body(receive, MAX_BODY)
        if raw is None:
            raise Problem(413, f"The body is over {MAX_BODY // 1024} KiB.")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
            raise Problem(400, "The body is not JSON.") from None
        if not isinstance(body, dict):
            raise Problem(400, "The body is not a JSON object.")
        return body

    def _translate(self, scope: dict[str, Any], body: dict[str, Any], holder: Holder) -> ApiCall:
        """The command a call stands for, built only of names checked here."""
        method, path = scope.get("method", ""), scope.get("path", "")
        found = _PATH.fullmatch(path)
        if found is None:
            raise Problem(404, f"No such API path: {path[:80]}.")
        env, name = found.group(1), found.group(2) or ""
        _name(env, "environment name")
        if name:
            _name(name, "deployment name")
        query = _query(scope)
        common: dict[str, Any] = {
            "user_id": holder.user_id,
            "token_id": holder.token_id,
            "env": env,
            "name": name,
            "channel_id": self.channel,
            "namespace": self.naming.namespace,
            "direct": self.naming.direct,
        }
        if method == "GET":
            if name:
                return ApiCall(call="get", line=f"status {name} in {env}", **common)
            return ApiCall(call="list", line=f"status in {env}", **common)
        if method == "DELETE" and name:
            return ApiCall(call="delete", line=f"stop {name} in {env}", **common)
        if method in ("POST", "PUT") and (method == "PUT") == bool(name):
            model, version = _model(body.get("model_uri"))
            given = str(body.get("name") or name or model)
            _name(given, "deployment name")
            # the path's name too: a body's name never redirects an update to another endpoint
            wrong = next((n for n in (given, name) if n and n != model), None)
            if wrong is not None:
                raise Problem(
                    400,
                    f"The bot names each endpoint after its model: name it {model} "
                    f"(`--name {model}`), not {wrong}.",
                )
            wait = _wait({**query, **_config(body.get("config"))})
            common["name"] = model
            line = f"deploy {model} {version} to {env}"
            return ApiCall(
                call="create" if method == "POST" else "update", line=line, wait=wait, **common
            )
        raise Problem(405, f"{method} is not a call of {path[:80]}.")

    async def _answer(self, job_id: str, call: ApiCall) -> tuple[int, dict[str, Any]]:
        """What the job answered, once a worker ran it; 504 when it took longer than
        `wait_s` (what it started carries on, in its thread)."""
        deadline = time.monotonic() + self.wait_s
        pause = 0.02
        while time.monotonic() < deadline:
            row = await asyncio.to_thread(self.queue.get, job_id)
            if row is not None and row.state in (JobState.DONE, JobState.ABANDONED):
                said = row.result or {}
                if not said:
                    return 500, {"error": f"`{call.line}` could not be run; try again."}
                status, body = int(said.get("status", 500)), dict(said.get("body") or {})
                if call.wait and status == 202 and body.get("state") == "pending":
                    return await self._decided(body, deadline, call)
                return status, body
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.5)
        return self._still_running(call)

    async def _decided(
        self, pending: dict[str, Any], deadline: float, call: ApiCall
    ) -> tuple[int, dict[str, Any]]:
        """The answer to the request `pending` opened, once it was decided or expired: waited
        for here, so that no worker is held while people decide."""
        while time.monotonic() < deadline:
            done, row = await asyncio.to_thread(self.settled, str(pending.get("request", "")))
            if done:
                return _decided(pending, row)
            await asyncio.sleep(0.5)
        return self._still_running(call)

    def _still_running(self, call: ApiCall) -> tuple[int, dict[str, Any]]:
        return 504, {
            "error": f"`{call.line}` is still running after {self.wait_s:.0f} s; what it "
            "started carries on and reports in its Slack thread."
        }


def _decided(pending: dict[str, Any], row: ApprovalRow | None) -> tuple[int, dict[str, Any]]:
    """The answer `pending` (a request just opened) became once it was settled (`row`)."""
    if row is None or row.state == "pending":
        return 408, {**pending, "state": "expired"}
    body = {**pending, "state": row.state, "decided_by": row.decided_by}
    body["reason"] = row.decision_reason
    return (200 if row.state == "approved" else 403), body


def _name(value: str, what: str) -> None:
    if not NAME.fullmatch(value):
        shown = value[:40].replace("`", "'")
        raise Problem(
            400,
            f"`{shown}` is not a valid {what}: use letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit.",
        )


def _model(uri: object) -> tuple[str, str]:
    """The model of a `models:/` URI, and its version as the grammar takes it (`v3`, `@a`)."""
    found = _MODEL_URI.fullmatch(str(uri or ""))
    if found is None or not NAME.fullmatch(found.group(1)):
        raise Problem(
            400,
            "Say which registered version to serve: model_uri `models:/<model>/<version>` or "
            "`models:/<model>@<alias>` (e.g. `-m models:/iris/3`).",
        )
    model, number, alias = found.groups()
    return model, (f"v{int(number)}" if number else f"@{alias}")


def _config(config: object) -> dict[str, str]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise Problem(400, "config is not a JSON object.")
    unknown = sorted(set(config) - {"wait"})
    if unknown:
        raise Problem(400, f"Unknown config {', '.join(unknown)[:80]}: the bot takes `wait`.")
    return {k: str(v).lower() for k, v in config.items()}


def _wait(values: dict[str, str]) -> bool:
    value = values.get("wait", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Problem(400, f"wait is `true` or `false`, not `{value[:20]}`.")


def _query(scope: dict[str, Any]) -> dict[str, str]:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v for k, v in parse_qsl(raw) if k == "wait"}


async def _send(
    send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": headers or HEADERS})
    await send({"type": "http.response.body", "body": data})
