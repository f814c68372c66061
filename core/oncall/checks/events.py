"""Readiness of registry events: how they reach the bot, and with a tracking server, that it
can hold the bot's webhook. Read only: the bot registers the webhook itself when it starts."""

from __future__ import annotations

from core.announcements import Delivery, delivery
from core.config import Settings
from core.errors import RegistryError
from core.oncall.checks import Finding
from core.registry.mlflow import Registry
from core.registry.webhooks import find_webhook

EVENTS = "registry events"
CHECK = "how they reach the bot"


def registry_events_finding(settings: Settings) -> Finding:
    how = delivery(settings)
    if how is Delivery.OFF:
        return Finding.skipped(EVENTS, CHECK, "off (CHATOPS_REGISTRY_POLL_S is 0)")
    if how is Delivery.POLL:
        halves = (settings.registry_webhook_url, settings.registry_webhook_secret)
        server = settings.mlflow_tracking_uri.startswith(("http://", "https://"))
        if server and any(halves) and not all(halves):
            return Finding.problem(
                EVENTS,
                CHECK,
                "only one of CHATOPS_REGISTRY_WEBHOOK_URL and CHATOPS_REGISTRY_WEBHOOK_SECRET "
                "is set, so the registry is polled instead of delivering its webhook",
                "set both (the bot's /mlflow/webhook as the server reaches it, and a secret)",
            )
        return Finding.ok(
            EVENTS, CHECK, f"the registry is read every {settings.registry_poll_s:g} s"
        )
    registry = Registry(tracking_uri=settings.mlflow_tracking_uri, wait_s=settings.registry_wait_s)
    try:
        mine = find_webhook(registry, settings.registry_webhook_url)
    except RegistryError as exc:
        return Finding.problem(
            EVENTS,
            CHECK,
            f"the tracking server cannot hold webhooks: {exc.message}",
            "run MLflow 3.3 or newer over a SQL backend store, or unset "
            "CHATOPS_REGISTRY_WEBHOOK_URL to poll it instead",
        )
    if mine is None:
        return Finding.ok(EVENTS, CHECK, "webhook: none yet; the bot registers it when it starts")
    where = "" if mine.url == settings.registry_webhook_url else " (the bot updates its address)"
    return Finding.ok(EVENTS, CHECK, f"webhook {mine.name} ({mine.status}){where}")
