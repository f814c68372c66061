"""`chatops run --mode http` answers at once: `/healthz` (the process is up) before its worker
process can run commands, `/readyz` 503 until then; a command sent meanwhile is acked within
Slack's 3 s, recorded, and answered once the worker takes work."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import ALICE, bot_environment, post_command
from tests.scenarios.slack.test_run_http import unfinished_jobs
from tests.slack_api.emulator import SlackEmulator

ROOT = Path(__file__).parents[3]


def until(what: str, seen: object, log: Path, timeout: float = 60) -> None:
    assert callable(seen)
    deadline = time.monotonic() + timeout
    while not seen():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}\n{log.read_text()}"
        time.sleep(0.02)


def status_code(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_a_command_sent_while_the_worker_starts_is_acked_at_once_and_answered_once_it_can(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        # a role given as a user group: the worker reads the groups before it takes work
        # (the front never does), and waits there until the test lets it go on
        environments=[
            {"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE, "@ml-admins"]}
        ],
    )
    worker_may_start = slack_api.hold("usergroups.list")
    log = tmp_path / "bot.log"
    base = f"http://127.0.0.1:{low}"
    with open(log, "w") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        until("/healthz 200", lambda: status_code(f"{base}/healthz") == 200, log)
        # the front's door answers first ("the front is starting"), the app once it is built
        until("the app serves", lambda: "the worker" in httpx.get(f"{base}/readyz").text, log)
        readyz = httpx.get(f"{base}/readyz", timeout=2)
        assert readyz.status_code == 503
        assert readyz.json() == {"ready": False, "reason": "the worker process is starting"}

        began = time.perf_counter()
        acked = post_command(f"{base}/slack/events", slack_api, "/mlops", "status public")
        assert acked.status_code == 200, acked.text
        assert time.perf_counter() - began < 3.0
        # recorded, not refused, not answered by anyone yet
        assert unfinished_jobs(tmp_path / "state") == 1, acked.text
        assert slack_api.responses == []
        assert status_code(f"{base}/readyz") == 503

        worker_may_start.set()
        slack_api.wait_for(lambda api: len(api.responses) == 1, timeout=120)
        answer = slack_api.responses[0].body
        assert answer["response_type"] == "in_channel", answer
        assert answer["text"].startswith("No endpoints yet."), answer
        until("/readyz 200", lambda: status_code(f"{base}/readyz") == 200, log)
    finally:
        worker_may_start.set()
        bot.send_signal(signal.SIGINT)
        bot.wait(60)
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"], env=env, cwd=ROOT, capture_output=True
        )
