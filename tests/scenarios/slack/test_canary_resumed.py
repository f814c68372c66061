"""A canary outlives the bot process running it: `chatops run` as deployed, a deploy of iris
v2 baking at 10% beside v1 (with shadow traffic), real requests on the endpoint. Killed with
SIGKILL, the bot is replaced by another that takes the operation over once its lease lapses:
the endpoint split the same way meanwhile (its host outlives the bot), the counts go on, the
step bakes only what is left of it, the card comes back in the deploy's thread, and an
admin's `/mlops canary iris promote` to the new process makes v2 live, told once. A canary
whose operation is not to go on (taken over too often, or too old) gives every request back
to v1 and stops v2 before it ends failed. SIGTERM hands the canary over at once, the split
unchanged, and the next bot goes on with it. A worker dying once the promoted canary moved
every request to v2 leaves v2 live; and when v1 went down with the bot, the thread says why
v2 takes every request at once."""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest

from core.registry.demo import create_demo_model
from tests.scenarios.slack.conftest import OPS, post_command
from tests.scenarios.slack.crash_support import SETOSA, Bot, Op, serving_processes
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.records import Message

pytest_plugins = ["tests.scenarios.slack.crash_support"]

CANARY = "iris v2 --canary 10 --shadow 50"
# an admin promotes (the bake is long); the card is looked at five times a second
DEV = {"name": "dev", "rollout": {"bake_s": 3600}}
LOOK = {"CHATOPS_CANARY_LOOK_S": "0.2"}


@pytest.fixture
def own_registry(tmp_path: Path) -> str:
    """A registry of this test's own: iris v1 and v2."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=tmp_path / "artifacts")
    return uri


def canary_op(bot: Bot) -> Op | None:
    """The deploy of v2 (the one with a canary), as recorded now."""
    return next((op for op in bot.operations() if "--canary" in op["command"]), None)


def wait_canary(bot: Bot, predicate: Callable[[Op], bool], what: str, timeout: float = 120) -> Op:
    found: list[Op] = []

    def seen() -> bool:
        op = canary_op(bot)
        found[:] = [op] if op is not None and predicate(op) else []
        return bool(found)

    bot.wait_until(seen, timeout, what)
    return found[0]


def baking_at_10(op: Op) -> bool:
    return (
        op["state"] == "running" and op["step"] == "canary" and op["remote"].get("canary_at") == 10
    )


def start_canary(bot: Bot, slack_api: SlackEmulator) -> tuple[str, Op]:
    """v1 serving, then v2 in its canary at 10%: the endpoint's URL and the operation."""
    bot.start()
    assert post_command(bot.events_url, slack_api, "/deploy", "iris v1").status_code == 200
    bot.wait_for_op(lambda op: op["state"] == "succeeded", 120, "iris v1 live")
    assert post_command(bot.events_url, slack_api, "/deploy", CANARY).status_code == 200
    op = wait_canary(bot, baking_at_10, "the canary baking at 10%")
    (endpoint,) = bot.rows("endpoints")
    return str(endpoint["url"]), op


def send(url: str, n: int) -> Counter[str]:
    """`n` real requests to the endpoint: which version answered them, and how."""
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            answer = client.post(url, json=SETOSA)
            seen[f"{answer.headers.get('x-model')} {answer.status_code}"] += 1
    return seen


def split_at_10(seen: Counter[str], n: int) -> bool:
    new = seen["iris/2 200"]
    return seen["iris/1 200"] + new == n and abs(new * 100 / n - 10) <= 3


def cards(slack_api: SlackEmulator, op: Op) -> list[Message]:
    """The canary cards in the deploy's thread."""
    parent = op["reply_to"]["ts"]
    return [
        m
        for m in slack_api.messages(OPS)
        if m.thread_ts == parent and m.text.startswith("Canary of iris v2")
    ]


def counted(message: Message) -> list[int]:
    """The requests each version answered, as a card shows them."""
    return [int(n) for n in re.findall(r"(\d+) requests", json.dumps(message.blocks))]


def card_counting(slack_api: SlackEmulator, op: Op, total: int, timeout: float = 60) -> Message:
    """The deploy's card once it shows `total` requests answered by the two versions."""
    found: list[Message] = []

    def shown(api: SlackEmulator) -> bool:
        found[:] = [m for m in cards(api, op) if sum(counted(m)[:2]) == total]
        return bool(found)

    slack_api.wait_for(shown, timeout)
    return found[0]


def live_once(slack_api: SlackEmulator, op: Op) -> None:
    """The deploy's parent message says v2 is live, and its thread tells it once."""
    parent = op["reply_to"]["ts"]
    slack_api.wait_for(
        lambda api: any(
            m.ts == parent and ":white_check_mark:" in m.text and "iris v2 is live at" in m.text
            for m in api.messages(OPS)
        ),
        timeout=30,
    )
    messages = slack_api.messages(OPS)
    live = [m for m in messages if "iris v2 is live at" in m.text]
    assert len(live) == 1, [m.text for m in messages]
    replies = [m.text for m in messages if m.thread_ts == parent]
    assert not [r for r in replies if "unexpected" in r], replies
    resumed = [r for r in replies if "resumed after the bot process running it stopped" in r]
    assert len(resumed) == 1 and "(attempt 2)" in resumed[0], replies


def promote_and_end(bot: Bot, slack_api: SlackEmulator, url: str, op: Op) -> Op:
    """An admin's `/mlops canary iris promote` (signed): v2 goes live, what resumed ends."""
    answered = post_command(bot.events_url, slack_api, "/mlops", "canary iris promote")
    assert answered.status_code == 200, answered.text
    ended = wait_canary(bot, lambda o: o["state"] in ("succeeded", "failed"), "the deploy's end")
    assert (ended["state"], ended["attempts"]) == ("succeeded", 2), (ended, bot.text)
    assert ended["id"] == op["id"]
    assert send(url, 50) == Counter({"iris/2 200": 50})
    live_once(slack_api, ended)
    bot.wait_until(lambda: bot.rows("locks") == [], 10, "the endpoint lock released")
    return ended


def test_a_canary_killed_mid_bake_is_taken_over_where_it_was_and_promoted_by_an_admin(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], own_registry: str
) -> None:
    bot = make_bot(dict(DEV), tracking_uri=own_registry, **LOOK)
    url, op = start_canary(bot, slack_api)
    before = send(url, 400)
    assert split_at_10(before, 400), before
    card_counting(slack_api, op, 400)  # the first process showed what it counted
    since = op["remote"]["canary_since"]
    port = httpx.URL(url).port or 0
    processes = {p.pid for p in serving_processes(port)}
    assert len(processes) == 3  # the host, v1's model server, v2's

    bot.kill9()
    killed = canary_op(bot)
    assert killed is not None and baking_at_10(killed) and killed["attempts"] == 1
    # no bot runs: the endpoint's host still splits the requests as the canary set them
    meanwhile = send(url, 400)
    assert split_at_10(meanwhile, 400), meanwhile

    bot.start()
    resumed = wait_canary(
        bot, lambda o: baking_at_10(o) and o["attempts"] == 2, "the canary taken over"
    )
    # the same step, baking since when it began, not since the takeover
    assert resumed["remote"]["canary_since"] == since
    assert resumed["remote"]["deployment"] == op["remote"]["deployment"]
    # the card is back in the deploy's thread, the counts going on from the first life
    card_counting(slack_api, op, 800)
    assert {p.pid for p in serving_processes(port)} == processes  # nothing started again
    after = send(url, 200)
    assert split_at_10(after, 200), after
    card_counting(slack_api, op, 1000)
    # one card: the process that took over edits the one the first posted, buttons and all
    (shown,) = cards(slack_api, op)
    assert shown.updates > 0

    promote_and_end(bot, slack_api, url, op)
    assert len(serving_processes(port)) == 2  # v1's model server drained and stopped
    audit = sorted((a["action"], a["outcome"]) for a in bot.rows("audit"))
    assert audit == [("canary", "succeeded"), ("deploy", "succeeded"), ("deploy", "succeeded")]


@pytest.mark.parametrize(
    "limit",
    [{"CHATOPS_MAX_ATTEMPTS": "1"}, {"CHATOPS_OPERATION_TIMEOUT_S": "40"}],
    ids=["taken-over-too-often", "too-old"],
)
def test_a_canary_not_to_be_resumed_gives_every_request_back_and_stops_the_new_version(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], own_registry: str, limit: dict[str, str]
) -> None:
    bot = make_bot(dict(DEV), tracking_uri=own_registry, **LOOK, **limit)
    url, op = start_canary(bot, slack_api)
    port = httpx.URL(url).port or 0
    serving = {p.pid for p in serving_processes(port)}
    assert len(serving) == 3  # the host, v1's model server, v2's
    bot.kill9()
    assert split_at_10(send(url, 200), 200)  # two versions share traffic, no bot owns them
    if "CHATOPS_OPERATION_TIMEOUT_S" in limit:
        created = datetime.fromisoformat(op["created_at"]).replace(tzinfo=UTC)
        bot.wait_until(
            lambda: (datetime.now(UTC) - created).total_seconds() > 41, 60, "the operation too old"
        )

    bot.start()
    ended = wait_canary(bot, lambda o: o["state"] in ("succeeded", "failed"), "the deploy's end")
    assert ended["state"] == "failed", (ended, bot.text)
    assert "not resumed" in ended["error"], ended
    # every request back to v1, v2's model server gone, v1's untouched
    assert send(url, 200) == Counter({"iris/1 200": 200})
    left = {p.pid for p in serving_processes(port)}
    assert len(left) == 2 and left < serving, (left, serving)
    (endpoint,) = bot.rows("endpoints")
    assert endpoint["version"] == 1
    bot.wait_until(lambda: bot.rows("locks") == [], 10, "the endpoint lock released")

    # the thread tells how it ended, truthfully: v2 had taken a share, now given back
    parent = ended["reply_to"]["ts"]

    def told() -> list[str]:
        return [
            m.text
            for m in slack_api.messages(OPS)
            if m.thread_ts == parent and m.text.startswith(":x: failed: not resumed")
        ]

    slack_api.wait_for(lambda _api: told(), timeout=30)
    (said,) = told()
    assert "Nothing it may have started took traffic" not in said, said
    assert (
        "In its canary v2 answered 10% of the requests beside v1: every request went back to "
        "v1, and v2 was stopped." in said
    ), said
    assert "iris v1 still serves" in said, said


def test_sigterm_mid_canary_hands_it_over_at_once_and_the_next_bot_goes_on(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], own_registry: str
) -> None:
    # the lease is long: a takeover that comes sooner did not wait for it to lapse; and the
    # first bot looks at its canary every 60 s: a stop that comes sooner did not wait for it
    bot = make_bot(dict(DEV), tracking_uri=own_registry, CHATOPS_CANARY_LOOK_S="60")
    bot.env["CHATOPS_LEASE_S"] = "60"
    url, op = start_canary(bot, slack_api)
    assert split_at_10(send(url, 200), 200)

    assert bot.proc is not None
    asked = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)  # the front alone, as Kubernetes signals it
    assert bot.proc.wait(60) == 0, bot.text
    assert time.monotonic() - asked < 20, bot.text
    bot.proc = None
    left = canary_op(bot)
    assert left is not None and baking_at_10(left) and left["attempts"] == 1, left
    ends = datetime.fromisoformat(left["lease_expires_at"]).replace(tzinfo=UTC)
    assert ends <= datetime.now(UTC), left  # its lease ended on the way out
    assert split_at_10(send(url, 200), 200)  # the split unchanged meanwhile

    bot.env.update(LOOK)
    bot.start()
    resumed = wait_canary(
        bot, lambda o: baking_at_10(o) and o["attempts"] == 2, "the canary taken over", 30
    )
    assert resumed["remote"]["canary_since"] == op["remote"]["canary_since"]
    card_counting(slack_api, op, 400)
    promote_and_end(bot, slack_api, url, op)
    assert "unexpected" not in bot.text, bot.text


def test_a_canary_whose_serving_version_died_with_the_bot_says_why_it_switches_at_once(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], own_registry: str
) -> None:
    bot = make_bot(dict(DEV), tracking_uri=own_registry, **LOOK)
    url, _ = start_canary(bot, slack_api)
    port = httpx.URL(url).port or 0
    hosts = serving_processes(port)
    bot.kill9()
    for process in hosts:  # the machine went down: the endpoint's host and servers too
        process.kill()
    psutil.wait_procs(hosts, timeout=10)

    bot.start()
    ended = wait_canary(bot, lambda o: o["state"] in ("succeeded", "failed"), "the deploy's end")
    assert (ended["state"], ended["attempts"]) == ("succeeded", 2), (ended, bot.text)
    assert send(url, 20) == Counter({"iris/2 200": 20})
    parent = ended["reply_to"]["ts"]
    slack_api.wait_for(
        lambda api: any(m.ts == parent and "iris v2 is live" in m.text for m in api.messages(OPS)),
        timeout=30,
    )
    replies = [m.text for m in slack_api.messages(OPS) if m.thread_ts == parent]
    told = [r for r in replies if "no canary any more" in r]
    assert told == [
        ":small_blue_diamond: no canary any more: iris v1, beside which v2 answered 10% of the "
        "requests, is down (it stopped with the bot process running the canary), so v2 takes "
        "every request at the switch"
    ], replies


def test_a_worker_dying_once_a_promoted_canary_switched_leaves_the_new_version_live(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], own_registry: str, tmp_path: Path
) -> None:
    points = tmp_path / "points"
    points.mkdir()
    bot = make_bot(dict(DEV), tracking_uri=own_registry, CHATOPS_FAILPOINTS=str(points), **LOOK)
    url, op = start_canary(bot, slack_api)
    # the worker dies once v2 took every request, before that was recorded
    (points / "traffic.switched").touch()
    answered = post_command(bot.events_url, slack_api, "/mlops", "canary iris promote")
    assert answered.status_code == 200, answered.text
    bot.wait_until(lambda: not (points / "traffic.switched").exists(), 60, "the worker dying")

    ended = wait_canary(bot, lambda o: o["state"] in ("succeeded", "failed"), "the deploy's end")
    assert (ended["state"], ended["attempts"]) == ("succeeded", 2), (ended, bot.text)
    # the next worker went on with the switch, not with the canary v2 had left behind it
    assert send(url, 50) == Counter({"iris/2 200": 50})
    (endpoint,) = bot.rows("endpoints")
    assert (endpoint["version"], endpoint["deployment"]) == (2, op["remote"]["deployment"])
    live_once(slack_api, ended)
