"""`/history iris --at …` from Slack: signed requests to the running front, the Slack Web API
emulator; the moment typed and the times shown in the asker's zone as Slack's users.info gives
it, each switch with a link to its operation's thread."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.clock import FakeClock
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront

NEW_YORK = ZoneInfo("America/New_York")
BOB = "U0BOB"  # a viewer who set no time zone


def typed(moment: datetime) -> str:
    return f"{moment.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S}"


def shown(moment: datetime) -> str:
    return f"{moment.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}"


def answer(front: RunningFront, text: str, user: str = ALICE) -> tuple[str, str]:
    """What the asker was answered (its fallback text and its blocks' texts)."""
    before = len(front.api.responses)
    assert front.post("/history", text, user=user).status_code == 200
    front.drain()
    front.api.wait_for(lambda api: len(api.responses) > before)
    body = front.api.responses[-1].body
    blocks = "\n".join(
        str((b.get("text") or {}).get("text") or b.get("elements", [{}])[0].get("text", ""))
        for b in body["blocks"]
    )
    return body["text"], blocks


def test_what_served_is_read_and_shown_in_the_askers_zone_with_each_thread_linked(
    running_front: RunningFront, clock: FakeClock
) -> None:
    api = running_front.api
    api.add_user(ALICE, name="alice", tz="America/New_York")
    api.add_user(BOB, name="bob")

    served = running_front.runtime.repos.served
    running_front.post("/deploy", "iris v1")
    running_front.drain()
    clock.advance(600)
    running_front.post("/deploy", "iris v2")
    running_front.drain()
    first, second = (served.intervals("dev", "iris", v)[0].started for v in (1, 2))
    parents = [m for m in api.messages(OPS) if not m.thread_ts or m.thread_ts == m.ts]
    assert len(parents) == 2
    ops = [op.id for op in reversed(running_front.runtime.repos.operations.recent())]

    text, blocks = answer(running_front, f'iris --at "{typed(first + timedelta(minutes=1))}"')
    assert blocks.startswith(f"What served iris at {shown(first + timedelta(minutes=1))}")
    link = f"https://emulated.slack.com/archives/{OPS}/p{parents[0].ts.replace('.', '')}"
    assert (
        f"dev: iris v1 since {shown(first)} until {shown(second)}, switched by <@{ALICE}> in "
        f"operation {ops[0]} · <{link}|its thread>"
    ) in blocks, blocks
    assert f"nothing served iris in prod at {shown(first + timedelta(minutes=1))}." in blocks
    assert "Times in America/New_York" in blocks
    assert "its thread" in text  # the notification says it too
    assert api.responses[-1].body.get("response_type", "ephemeral") == "ephemeral"

    # the zone was asked once for both questions
    text, blocks = answer(running_front, "iris --at now")
    assert f"dev: iris v2 since {shown(second)}, serving still, switched by <@{ALICE}>" in blocks
    assert len(api.calls_to("users.info")) == 1

    # someone who set no zone reads UTC, and is told so
    _, blocks = answer(running_front, "iris --at 2h ago", user=BOB)
    assert " UTC" in blocks and "Times in UTC" in blocks
    assert "The history of what served begins at " in blocks


def test_a_malformed_moment_is_answered_in_the_ack_and_runs_nothing(
    running_front: RunningFront,
) -> None:
    response = running_front.post("/history", "iris --at <!channel> teatime")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert "is not a moment: use an ISO date-time" in body["text"]
    assert "<!channel>" not in body["text"]  # escaped: it pings nobody
    assert 'Usage: `/history [endpoint] [N] [--at "&lt;moment&gt;"]`' in body["text"]
    running_front.drain()
    assert running_front.api.responses == []
    assert running_front.api.calls_to("users.info") == []


def test_a_zone_slack_does_not_give_reads_utc_and_is_asked_again_next_time(
    running_front: RunningFront,
) -> None:
    api = running_front.api
    api.add_user(ALICE, name="alice", tz="Asia/Kolkata")
    api.fail("users.info", "missing_scope")  # an app installed before it asked for users:read
    _, blocks = answer(running_front, 'iris --at "2026-12-01 14:00"')
    assert blocks.startswith("What served iris at 2026-12-01 14:00 UTC")
    assert "Times in UTC" in blocks
    assert "Nothing has been recorded serving yet, so nothing served iris at " in blocks

    _, blocks = answer(running_front, 'iris --at "2026-12-01 14:00"')
    assert blocks.startswith("What served iris at 2026-12-01 14:00 IST")  # 08:30 UTC
    assert "Times in Asia/Kolkata" in blocks
