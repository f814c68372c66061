"""`chatops check`'s row for registry events, when no tracking server is involved or none
answers (the webhook case against a real `mlflow server` is in the Slack scenarios)."""

from __future__ import annotations

from pathlib import Path

from core.oncall.checks import Verdict
from core.oncall.checks.events import registry_events_finding
from tests.conftest import make_settings


def test_the_embedded_registry_is_polled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state", f"sqlite:///{tmp_path / 'mlflow.db'}")
    found = registry_events_finding(settings)
    assert (found.verdict, found.detail) == (Verdict.OK, "the registry is read every 30 s")


def test_events_turned_off_are_not_checked(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "state", f"sqlite:///{tmp_path / 'mlflow.db'}", registry_poll_s=0
    )
    assert registry_events_finding(settings).verdict is Verdict.SKIPPED


def test_half_a_webhook_configuration_is_a_problem(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "state",
        "http://127.0.0.1:1",
        registry_webhook_url="http://bot.internal:3000/mlflow/webhook",
    )
    found = registry_events_finding(settings)
    assert found.verdict is Verdict.PROBLEM
    assert "only one of CHATOPS_REGISTRY_WEBHOOK_URL and CHATOPS_REGISTRY_WEBHOOK_SECRET" in (
        found.detail
    )


def test_a_tracking_server_that_does_not_answer_cannot_hold_the_webhook(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "state",
        "http://user:hunter2@127.0.0.1:1",
        registry_webhook_url="http://bot.internal:3000/mlflow/webhook",
        registry_webhook_secret="s3cret-webhook",
        registry_wait_s=2,
    )
    found = registry_events_finding(settings)
    assert found.verdict is Verdict.PROBLEM
    assert found.detail.startswith("the tracking server cannot hold webhooks: ")
    assert "MLflow 3.3 or newer over a SQL backend store" in found.fix
    assert "hunter2" not in found.detail + found.fix
