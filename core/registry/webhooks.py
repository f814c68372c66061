"""MLflow's registry webhooks: checking a delivery is MLflow's, reading its event, and making
sure the tracking server has exactly one webhook that delivers to this bot.

MLflow (3.x) signs each delivery as its webhook docs say: `X-MLflow-Signature` is
`v1,<base64 HMAC-SHA256>` over `<delivery id>.<timestamp>.<raw body>` with the webhook's
secret; `X-MLflow-Delivery-Id` and `X-MLflow-Timestamp` (Unix seconds) come alongside. The
docs have receivers refuse a timestamp more than five minutes old, against replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.mlflow_imports import mlflow_imports
from core.registry.events import MAX_VERSION, RegistryEvent, RegistryEventKind, version_number

if TYPE_CHECKING:
    from core.registry.mlflow import Registry

log = logging.getLogger("chatops.registry")

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
MAX_AGE_S = 300.0
# a sender's clock a little ahead of ours is no replay; MLflow's example allows none
MAX_AHEAD_S = 30.0
# MLflow's registry payloads are a few hundred bytes; tags may carry a few kilobytes
MAX_BODY = 64 * 1024
WEBHOOK_NAME = "chatops"
EVENTS = tuple(str(k) for k in RegistryEventKind)
_KINDS = {
    ("model_version", "created"): RegistryEventKind.VERSION_CREATED,
    ("model_version_alias", "created"): RegistryEventKind.ALIAS_CREATED,
    ("model_version_alias", "deleted"): RegistryEventKind.ALIAS_DELETED,
    ("model_version_tag", "set"): RegistryEventKind.TAG_SET,
}


@dataclass(frozen=True)
class Unverified:
    """Why a delivery is not taken as MLflow's (nothing of it is read)."""

    reason: str


def sign(secret: str, *, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` MLflow sends for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str | None,
    headers: dict[str, str],
    body: bytes,
    *,
    now: float,
    max_age_s: float = MAX_AGE_S,
) -> Unverified | None:
    """None when `body` with `headers` (lower-case names) is a fresh delivery MLflow signed
    with `secret`; else why not. No secret: nothing is MLflow's (fail closed)."""
    if not secret:
        return Unverified("no webhook secret is configured")
    delivery = headers.get(DELIVERY_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not (delivery and stamp and given):
        return Unverified("the delivery id, timestamp or signature header is missing")
    if not _number(stamp) or len(stamp) > 12:
        return Unverified("the timestamp is not Unix seconds")
    age = now - int(stamp)
    if age > max_age_s or age < -MAX_AHEAD_S:
        return Unverified(f"the timestamp is {age:.0f} s old (at most {max_age_s:g} s is taken)")
    expected = sign(secret, delivery_id=delivery, timestamp=stamp, body=body)
    # the header may list several signatures (a secret being rotated): any one may match
    if not any(hmac.compare_digest(expected, part) for part in given.split()):
        return Unverified("the signature does not match")
    return None


class MalformedDelivery(ValueError):
    """A signed delivery whose body is not an MLflow registry event."""


def event_of(body: bytes) -> RegistryEvent | None:
    """The registry event a verified delivery tells; None for an event the bot does not
    announce (a prompt, a registered model); MalformedDelivery when it is not one at all."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedDelivery("the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise MalformedDelivery("the body has no `data` object")
    entity, action = payload.get("entity"), payload.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise MalformedDelivery("the body names no entity and action")
    kind = _KINDS.get((entity, action))
    if kind is None:
        return None
    data: dict[str, Any] = payload["data"]
    if kind is RegistryEventKind.ALIAS_DELETED:  # MLflow tells no version with it
        model = data.get("name")
        if not isinstance(model, str) or not model:
            raise MalformedDelivery("the event names no model")
        return RegistryEvent(kind, model, 0, alias=_text(data, "alias"))
    model, given = data.get("name"), str(data.get("version", ""))
    if not isinstance(model, str) or not model or not given:
        raise MalformedDelivery("the event names no model and version")
    version = version_number(given)
    if version is None:
        raise MalformedDelivery(f"the version is not one MLflow gives (1 to {MAX_VERSION})")
    fields: dict[str, str] = {}
    if kind is RegistryEventKind.ALIAS_CREATED:
        fields["alias"] = _text(data, "alias")
    elif kind is RegistryEventKind.TAG_SET:
        fields["tag"] = _text(data, "key")
        fields["value"] = _text(data, "value", empty=True)
    return RegistryEvent(kind, model, version, **fields)


def _number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes "²", which `int` refuses."""
    return text.isascii() and text.isdigit()


def _text(data: dict[str, Any], name: str, *, empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise MalformedDelivery(f"the event has no `{name}`")
    return value


def ensure_webhook(registry: Registry, *, url: str, secret: str) -> str:
    """The id of the tracking server's one webhook to `url` (or named as the bot names it),
    made when there is none and brought up to date when there is: never a second one.
    RegistryError when the server refuses (e.g. a private address it may not deliver to)."""
    with mlflow_imports():
        from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent

    # only here: the front checks deliveries without MLflow imported
    events = [WebhookEvent(WebhookEntity(e), WebhookAction(a)) for e, a in _KINDS]
    client = registry.client
    with registry.guarded("registering the bot's webhook"):
        mine = _mine(client, url)
        if mine is None:
            made = client.create_webhook(
                name=WEBHOOK_NAME,
                url=url,
                events=list(events),
                description="announces new versions, aliases and tags in Slack",
                secret=secret,
                status="ACTIVE",
            )
            log.info("registered the MLflow webhook %s", made.webhook_id)
            return str(made.webhook_id)
        # the secret cannot be read back: set it with the rest, so a rotated one applies
        client.update_webhook(
            mine.webhook_id,
            name=WEBHOOK_NAME,
            url=url,
            events=list(events),
            secret=secret,
            status="ACTIVE",
        )
        return str(mine.webhook_id)


def find_webhook(registry: Registry, url: str) -> Any | None:
    """The tracking server's webhook the bot registered (to `url`, or by its name), read
    only; None when there is none yet. RegistryError when the server cannot list webhooks."""
    with registry.guarded("listing the tracking server's webhooks"):
        return _mine(registry.client, url)


def _mine(client: Any, url: str) -> Any | None:
    token: str | None = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        mine = next((w for w in page if w.url == url or w.name == WEBHOOK_NAME), None)
        token = page.token
        if mine is not None or not token:
            return mine
