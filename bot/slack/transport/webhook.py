"""`POST /mlflow/webhook`: registry events an MLflow tracking server delivers.

Nothing of a delivery is read before its signature and timestamp are checked (core/registry/
webhooks.py); a verified event is recorded as a job, under MLflow's delivery id (a retried
delivery records nothing), and a worker announces it. Answers: 200 taken (or not an event
the bot announces), 400 malformed, 401 unsigned, forged or stale (and without a configured
secret: fail closed), 405 not a POST, 413 too large, 503 the state database failed (MLflow
retries it). Never 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.slack.intake.jobs import FRONT, RegistryNotice
from bot.slack.transport.http import read_body
from core.errors import StoreError
from core.registry.webhooks import (
    DELIVERY_HEADER,
    MAX_BODY,
    MalformedDelivery,
    event_of,
    verify,
)
from core.scrub import register_secret
from core.store.jobs import JobQueue

log = logging.getLogger("chatops.slack")
WEBHOOK_PATH = "/mlflow/webhook"


class _Secret(BaseSettings):
    """Only the webhook secret of the bot's settings: the front needs nothing else of them."""

    model_config = SettingsConfigDict(env_prefix="CHATOPS_", env_file=".env", extra="ignore")
    registry_webhook_secret: str = ""


def configured_secret() -> str | None:
    """CHATOPS_REGISTRY_WEBHOOK_SECRET, or None (the route then refuses every delivery)."""
    try:
        secret = _Secret().registry_webhook_secret
    except ValidationError:
        return None
    return secret or None


class RegistryWebhook:
    """The ASGI app of the route; `now` gives Unix seconds (the timestamp check's clock)."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        nudge: Callable[[], None],
        secret: str | None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.nudge = nudge
        self.secret = secret
        self.now = now
        register_secret(secret)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            status, answer = await self._handle(scope, receive)
        except Exception:  # whatever went wrong, MLflow gets an answer it can retry
            log.exception("the MLflow webhook failed unexpectedly")
            status, answer = 503, "the delivery could not be taken now"
        body = json.dumps({"ok": status == 200, "detail": answer}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict[str, Any], receive: Any) -> tuple[int, str]:
        if scope.get("method") != "POST":
            return 405, "only POST"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):  # "²" is a digit to isdigit
            return 400, "bad content-length"
        if int(length) > MAX_BODY:
            return 413, f"a delivery is at most {MAX_BODY} bytes"
        body = await read_body(receive, MAX_BODY)
        if body is None:
            return 413, f"a delivery is at most {MAX_BODY} bytes"
        refused = verify(self.secret, headers, body, now=self.now())
        if refused is not None:
            log.warning("refused an MLflow webhook delivery: %s", refused.reason)
            return 401, refused.reason
        try:
            event = event_of(body)
        except MalformedDelivery as exc:
            log.warning("refused a signed MLflow webhook delivery: %s", exc)
            return 400, str(exc)
        if event is None:
            return 200, "not an event the bot announces"
        delivery = headers[DELIVERY_HEADER]
        notice = RegistryNotice(
            event=str(event.kind),
            model=event.model,
            version=event.version,
            alias=event.alias,
            tag=event.tag,
            value=event.value,
            delivery=delivery,
        )
        try:
            recorded = self.queue.record(
                key=f"mlflow:{delivery}"[:255], front=FRONT, job=notice, kind="query"
            )
        except StoreError as exc:
            log.error("could not record an MLflow webhook delivery: %s", exc.message)
            return 503, "the delivery could not be recorded now"
        if recorded is not None:
            self.nudge()
        return 200, "taken"


def registry_webhook(queue: JobQueue, dispatcher: Any) -> RegistryWebhook:
    """The route as a front serves it: jobs into `queue`, `dispatcher` nudged."""
    return RegistryWebhook(queue=queue, nudge=dispatcher.nudge, secret=configured_secret())
