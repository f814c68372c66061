"""What the bot owes people is said exactly once, whatever moment its worker dies: `chatops
run` as deployed (front and worker), a fail point armed in the running worker (it dies there
with `os._exit`, as in a crash), the front starting the next worker, which takes over. After
each death: every operation ended with one final word in its thread and one audit row,
nothing is left locked or unsent, every command was answered once. On SQLite with one
front, and on PostgreSQL with two fronts (either one's worker may take the work over)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from core.failpoints import POINTS
from emulators.cml import RunningEmulator
from tests.db import postgres_schema
from tests.scenarios.slack.conftest import OPS, post_command
from tests.scenarios.slack.crash_support import CML_KEY_VAR, Bot, cml_environment
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["tests.scenarios.slack.crash_support"]

# (where the worker dies, what is asked, how it ends)
DEPLOYS = [
    ("step.recorded", "/deploy iris v1", "succeeded"),  # the next worker resumes it
    ("operation.ended", "/deploy iris v2", "succeeded"),  # it ended; the next worker tells it
    ("operation.told", "/deploy iris v1", "succeeded"),  # told; told again, in place
    ("operation.ended", "/deploy iris v3", "failed"),  # v3 cannot be loaded
    ("operation.told", "/deploy iris v3", "failed"),  # told; told again, its reply not reposted
    ("operation.ended", "/rollback iris", "succeeded"),  # back to v2
    ("operation.ended", "/stop iris", "succeeded"),
]
# (where the worker dies, what is asked)
ANSWERS = [
    ("answer.recorded", "status"),  # recorded, not sent: the next worker sends it
    ("job.answered", "status"),  # answered, the job not ended: taken again, says nothing new
    ("answer.recorded", "scale nosuch 2cpu"),  # a refusal, recorded, not sent
]


def worker_of(bot: Bot) -> int | None:
    assert bot.proc is not None
    for child in psutil.Process(bot.proc.pid).children():
        try:
            if "bot.slack.worker" in " ".join(child.cmdline()):
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return None


def ready(bot: Bot) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{bot.port}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def die_at(bots: list[Bot], points: Path, point: str, ask: Callable[[], None]) -> None:
    """Arm `point` in the running workers, ask, and wait until the worker that reached it
    died there and its front started the next one."""
    assert point in POINTS
    first = bots[0]
    first.wait_until(lambda: all(ready(b) and warm(b) for b in bots), 90, "the fronts ready")
    workers = [worker_of(b) for b in bots]
    (points / point).touch()
    ask()
    first.wait_until(lambda: not (points / point).exists(), 120, f"a worker reaching {point}")
    for bot in bots:
        assert bot.proc is not None and bot.proc.poll() is None, bot.text  # fronts live on
    first.wait_until(
        lambda: (
            all(worker_of(b) is not None for b in bots) and [worker_of(b) for b in bots] != workers
        ),
        60,
        "the next worker",
    )
    # and warm: each worker logs its readiness once it is (a test asking of a worker that
    # is still warming kills it there, three times in a row makes its front unready)
    first.wait_until(lambda: all(warm(b) for b in bots), 90, "the next worker warm")


def warm(bot: Bot) -> bool:
    """Whether the bot's worker now is warm: every worker logs its readiness once it is,
    and its front logs each one that exited."""
    log = bot.text
    return log.count("chatops.check Readiness") > log.count("the worker process exited")


def settled(bot: Bot) -> bool:
    """Nothing runs, waits or is owed."""
    busy = [op for op in bot.operations() if op["state"] in ("queued", "running")]
    jobs = [j for j in bot.rows("jobs") if j["state"] in ("queued", "running")]
    unsent = [row for row in bot.rows("outbox") if row["state"] != "sent"]
    return not busy and not jobs and not unsent


def is_failure(text: str) -> bool:
    """Whether a thread reply is a failure's broadcast."""
    return text.startswith(":x: failed")


def finals(slack_api: SlackEmulator) -> list[str]:
    """Final words in the operations' threads: their parents' last state, failure replies."""
    said = []
    for message in slack_api.messages(OPS):
        parent = message.thread_ts is None
        ended = ("is live at", "is stopped", ":x:")
        if (parent and any(word in message.text for word in ended)) or (
            not parent and is_failure(message.text)
        ):
            said.append(message.text)
    return said


def deploys_end_once(
    bots: list[Bot],
    slack_api: SlackEmulator,
    points: Path,
    deploys: list[tuple[str, str, str]],
) -> None:
    """Each operation asked of the first front, its worker dying at the point named; checked
    after each: one final word and one audit row per operation, nothing locked or unsent."""
    bot = bots[0]
    for n, (point, line, state) in enumerate(deploys, 1):

        def deploy(line: str = line) -> None:
            command, text = line.split(" ", 1)
            assert post_command(bot.events_url, slack_api, command, text).status_code == 200

        die_at(bots, points, point, deploy)
        bot.wait_until(
            lambda n=n: len(bot.operations()) == n and settled(bot), 180, f"{line} to end"
        )
        ops = sorted(bot.operations(), key=lambda op: op["created_at"])
        assert ops[-1]["state"] == state, (point, line, bot.text)
        # one final word per operation: each succeeded parent says live once, each failure
        # has its parent and one broadcast reply
        said = finals(slack_api)
        failed = [op for op in ops if op["state"] == "failed"]
        assert len(said) == len(ops) + len(failed), (point, said)
        audited = [row["operation_id"] for row in bot.rows("audit") if row["operation_id"]]
        assert sorted(audited) == sorted(op["id"] for op in ops), (point, audited)
        assert bot.rows("locks") == [], point
        owed = [row for row in bot.rows("outbox") if row["kind"] == "final"]
        assert len(owed) == n and {row["state"] for row in owed} == {"sent"}, owed
        # each failure's broadcast reply is in its own thread once, carrying the id it was
        # owed as, even when it was told again after it was posted
        replies = [m for m in slack_api.messages(OPS) if m.thread_ts and is_failure(m.text)]
        assert sorted(Counter(m.thread_ts for m in replies).values()) == [1] * len(failed)
        failed_ids = {op["id"] for op in failed}
        tagged = [(m.metadata or {}).get("event_payload", {}).get("owed") for m in replies]
        assert sorted(tagged) == sorted(r["id"] for r in owed if r["operation_id"] in failed_ids)
        assert "Something unexpected" not in json.dumps([m.text for m in slack_api.messages(OPS)])


def commands_answered_once(bots: list[Bot], slack_api: SlackEmulator, points: Path) -> None:
    """Each of ANSWERS asked of the first front, its worker dying at the point named: one
    answer each, and none after."""
    bot = bots[0]
    for n, (point, line) in enumerate(ANSWERS, 1):

        def ask(line: str = line) -> None:
            assert post_command(bot.events_url, slack_api, "/mlops", line).status_code == 200

        die_at(bots, points, point, ask)
        bot.wait_until(
            lambda n=n: len(slack_api.responses) >= n and settled(bot), 120, f"{line} answered"
        )
        answers = [r.body.get("text", "") for r in slack_api.responses]
        assert len(answers) == n, (point, answers)
        assert "Something unexpected" not in "".join(answers)
    *_, refusal = slack_api.responses
    assert "nosuch" in refusal.body["text"], refusal.body
    # nothing is told after the end either: a later command is the next answer
    assert post_command(bot.events_url, slack_api, "/mlops", "status").status_code == 200
    bot.wait_until(lambda: settled(bot) and len(slack_api.responses) > 3, 60, "status answered")
    # with every job ended and nothing owed, nothing more can come
    assert len(slack_api.responses) == 4


@pytest.fixture
def points(tmp_path: Path) -> Path:
    """Where the tests arm fail points (CHATOPS_FAILPOINTS)."""
    (tmp_path / "points").mkdir()
    return tmp_path / "points"


@pytest.fixture
def one_front(make_bot: Callable[..., Bot], registry_uri: str, points: Path) -> Bot:
    """`chatops run` on SQLite with one local environment, its fail points armable."""
    bot = make_bot({"name": "dev"}, tracking_uri=registry_uri, CHATOPS_FAILPOINTS=str(points))
    bot.start()
    return bot


def test_each_deploy_ends_with_one_final_word_and_one_audit_row_whenever_its_worker_dies(
    slack_api: SlackEmulator, one_front: Bot, points: Path
) -> None:
    deploys_end_once([one_front], slack_api, points, DEPLOYS)


def test_each_command_is_answered_once_whenever_its_worker_dies(
    slack_api: SlackEmulator, one_front: Bot, points: Path
) -> None:
    commands_answered_once([one_front], slack_api, points)


def test_two_fronts_on_postgresql_tell_each_end_and_answer_each_command_once(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bots do
    make_bot: Callable[..., Bot],
    registry_uri: str,
    points: Path,
) -> None:
    with postgres_schema() as url:
        bots = [
            make_bot(
                cml_environment(cml),
                tracking_uri=registry_uri,
                name=name,
                CHATOPS_DATABASE_URL=url,
                CHATOPS_FAILPOINTS=str(points),
                **{CML_KEY_VAR: cml.api_key},
            )
            for name in ("a", "b")
        ]
        for bot in bots:
            bot.start()
        deploys_end_once(
            bots,
            slack_api,
            points,
            [
                ("step.recorded", "/deploy iris v1", "succeeded"),
                ("operation.ended", "/deploy iris v2", "succeeded"),
                ("operation.told", "/rollback iris", "succeeded"),
            ],
        )
        commands_answered_once(bots, slack_api, points)
        for bot in bots:
            bot.stop()
