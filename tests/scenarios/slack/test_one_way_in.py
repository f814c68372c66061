"""One way in: the same command typed in the console, as a direct slash command, through the
namespace command, in a mention, in a DM, or clicked as a button is the same core call with
the same outcome — `--override` included. Signed requests to the running front, the Slack Web
API emulator, real model servers."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from bot.console.app import ConsoleApp
from core.config import CONSOLE_USER, PromotionOrder, Settings
from core.runtime import Runtime
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront
from tests.scenarios.slack.test_namespace_mentions_home import DM, direct, mention, post_event
from tests.scenarios.slack.test_slack_approvals import click, request_message
from tests.slack_api.emulator import SlackEmulator

BOB = "U0BOB"  # a developer of prod
Send = Callable[[RunningFront, str], None]


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    """prod takes a version only after it served healthy in dev for 30 minutes."""
    base = make_settings(tmp_path / "state", registry_uri)
    dev, prod = base.environments
    dev = dev.model_copy(update={"admins": [ALICE, CONSOLE_USER], "developers": [BOB]})
    prod = prod.model_copy(
        update={
            "admins": [ALICE, CONSOLE_USER],
            "developers": [BOB],
            "promotion": PromotionOrder(after="dev", minutes=30),
        }
    )
    return base.model_copy(update={"environments": [dev, prod]})


@pytest.fixture(autouse=True)
def people(slack_api: SlackEmulator) -> None:
    slack_api.add_user(BOB, name="bob")
    slack_api.add_channel(DM, name="alice-dm", member=True, is_im=True)


def _console(front: RunningFront, line: str) -> None:
    ConsoleApp(front.runtime, actor="alice", console=Console(file=io.StringIO())).run_line(line)


def _direct(front: RunningFront, line: str) -> None:
    name, _, text = line.partition(" ")
    assert front.post(f"/{name}", text).status_code == 200


def _namespace(front: RunningFront, line: str) -> None:
    assert front.post("/mlops", line).status_code == 200


def _mention(front: RunningFront, line: str) -> None:
    assert post_event(front, mention(line), event_id=_event_id(line)).status_code == 200


def _dm(front: RunningFront, line: str) -> None:
    assert post_event(front, direct(line), event_id=_event_id(line)).status_code == 200


def _event_id(line: str) -> str:
    return f"Ev{hash(line) & 0xFFFFFF:06X}"


TYPED: dict[str, Send] = {
    "console": _console,
    "direct": _direct,
    "namespace": _namespace,
    "mention": _mention,
    "dm": _dm,
}


def _requested(front: RunningFront) -> tuple[str, str]:
    """The id of Bob's request to deploy iris v1 to prod, and the ts of its message."""
    assert front.post("/promote", "iris v1 to prod", user=BOB).status_code == 200
    front.drain()
    message, buttons = request_message(front)
    return str(buttons[0]["value"]), message.ts


def _serving(rt: Runtime) -> tuple[str, int] | None:
    row = rt.repos.endpoints.get("prod", "iris")
    return (row.model, row.version) if row else None


def _everything_said(front: RunningFront) -> str:
    said = [m.text for m in front.api.messages(OPS)] + [m.text for m in front.api.messages(DM)]
    said += [str(r.body.get("text", "")) for r in front.api.responses]
    return "\n".join(said)


@pytest.mark.parametrize("front_name", [*TYPED, "button"])
def test_an_approval_against_the_promotion_order_is_held_from_every_front(
    running_front: RunningFront, front_name: str
) -> None:
    request, ts = _requested(running_front)
    if front_name == "button":
        assert click(running_front, ALICE, "approve", request, ts).status_code == 200
    else:
        TYPED[front_name](running_front, f"approve {request}")
    running_front.drain()

    assert running_front.runtime.approvals.lookup(request).state == "pending"  # type: ignore[union-attr]
    assert _serving(running_front.runtime) is None
    if front_name != "console":
        assert "iris v1 has not served in dev yet" in _everything_said(running_front)
        assert "Something unexpected" not in _everything_said(running_front)


@pytest.mark.parametrize("front_name", list(TYPED))
def test_approve_with_override_deploys_from_every_front(
    running_front: RunningFront, front_name: str
) -> None:
    request, ts = _requested(running_front)
    TYPED[front_name](running_front, f'approve {request} --override "customer demo at 3pm"')
    running_front.drain()

    rt = running_front.runtime
    assert rt.approvals.lookup(request).state == "approved"  # type: ignore[union-attr]
    assert _serving(rt) == ("iris", 1)
    overrides = [a for a in rt.repos.audit.entries() if a.action == "override"]
    assert [(a.outcome, a.detail.endswith(": customer demo at 3pm")) for a in overrides] == [
        ("overridden", True)
    ]
    if front_name != "console":
        thread = [m.text for m in running_front.api.messages(OPS) if m.thread_ts == ts]
        assert any("iris v1 is live at http://127.0.0.1:" in t for t in thread)
        assert "Something unexpected" not in _everything_said(running_front)
