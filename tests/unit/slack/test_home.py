"""The App Home for any mix of environments, targets and traffic (or none), rendered for real
and checked as Slack checks a Home (slack_sdk's block models, 100 blocks, text limits): what
does not fit is counted as what it is (endpoints, by environment) with the command that
lists them, and the opener's own requests and operations are always there."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.slack.rendering.home import home_view
from commands.naming import Naming
from core.events import EndpointStatus
from core.marks import person
from core.oncall.overview import Overview
from core.store.models import ApprovalRow, Operation
from core.targets.base import Traffic
from tests.slack_api.limits import check_blocks

NOW = datetime(2024, 5, 1, tzinfo=UTC)
COUNTED = Traffic(
    window_s=300, known=True, requests=40, errors=15, p50_ms=3.0, p99_ms=9.0, version=2,
    by_version={2: 30, 1: 10}, span_s=300,
)  # fmt: skip
CML = Traffic(window_s=300, detail="CML counts requests in its workspace's Model Metrics")


def endpoint(i: int, env: str, traffic: Traffic | None, target: str = "local") -> EndpointStatus:
    return EndpointStatus(
        env=env, name=f"model-{i}", model=f"model-{i}", version=2, resources="1 cpu, 1 GB",
        replicas=1 + i % 3, up=bool(i % 2), since=NOW, url=f"http://127.0.0.1:{5000 + i}",
        target=target, traffic=traffic, underway=f"deploy by {person('<@U0CAROL>')}, at build"
        if i == 1 else "",
    )  # fmt: skip


def request(i: int, state: str = "pending") -> ApprovalRow:
    return ApprovalRow(
        id=f"apr-{i:010d}", model="iris", version=i, env="prod", requester_id="U0BOB",
        requester_name="<@U0BOB>", reason="<!here> please", command="", expires_at=NOW,
        state=state, decided_by="",
    )  # fmt: skip


def operation(i: int) -> Operation:
    return Operation(
        id=f"op-{i:010d}", kind="deploy", env="dev", endpoint="iris", requested_by="<@U0BOB>",
        command=f"/mlops deploy iris v{i}", state="succeeded", step="", error="",
        created_at=NOW,
    )  # fmt: skip


def texts(view: dict[str, object]) -> str:
    return json.dumps(view, ensure_ascii=False)


MIXES = {
    "nothing": [],
    "two environments with traffic": [
        endpoint(1, "dev", COUNTED), endpoint(2, "prod", COUNTED), endpoint(3, "dev", None),
    ],
    "targets that cannot count, and none": [
        endpoint(1, "prod", CML, "cml"), endpoint(2, "dev", None), endpoint(3, "qa", COUNTED),
    ],
}  # fmt: skip


@pytest.mark.parametrize("mix", list(MIXES))
def test_the_home_renders_any_mix_of_environments_targets_and_traffic(mix: str) -> None:
    seen = Overview(MIXES[mix], [request(1)], [request(2, "approved")], [operation(1)])
    view = home_view(seen, production=frozenset({"prod"}))
    check_blocks(view["blocks"], limit=100)
    shown = texts(view)
    for ep in MIXES[mix]:
        assert f"*{ep.name}*" in shown
    if mix == "nothing":
        assert "No endpoints yet. An admin deploys one with `/deploy" in shown
    assert "<!here>" not in shown and "&lt;!here&gt; please" in shown


def test_a_home_with_hundreds_of_endpoints_counts_those_it_cannot_show_and_keeps_mine() -> None:
    eps = [
        endpoint(i, env, replace(COUNTED, by_version={v: 1 for v in range(1, 40)}))
        for env in ("dev", "prod", "qa")
        for i in range(200)
    ]
    seen = Overview(
        eps,
        [request(i) for i in range(10)],
        [request(20 + i, "approved") for i in range(5)],
        [operation(i) for i in range(5)],
    )
    naming = Naming("mlops", direct=False)
    view = home_view(seen, production=frozenset(), naming=naming)
    blocks = view["blocks"]
    check_blocks(blocks, limit=100)
    shown = texts(view)
    listed = sum(shown.count(f"*model-{i}*") for i in range(200))
    more = [b for b in blocks if b["type"] == "context" and "more endpoints" in str(b)]
    (note,) = more
    text = note["elements"][0]["text"]
    hidden = len(eps) - listed
    assert hidden > 0
    assert text.startswith(f"… and {hidden} more endpoints in ")
    assert "`/mlops status in " in text
    # every request to decide has its buttons, and every one of mine is there
    assert sum(b["type"] == "actions" for b in blocks) == 10
    for i in range(5):
        assert f"`op-{i:010d}`" in shown and f"`apr-{20 + i:010d}`" in shown
    # the requester is named as who they are (a Home notifies nobody)
    assert "asked by <@U0BOB>" in shown
