"""The watch window after a switch, in Slack: real endpoints whose model servers are killed,
an automatic rollback told in the deploy's thread and to on-call, audited; an endpoint that
goes down between rollouts announced once with a Roll back button that only admins can use.
Time moves by the test's clock: each `tick` is one round of the watcher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.slack.intake.work import Work
from bot.slack.posting.oncall import OnCall
from bot.slack.posting.poster import Poster, web_client
from core.config import Settings
from core.oncall.watching import CHECK_S, Watcher
from core.store.models import WatchState
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    OPS,
    RunningFront,
    texts,
)
from tests.scenarios.watch_support import IRIS, kill_serving
from tests.slack_api.emulator import SlackEmulator

ONCALL, BOB = "C0ONCALL", "U0BOB"


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri)
    for env in base.environments:
        env.admins, env.developers = [ALICE], [BOB]
    return base


@pytest.fixture(autouse=True)
def oncall_channel(slack_api: SlackEmulator) -> None:
    slack_api.add_channel(ONCALL, name="oncall", member=True)
    slack_api.add_user(BOB, name="bob")


@pytest.fixture
def watcher(running_front: RunningFront) -> Iterator[Watcher]:
    """What a bot's worker process runs: rollbacks reported in their Slack threads."""
    runtime, api = running_front.runtime, running_front.api
    poster = Poster(web_client(token=BOT_TOKEN, base_url=api.api_url))
    work = Work(runtime=runtime, poster=poster, min_interval=0.3)
    fronts = frozenset({"", "slack"})
    runner = runtime.worker(reporter_for=work.reporter_for, fronts=fronts)
    alerts = OnCall(poster=poster, channel=ONCALL, people=work.people)
    watching = runtime.watcher(alerts=alerts, runner=runner, fronts=fronts, scan_s=CHECK_S)
    yield watching
    watching.stop()


def deployed(front: RunningFront, *lines: str) -> None:
    for line in lines:
        front.post("/mlops", line)
        front.drain()
        assert "is live at http://127.0.0.1:" in texts(front.api.messages(OPS))


def rounds(watcher: Watcher, clock: FakeClock, n: int, seconds: float = CHECK_S) -> None:
    for _ in range(n):
        clock.advance(seconds)
        watcher.tick()


def thread_of(api: SlackEmulator, channel: str, text: str) -> list[str]:
    (parent,) = [m for m in api.messages(channel) if text in m.text and m.thread_ts is None]
    return [m.text for m in api.messages(channel) if m.thread_ts == parent.ts]


def click_rollback(front: RunningFront, user: str, message_ts: str, value: str) -> None:
    answer = front.click(
        user,
        action_id="rollback",
        value=value,
        message_ts=message_ts,
        block_id="rollback-dev-iris",
        channel=ONCALL,
    )
    assert answer.status_code == 200
    front.drain()


def test_a_version_that_goes_down_in_its_watch_is_rolled_back_by_itself(
    running_front: RunningFront, watcher: Watcher, clock: FakeClock
) -> None:
    runtime, api = running_front.runtime, running_front.api
    deployed(running_front, "deploy iris v1", "deploy iris v2")
    watcher.tick()  # the first check of v2: healthy
    assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]

    kill_serving(runtime, 2)
    rounds(watcher, clock, 1)  # down once: not yet judged
    assert not api.messages(ONCALL)
    rounds(watcher, clock, 1)  # down twice in a row: rolled back
    assert watcher.settle(120)

    serving = runtime.repos.endpoints.get("dev", "iris")
    assert serving is not None and serving.version == 1
    assert runtime.targets["dev"].health(IRIS).up
    thread = "\n".join(thread_of(api, OPS, "deploying iris v2 to dev"))
    assert ":rotating_light: iris in dev: iris v2 was down at 2 checks in a row" in thread
    assert "Rolling back to v1 by itself (op-" in thread
    assert "chatops is rolling iris in dev back from v2 to v1 by itself" in thread
    assert "iris v1 is live at http://127.0.0.1:" in thread

    (told,) = [m for m in api.messages(ONCALL) if m.thread_ts is None]
    assert told.text.startswith(":rotating_light: iris in dev: iris v2 was down at 2 checks")
    (parent,) = [
        m for m in api.messages(OPS) if "deploying iris v2 to dev" in m.text and m.thread_ts is None
    ]
    link = f"https://emulated.slack.com/archives/{OPS}/p{parent.ts.replace('.', '')}"
    assert f"<{link}|Its thread> is in <#{OPS}>." in told.text  # on-call opens it in a click
    (ended,) = [m.text for m in api.messages(ONCALL) if m.thread_ts == told.ts]
    assert ended.startswith(":white_check_mark: iris in dev is rolled back: iris v1 is live at")

    (row,) = [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
    assert (row.actor_name, row.outcome, row.endpoint) == ("chatops", "succeeded", "iris")
    assert row.command.startswith("automatic rollback of iris in dev (its watch after op-")
    exported = json.loads(runtime.deployer.audit.export(fmt="json"))
    assert [e["action"] for e in exported].count("auto-rollback") == 1
    (watch, *_) = runtime.repos.watches.of("dev", "iris")
    assert watch.state == WatchState.ROLLED_BACK and watch.version == 2

    rounds(watcher, clock, 3)  # the rollback asked by itself is not watched in turn
    assert runtime.repos.endpoints.get("dev", "iris").version == 1  # type: ignore[union-attr]
    assert len([m for m in api.messages(ONCALL) if m.thread_ts is None]) == 1


def test_a_clean_window_says_so_in_the_thread_and_rolls_nothing_back(
    running_front: RunningFront, watcher: Watcher, clock: FakeClock
) -> None:
    runtime, api = running_front.runtime, running_front.api
    deployed(running_front, "deploy iris v1", "deploy iris v2")
    watcher.tick()
    rounds(watcher, clock, 2)
    assert not any("watch" in t for t in thread_of(api, OPS, "deploying iris v2 to dev"))

    rounds(watcher, clock, 1, seconds=300)  # the window (watch_s, 5 min) is over
    assert thread_of(api, OPS, "deploying iris v2 to dev")[-1] == (
        ":white_check_mark: iris v2 served healthy through its 5 min watch: nothing to roll back."
    )
    assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]
    assert not api.messages(ONCALL)
    assert not [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
    states = [w.state for w in runtime.repos.watches.of("dev", "iris")]
    assert states == [WatchState.CLEAN, WatchState.SUPERSEDED]  # v2's, then v1's


def test_a_frozen_endpoint_is_not_rolled_back_and_on_call_hears_why(
    running_front: RunningFront, watcher: Watcher, clock: FakeClock
) -> None:
    runtime, api = running_front.runtime, running_front.api
    deployed(running_front, "deploy iris v1", "deploy iris v2")
    running_front.post("/mlops", "lock iris because the data team is migrating")
    running_front.drain()
    watcher.tick()
    kill_serving(runtime, 2)
    rounds(watcher, clock, 2)
    assert watcher.settle(10)

    assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]
    (told,) = [m.text for m in api.messages(ONCALL)]
    assert "iris v2 was down at 2 checks in a row" in told
    assert f"It was not rolled back by itself, because iris in dev is frozen by <@{ALICE}>" in told
    assert "the data team is migrating" in told
    thread = "\n".join(thread_of(api, OPS, "deploying iris v2 to dev"))
    assert "It was not rolled back by itself" in thread
    (row,) = [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
    assert row.outcome == "refused"


def test_an_endpoint_down_between_rollouts_is_announced_once_with_a_roll_back_button(
    running_front: RunningFront, watcher: Watcher, clock: FakeClock
) -> None:
    runtime, api = running_front.runtime, running_front.api
    deployed(running_front, "deploy iris v1", "deploy iris v2")
    watcher.tick()
    rounds(watcher, clock, 1, seconds=301)  # the watch ends clean
    kill_serving(runtime, 2)
    rounds(watcher, clock, 4)  # down at every check: announced once

    (down,) = api.messages(ONCALL)
    assert down.text.startswith(":red_circle: iris in dev is down (")
    assert "It serves iris v2. An admin can roll it back to v1" in down.text
    (actions,) = [b for b in down.blocks if b["type"] == "actions"]
    (button,) = actions["elements"]
    assert (button["action_id"], button["text"]["text"]) == ("rollback", "Roll back")
    assert "back from v2 to v1" in button["confirm"]["text"]["text"]
    assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]

    click_rollback(running_front, BOB, down.ts, button["value"])
    assert api.responses[-1].body["text"].startswith("only admins of dev can rollback")
    assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]

    click_rollback(running_front, ALICE, down.ts, button["value"])
    assert runtime.repos.endpoints.get("dev", "iris").version == 1  # type: ignore[union-attr]
    replies = [m.text for m in api.messages(ONCALL) if m.thread_ts == down.ts]
    assert any(f"<@{ALICE}> is rolling iris in dev back from v2 to v1" in r for r in replies)
    assert any("iris v1 is live at http://127.0.0.1:" in r for r in replies)
    audited = [e for e in runtime.repos.audit.entries() if e.action == "rollback"]
    assert [(e.actor_id, e.outcome) for e in audited] == [(ALICE, "succeeded"), (BOB, "refused")]

    rounds(watcher, clock, 1)  # v1 serves: the announcement loses its button
    (down,) = [m for m in api.messages(ONCALL) if m.thread_ts is None]
    assert not [b for b in down.blocks if b["type"] == "actions"]
    assert "iris in dev serves iris v1 now." in json.dumps(down.blocks)

    click_rollback(running_front, ALICE, down.ts, button["value"])  # a late second click
    assert "no longer serves v2 (it serves v1 now)" in api.responses[-1].body["text"]
    assert runtime.repos.endpoints.get("dev", "iris").version == 1  # type: ignore[union-attr]


def test_the_watch_never_goes_back_to_the_version_an_admin_rolled_back_from(
    running_front: RunningFront, watcher: Watcher, clock: FakeClock
) -> None:
    runtime, api = running_front.runtime, running_front.api
    deployed(running_front, "deploy iris v1", "deploy iris v2", "rollback iris")
    assert runtime.repos.endpoints.get("dev", "iris").version == 1  # type: ignore[union-attr]
    watcher.tick()  # the watch of v1, after the admin's rollback
    kill_serving(runtime, 1)
    rounds(watcher, clock, 2)
    assert watcher.settle(10)

    assert runtime.repos.endpoints.get("dev", "iris").version == 1  # type: ignore[union-attr]
    (told,) = [m.text for m in api.messages(ONCALL)]
    assert told.startswith(":rotating_light: iris in dev: iris v1 was down at 2 checks in a row")
    assert f"v2, which served before it, is what <@{ALICE}> rolled back from (op-" in told
    assert "An admin decides what serves now" in told
    thread = "\n".join(thread_of(api, OPS, "rolling iris in dev back from v2 to v1"))
    assert "It was not rolled back by itself: v2, which served before it" in thread
    (row,) = [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
    assert (row.actor_name, row.outcome) == ("chatops", "refused")
    (watch, *_) = runtime.repos.watches.of("dev", "iris")
    assert (watch.version, watch.state) == (1, WatchState.FAILED)
