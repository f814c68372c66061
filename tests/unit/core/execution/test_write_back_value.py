"""What the serving tag says of a switch: since when (UTC), who asked and who approved, the
operation, and its thread where a front recorded one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from core.execution.run import Brief
from core.execution.steps import serving_value
from core.marks import person
from core.store.models import Operation

SINCE = datetime(2026, 12, 6, 15, 4, 5, tzinfo=timezone(timedelta(hours=1)))


def brief(**more: str) -> Brief:
    return Brief(
        action="deploy",
        model="iris",
        version=3,
        alias=None,
        cpu=1,
        memory_mb=1024,
        replicas=1,
        gpus=0,
        headline="deploy iris v3 to prod",
        actor_id="U0DANA",
        actor_name="dana",
        **more,
    )


def test_an_approved_deploy_from_slack_names_both_people_and_its_thread() -> None:
    op = Operation(id="op-1", kind="deploy", env="prod", endpoint="iris", command="/promote")
    op.requested_by = "dana"
    op.reply_to = {"front": "slack", "channel": "C0OPS", "thread_ts": "17.1", "ts": "17.2"}

    value = json.loads(serving_value(op, brief(approver=person("erin")), SINCE))

    assert value == {
        "since": "2026-12-06T14:04:05Z",
        "by": "dana",
        "approved_by": "erin",  # a mark the core meant for a front is not written as one
        "operation": "op-1",
        "thread": {"front": "slack", "channel": "C0OPS", "ts": "17.1"},
    }


def test_a_console_deploy_names_no_approver_and_no_thread() -> None:
    op = Operation(id="op-2", kind="deploy", env="prod", endpoint="iris", command="/deploy")
    op.requested_by = ""
    op.reply_to = {}

    value = json.loads(serving_value(op, brief(), SINCE.astimezone(UTC)))

    assert value == {"since": "2026-12-06T14:04:05Z", "by": "dana", "operation": "op-2"}
