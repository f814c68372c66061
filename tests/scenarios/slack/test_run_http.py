"""`chatops run` in HTTP mode as deployed: a front process that acks, a worker process that
runs, both configured only through the environment."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    OPS,
    SIGNING_SECRET,
    bot_environment,
    post_command,
)
from tests.slack_api.emulator import SlackEmulator

ROOT = Path(__file__).parents[3]


def test_chatops_run_serves_slack_over_http_with_a_worker_process(
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
    log = tmp_path / "bot.log"
    with open(log, "w") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{low}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                healthy = httpx.get(f"{base}/healthz").json()["mode"] == "http"
                if healthy and httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert bot.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"{base}/slack/events"
        began = time.perf_counter()
        assert post_command(url, slack_api, "/deploy", "iris v1").status_code == 200
        assert time.perf_counter() - began < 1.0
        slack_api.wait_for(
            lambda api: any("is live at" in m.text for m in api.messages(OPS)), timeout=60
        )
        post_command(url, slack_api, "/mlops", "status public")
        slack_api.wait_for(lambda api: len(api.responses) == 1)
        assert "iris" in slack_api.responses[0].body["text"]

        # the worker dies once it ended the job (a death while it answers is the fail
        # points' test): the front starts another at the next command, which still runs
        deadline = time.monotonic() + 30
        while unfinished_jobs(tmp_path / "state"):
            assert time.monotonic() < deadline, "the status job never ended"
            time.sleep(0.05)
        (worker,) = [
            p
            for p in psutil.Process(bot.pid).children()
            if "bot.slack.worker" in " ".join(p.cmdline())
        ]
        worker.kill()
        deadline = time.monotonic() + 30
        while not [
            p
            for p in psutil.Process(bot.pid).children()
            if p.pid != worker.pid and "bot.slack.worker" in " ".join(p.cmdline())
        ]:
            assert time.monotonic() < deadline, "no new worker was started"
            time.sleep(0.05)
        again = post_command(url, slack_api, "/mlops", "status public")
        assert again.status_code == 200, again.text
        slack_api.wait_for(lambda api: len(api.responses) == 2, timeout=120)
        assert "iris" in slack_api.responses[1].body["text"]
    finally:
        bot.send_signal(signal.SIGINT)
        bot.wait(30)
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
    text = log.read_text()
    assert "Slack HTTP mode on 127.0.0.1" in text
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in text


def unfinished_jobs(state_dir: Path) -> int:
    # the jobs fronts record before they ack live in a file of their own
    with closing(sqlite3.connect(state_dir / "chatops-intake.db", timeout=10)) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')"
        ).fetchone()
    return int(count)
