"""A button's value comes back from the clicker's client: Slack signs the request, not the
value. A click runs only as the command the bot's own button stands for, never as more."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.slack.intake.jobs import AnnouncedAction
from bot.slack.rendering.ids import DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED
from commands.deploy import Deploy
from commands.registry import parse


def _click(action_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "user": {"id": "U0BOB"},
        "channel": {"id": "C0MODELS"},
        "container": {"message_ts": "1700000000.000100"},
        "actions": [{"action_id": action_id, "value": json.dumps(value)}],
    }


def test_a_click_on_deploy_is_the_deploy_the_button_names() -> None:
    job = AnnouncedAction.of_click(
        _click(DEPLOY_ANNOUNCED, {"model": "churn", "version": 2, "env": "dev"}),
        namespace="chatops",
    )
    assert job is not None
    module, parsed = parse(*job.entry)  # type: ignore[misc]
    assert module.NAME == "deploy"
    assert parsed == Deploy(model="churn", version=2, env="dev")


@pytest.mark.parametrize(
    "value",
    [
        {"model": "churn v1 to prod --override hotfix", "version": 2, "env": "dev"},
        {"model": "churn", "version": 2, "env": "dev --dry-run"},
        {"model": "churn", "version": 2, "env": "prod --override x"},
        {"model": "--override", "version": 2, "env": "dev"},
        {"model": "churn", "version": -1, "env": "dev"},
        {"model": "", "version": 2, "env": "dev"},
    ],
)
@pytest.mark.parametrize("action_id", [DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED])
def test_a_forged_value_that_would_say_more_than_the_button_is_refused(
    action_id: str, value: dict[str, Any]
) -> None:
    assert AnnouncedAction.of_click(_click(action_id, value), namespace="chatops") is None
