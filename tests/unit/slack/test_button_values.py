"""A button's value comes back from the clicker's client: Slack signs the request, not the
value. A click runs only as the command the bot's own button stands for, never as more."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.slack.intake.jobs import AnnouncedAction
from bot.slack.posting.oncall import click_of
from bot.slack.rendering.ids import DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED, ROLLBACK
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
        {"model": "churn\n", "version": 2, "env": "dev"},
        {"model": "churn", "version": 2.5, "env": "dev"},  # int() reads 2
        {"model": "churn", "version": True, "env": "dev"},  # int() reads 1
        {"model": "churn", "version": "2", "env": "dev"},  # the bot writes a number
        {"model": "churn", "version": 2**31, "env": "dev"},  # beyond what MLflow numbers
    ],
)
@pytest.mark.parametrize("action_id", [DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED])
def test_a_forged_value_that_would_say_more_than_the_button_is_refused(
    action_id: str, value: dict[str, Any]
) -> None:
    assert AnnouncedAction.of_click(_click(action_id, value), namespace="chatops") is None


@pytest.mark.parametrize("version", [2.5, True, "2", 0])
def test_a_roll_back_click_with_a_version_the_bot_never_wrote_is_refused(version: object) -> None:
    value = {"env": "prod", "endpoint": "iris", "version": version}
    assert click_of(_click(ROLLBACK, value)) is None
    assert click_of(_click(ROLLBACK, {**value, "version": 2})) is not None
