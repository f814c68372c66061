"""`chatops run --mode socket` as a new admin first runs it, against Slack's Socket Mode server
(played by the `websockets` library on loopback; the Web API emulator's
`apps.connections.open` hands out its URL): every kind of envelope acknowledged within Slack's
3 s, and a connection ended by Slack, or lost, replaced without an envelope handled twice."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import ALICE, BOT_TOKEN, OPS, bot_environment
from tests.scenarios.slack.crash_support import ROOT, Bot
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.socket_mode import SocketModeServer

SLACK_DEADLINE_S = 3.0  # Slack gives up on an envelope not acknowledged by then


@pytest.fixture
def socket_server(slack_api: SlackEmulator) -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    slack_api.socket_url = server.url
    yield server
    server.stop()


def slash(command: str, text: str, trigger: str) -> dict[str, Any]:
    return {
        "command": command,
        "text": text,
        "user_id": ALICE,
        "user_name": "alice",
        "channel_id": OPS,
        "channel_name": "ops",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "response_url": "",
        "trigger_id": trigger,
    }


def click(request: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": ALICE, "username": "alice"},
        "api_app_id": "A0001",
        "team": {"id": "T0001"},
        "trigger_id": "1.2.3",
        "channel": {"id": OPS, "name": "ops"},
        "response_url": "",
        "actions": [
            {
                "action_id": "approve",
                "block_id": f"decide-{request}",
                "value": request,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def event(event_id: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": inner,
    }


def mention(text: str) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    return {
        "type": "app_mention",
        "user": ALICE,
        "text": f"<@UBOT> {text}",
        "ts": ts,
        "channel": OPS,
    }


def dm(text: str) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    return {
        "type": "message",
        "channel_type": "im",
        "user": ALICE,
        "text": text,
        "ts": ts,
        "channel": "D0ALICE",
    }


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def test_socket_mode_acks_every_envelope_and_survives_losing_its_connection(
    slack_api: SlackEmulator, socket_server: SocketModeServer, registry_uri: str, tmp_path: Path
) -> None:
    server = socket_server
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
    )
    env["SLACK_APP_TOKEN"] = slack_api.app_token
    env.pop("SLACK_SIGNING_SECRET")  # Socket Mode needs none: the socket is the app's own
    bot = Bot(env=env, state_dir=tmp_path / "state", log=tmp_path / "bot.log", port=low)
    with open(bot.log, "w") as out:
        bot.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "socket"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    front = psutil.Process(bot.proc.pid)
    waited: dict[str, float] = {}  # what the bot made Slack wait, by moment: seconds
    gaps: dict[str, float] = {}  # from a connection's end to its replacement: seconds
    busy: dict[str, float] = {}  # the front's CPU time over that gap / the gap

    def ack(what: str, kind: str, payload: dict[str, Any], **extra: Any) -> None:
        envelope_id = server.send(kind, payload, **extra)
        try:
            waited[what] = server.wait_ack(envelope_id, timeout=10)
        except AssertionError:
            waited[what] = float("inf")

    def replaced(what: str, count: int, end: Any) -> None:
        began, cpu = time.monotonic(), cpu_s(front)
        end()
        try:
            link = server.wait_connections(count, timeout=60)
            gaps[what] = link.opened_at - began
        except AssertionError:
            gaps[what] = float("inf")
        busy[what] = (cpu_s(front) - cpu) / max(time.monotonic() - began, 1e-3)

    try:
        server.wait_connections(1, timeout=90)
        assert [c.error for c in slack_api.calls_to("apps.connections.open")] == [None]
        ack(
            "slash command",
            "slash_commands",
            slash("/deploy", "iris v1", "t1"),
            accepts_response_payload=True,
        )
        ack("button click", "interactive", click("r-unknown"))
        ack("app_mention", "events_api", event("Ev1", mention("status")), retry_attempt=0)
        ack("DM", "events_api", event("Ev2", dm("help")), retry_attempt=0)

        replaced("refresh_requested", 2, lambda: server.disconnect("refresh_requested"))
        ack(
            "first after refresh_requested",
            "slash_commands",
            slash("/mlops", "status public", "t2"),
            accepts_response_payload=True,
        )

        replaced("link_disabled", 3, lambda: server.disconnect("link_disabled"))
        ack("first after link_disabled", "events_api", event("Ev3", mention("history")))

        replaced("dropped (no close frame)", 4, server.drop)
        # Slack redelivers what it had no ack for; Ev1 was handled, so it is acked, not rerun
        ack(
            "first after a drop",
            "events_api",
            event("Ev1", mention("status")),
            retry_attempt=1,
            retry_reason="timeout",
        )

        replaced("silent (no pong)", 5, server.go_silent)
        ack(
            "first after silence",
            "slash_commands",
            slash("/deploy", "iris v1", "t1"),
            accepts_response_payload=True,
        )  # the first /deploy again: not a second operation
    finally:
        figures = {**waited, **{f"gap {k}": v for k, v in gaps.items()}}
        figures |= {f"cpu {k}": v for k, v in busy.items()}
        print("\n".join(f"{k}: {v:.3f}" for k, v in figures.items()))
        bot.stop()

    late = {what: s for what, s in waited.items() if not s < SLACK_DEADLINE_S}
    assert late == {}, (late, bot.text)
    assert all(gap < 15 for gap in gaps.values()), gaps
    # waiting out a lost connection costs the front no core (a spinning reader costs one)
    lost = {what: busy[what] for what in ("dropped (no close frame)", "silent (no pong)")}
    assert all(share < 0.3 for share in lost.values()), busy
    calls = slack_api.calls_to("apps.connections.open")
    assert len(calls) == 5 and all(c.token == slack_api.app_token for c in calls)
    # one job per delivery: the redelivered event and the repeated trigger ran once
    keys = [row["key"] for row in bot.rows("jobs")]
    clicks = [key for key in keys if key.startswith("action:")]
    assert len(clicks) == 1
    others = ["command:t1", "command:t2", "event:Ev1", "event:Ev2", "event:Ev3"]
    assert sorted(set(keys) - set(clicks)) == others and len(keys) == 6
    assert len(bot.operations()) == 1
    assert BOT_TOKEN not in bot.text and slack_api.app_token not in bot.text
