"""Checking MLflow's webhook deliveries: signed by MLflow's own signer, as MLflow sends them."""

from __future__ import annotations

import json
import uuid

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from core.registry.events import RegistryEvent, RegistryEventKind
from core.registry.webhooks import MalformedDelivery, event_of, sign, verify

SECRET = "whsec-test-8c1f"
NOW = 1_767_000_000.0


def delivery(
    payload: dict[str, object], *, secret: str = SECRET, at: float = NOW
) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as MLflow's delivery builds them (its signer, its JSON)."""
    body = json.dumps(payload)
    delivery_id, stamp = str(uuid.uuid4()), str(int(at))
    headers = {
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": _generate_hmac_signature(secret, delivery_id, stamp, body),
    }
    return headers, body.encode()


CREATED = {
    "entity": "model_version",
    "action": "created",
    "timestamp": "2026-01-01T00:00:00+00:00",
    "data": {"name": "iris", "version": "4", "source": "models:/m-1", "run_id": "r1", "tags": {}},
}


def test_our_signature_is_the_one_mlflow_computes() -> None:
    headers, body = delivery(CREATED)
    ours = sign(
        SECRET,
        delivery_id=headers["x-mlflow-delivery-id"],
        timestamp=headers["x-mlflow-timestamp"],
        body=body,
    )
    assert ours == headers["x-mlflow-signature"]
    assert verify(SECRET, headers, body, now=NOW) is None


def test_a_delivery_signed_with_another_secret_is_refused() -> None:
    headers, body = delivery(CREATED, secret="someone-elses")
    refused = verify(SECRET, headers, body, now=NOW)
    assert refused is not None and refused.reason == "the signature does not match"


def test_a_changed_body_or_delivery_id_breaks_the_signature() -> None:
    headers, body = delivery(CREATED)
    assert verify(SECRET, headers, body.replace(b'"4"', b'"5"'), now=NOW) is not None
    assert verify(SECRET, {**headers, "x-mlflow-delivery-id": "other"}, body, now=NOW) is not None


@pytest.mark.parametrize(
    "missing", ["x-mlflow-delivery-id", "x-mlflow-timestamp", "x-mlflow-signature"]
)
def test_a_delivery_without_one_of_the_three_headers_is_refused(missing: str) -> None:
    headers, body = delivery(CREATED)
    del headers[missing]
    refused = verify(SECRET, headers, body, now=NOW)
    assert refused is not None and "missing" in refused.reason


def test_a_delivery_older_than_five_minutes_is_refused_even_when_signed() -> None:
    headers, body = delivery(CREATED, at=NOW - 301)
    refused = verify(SECRET, headers, body, now=NOW)
    assert refused is not None and "301 s old" in refused.reason
    fresh_headers, fresh_body = delivery(CREATED, at=NOW - 299)
    assert verify(SECRET, fresh_headers, fresh_body, now=NOW) is None


def test_a_timestamp_from_the_future_or_not_a_number_is_refused() -> None:
    headers, body = delivery(CREATED, at=NOW + 120)
    assert verify(SECRET, headers, body, now=NOW) is not None
    headers, body = delivery(CREATED)
    assert verify(SECRET, {**headers, "x-mlflow-timestamp": "1e9"}, body, now=NOW) is not None


def test_without_a_configured_secret_nothing_is_taken() -> None:
    headers, body = delivery(CREATED)
    for secret in (None, ""):
        refused = verify(secret, headers, body, now=NOW)
        assert refused is not None and refused.reason == "no webhook secret is configured"


def test_the_four_registry_events_are_read_from_mlflows_payloads() -> None:
    from mlflow.webhooks.types import (
        ModelVersionAliasCreatedPayload,
        ModelVersionAliasDeletedPayload,
        ModelVersionCreatedPayload,
        ModelVersionTagSetPayload,
    )

    def body(entity: str, action: str, data: object) -> bytes:
        return json.dumps({"entity": entity, "action": action, "data": data}).encode()

    assert event_of(body("model_version", "created", ModelVersionCreatedPayload.example())) == (
        RegistryEvent(RegistryEventKind.VERSION_CREATED, "example_model", 1)
    )
    alias = ModelVersionAliasCreatedPayload.example()
    assert event_of(body("model_version_alias", "created", alias)) == RegistryEvent(
        RegistryEventKind.ALIAS_CREATED, "example_model", 1, alias=alias["alias"]
    )
    # a deleted alias names no version: the drift it may leave is what is announced
    deleted = ModelVersionAliasDeletedPayload.example()
    assert event_of(body("model_version_alias", "deleted", deleted)) == RegistryEvent(
        RegistryEventKind.ALIAS_DELETED, "example_model", 0, alias=deleted["alias"]
    )
    tag = ModelVersionTagSetPayload.example()
    assert event_of(body("model_version_tag", "set", tag)) == RegistryEvent(
        RegistryEventKind.TAG_SET, "example_model", 1, tag="example_key", value="example_value"
    )
    # signed and well formed, but nothing the bot announces
    assert event_of(body("registered_model", "created", {"name": "m"})) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"entity": "model_version", "action": "created"}',
        b'{"entity": "model_version", "action": "created", "data": {"name": "m"}}',
        b'{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "x"}}',
        b'{"entity": "model_version_alias", "action": "created", '
        b'"data": {"name": "m", "version": "1"}}',
        b'{"entity": "model_version_alias", "action": "deleted", "data": {"name": "m"}}',
        b'{"entity": "model_version_alias", "action": "deleted", "data": {"alias": "prod"}}',
        b"\xff\xfe",
    ],
)
def test_a_malformed_body_is_told_as_such(raw: bytes) -> None:
    with pytest.raises(MalformedDelivery):
        event_of(raw)


def test_digits_that_are_not_ascii_are_no_timestamp_nor_version() -> None:
    # `str.isdigit` takes "²"; `int` does not: refused as not a number, never an error
    headers, body = delivery(CREATED)
    refused = verify(SECRET, {**headers, "x-mlflow-timestamp": "1²"}, body, now=NOW)
    assert refused is not None and refused.reason == "the timestamp is not Unix seconds"
    data = {**CREATED["data"], "version": "²"}  # type: ignore[dict-item]
    with pytest.raises(MalformedDelivery, match="the version is not one MLflow gives"):
        event_of(json.dumps({**CREATED, "data": data}).encode())


@pytest.mark.parametrize("version", ["0", "000", "2147483648", "9" * 40, 10**40, -3])
def test_a_version_number_no_model_can_have_is_refused_at_parse(version: object) -> None:
    # MLflow numbers versions from 1 in a 32-bit integer: a 40-digit one was taken, then
    # overflowed in the worker and its job was dropped
    data = {**CREATED["data"], "version": version}  # type: ignore[dict-item]
    with pytest.raises(MalformedDelivery, match=r"not one MLflow gives \(1 to 2147483647\)"):
        event_of(json.dumps({**CREATED, "data": data}).encode())
    highest = {**CREATED["data"], "version": "2147483647"}  # type: ignore[dict-item]
    event = event_of(json.dumps({**CREATED, "data": highest}).encode())
    assert event is not None and event.version == 2**31 - 1
