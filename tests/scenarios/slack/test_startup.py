"""`chatops run` whose worker cannot run commands (a corrupt state database, a CML key that is
not set) says why and exits 2 at once, instead of acking what nobody will run (its port,
served while the worker started, is closed)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    SIGNING_SECRET,
    bot_environment,
)
from tests.slack_api.emulator import SlackEmulator

ROOT = Path(__file__).parents[3]


def run_bot(env: dict[str, str]) -> tuple[int, str, float]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - began


def test_a_missing_cml_key_stops_the_bot_with_the_reason(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        environments=[
            {
                "name": "dev",
                "target": "cml",
                "url": "http://127.0.0.1:9/",
                "api_key_env": "CHATOPS_TEST_UNSET_CML_KEY",
                "project_id": "p1",
                "admins": [ALICE],
            }
        ],
    )
    env.pop("CHATOPS_TEST_UNSET_CML_KEY", None)
    code, said, took = run_bot(env)
    assert code == 2, said
    assert "cannot start: the worker process cannot run commands: " in said
    assert "CHATOPS_TEST_UNSET_CML_KEY" in said
    assert took < 60
    # one worker tried, not a loop of them; the port it served meanwhile is closed
    assert said.count("the worker cannot start") == 1, said
    try:
        httpx.get(f"http://127.0.0.1:{low}/healthz", timeout=1)
        raise AssertionError("something still answers on the bot's port")
    except httpx.ConnectError:
        pass
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in said


def test_a_corrupt_state_database_stops_the_bot_with_the_reason(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    low, _ = free_port_range()
    state = tmp_path / "state"
    state.mkdir()
    (state / "chatops.db").write_bytes(b"this is not a database\n" * 512)
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=state,
        tracking_uri=registry_uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
    )
    code, said, took = run_bot(env)
    assert code == 2, said
    expected = "cannot start: could not migrate the state database: DatabaseError"
    assert said.startswith(expected), said
    assert took < 60
    assert "bot.slack.worker" not in said and "Slack HTTP mode on" not in said


def test_a_worker_that_cannot_start_is_retried_with_a_growing_pause_and_the_front_says_why(
    tmp_path: Path,
) -> None:
    from bot.slack.intake.dispatch import WorkerProcess
    from core.store.jobs import JobQueue

    pauses: list[float] = []
    stopped = threading.Event()

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        if len(pauses) < 4:
            return False  # start the next one now
        stopped.set()
        return True

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["CHATOPS_STATE_DIR"] = str(tmp_path / "state")
    queue = JobQueue.open(f"sqlite:///{tmp_path / 'state' / 'chatops.db'}")
    worker = WorkerProcess(queue=queue, env=env, pause=pause)
    assert worker.start() == "SLACK_BOT_TOKEN is not set"
    assert stopped.wait(120)
    worker.close()
    # never a tight loop: each start that failed quickly doubles the pause before the next
    assert pauses == [1.0, 2.0, 4.0, 8.0]
    assert worker.starts == 4
    assert worker.unready == "SLACK_BOT_TOKEN is not set"


def test_a_slack_mode_without_its_token_says_which_and_shows_no_traceback(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
    )
    env.pop("SLACK_BOT_TOKEN")
    for mode in ("http", "socket"):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "run", "--mode", mode],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert "cannot start: SLACK_BOT_TOKEN is not set" in said
        assert "Traceback" not in said and "AssertionError" not in said, said
