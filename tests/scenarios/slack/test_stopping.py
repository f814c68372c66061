"""Stopping by design, with real processes and real signals: SIGTERM (what Kubernetes sends
the front alone) and SIGINT (Ctrl-C, which reaches the whole group) alike make a front take
nothing more and its worker hand a running deploy over at a step boundary, its lease ended,
so the next bot resumes it at once; no process outlives its parent, a stopping front starts
no worker, a clean exit logs no error, and a front that sees its worker die ends that
worker's leases at once. The lease here is 60 s: whatever resumes sooner did not wait on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from core.store.jobs import JobQueue
from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import ALICE, OPS, bot_environment, post_command
from tests.scenarios.slack.crash_support import LOAD_S, ROOT, Bot, slow_iris_uri
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.socket_mode import SocketModeServer

__all__ = ["slow_iris_uri"]  # the module fixture, used here

LEASE_S = "60"
# what a clean stop never logs
UNCLEAN = ("Traceback", " ERROR ", "Unclosed client session", "Event loop is closed", "BrokenPipe")


def make_bot(slack_api: SlackEmulator, tracking_uri: str, tmp_path: Path, **extra: str) -> Bot:
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=tracking_uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
        CHATOPS_LEASE_S=LEASE_S,
        CHATOPS_RUNNER_POLL_S="0.2",
        SLOW_IRIS_LOAD_S=str(LOAD_S),
        **extra,
    )
    return Bot(env=env, state_dir=tmp_path / "state", log=tmp_path / "bot.log", port=low)


def workers_of(bot: Bot) -> list[psutil.Process]:
    assert bot.proc is not None
    return [
        p
        for p in psutil.Process(bot.proc.pid).children()
        if "bot.slack.worker" in " ".join(p.cmdline())
    ]


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def lapsed(op: dict[str, Any]) -> bool:
    ends = op["lease_expires_at"]
    return ends is not None and datetime.fromisoformat(ends) <= datetime.now(UTC).replace(
        tzinfo=None
    )


def log_after(bot: Bot, mark: int) -> str:
    return bot.text[mark:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_front_hands_a_deploy_over_and_the_next_bot_resumes_it_at_once(
    slack_api: SlackEmulator, slow_iris_uri: str, tmp_path: Path, signum: signal.Signals
) -> None:
    bot = make_bot(slack_api, slow_iris_uri, tmp_path)
    try:
        bot.start()
        (worker,) = workers_of(bot)
        assert post_command(bot.events_url, slack_api, "/deploy", "iris v1").status_code == 200
        bot.wait_for_op(lambda op: op["step"] == "start", 90, "the deploy starting its server")
        mark = len(bot.text)
        began = time.monotonic()
        assert bot.proc is not None
        bot.proc.send_signal(signum)  # the front alone, as Kubernetes signals PID 1
        assert bot.proc.wait(60) == 0, bot.text
        took = time.monotonic() - began
        # the worker did not outlive its front, nor finish the deploy: it left it at a step
        assert gone(worker), "the worker outlived its front"
        bot.proc = None
        (op,) = bot.operations()
        assert (op["state"], op["attempts"]) == ("running", 1), op
        assert op["step"] in ("check", "switch"), op  # the next boundary after `start`
        assert lapsed(op), op  # its lease ended on the way out, not 60 s later
        assert took < 30, took
        said = log_after(bot, mark)
        assert not [word for word in UNCLEAN if word in said], said

        resumed = time.monotonic()
        bot.start()
        ended = bot.wait_for_op(
            lambda op: op["state"] in ("succeeded", "failed"), 45, "the deploy's end"
        )
        assert (ended["state"], ended["attempts"]) == ("succeeded", 2), (ended, bot.text)
        assert time.monotonic() - resumed < float(LEASE_S)
        bot.wait_until(lambda: bot.rows("locks") == [], 10, "the endpoint lock released")
        bot.wait_until(lambda: bot.rows("audit"), 10, "the deploy audited")
        audit = [(a["action"], a["outcome"]) for a in bot.rows("audit")]
        assert audit == [("deploy", "succeeded")]
    finally:
        bot.stop()


def test_ctrl_c_to_the_whole_group_stops_both_without_a_new_worker_or_an_error(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    bot = make_bot(slack_api, registry_uri, tmp_path)
    try:
        bot.start()
        (worker,) = workers_of(bot)
        mark = len(bot.text)
        assert bot.proc is not None
        os.killpg(bot.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert bot.proc.wait(60) == 0, bot.text
        assert gone(worker)
        bot.proc = None
        said = log_after(bot, mark)
        assert "starting a new one" not in said, said
        assert not [word for word in UNCLEAN if word in said], said
        assert bot.text.count("the worker stopped") == 1, bot.text
    finally:
        bot.stop()


def test_a_front_that_sees_its_worker_die_ends_its_leases_and_the_deploy_resumes_in_seconds(
    slack_api: SlackEmulator, slow_iris_uri: str, tmp_path: Path
) -> None:
    bot = make_bot(slack_api, slow_iris_uri, tmp_path)
    try:
        bot.start()
        (worker,) = workers_of(bot)
        assert post_command(bot.events_url, slack_api, "/deploy", "iris v1").status_code == 200
        bot.wait_for_op(lambda op: op["step"] == "start", 90, "the deploy starting its server")
        worker.kill()
        killed = time.monotonic()
        bot.wait_until(lambda: lapsed(bot.operations()[0]), 5, "the dead worker's lease ended")
        bot.wait_for_op(lambda op: op["attempts"] == 2, 40, "the deploy taken over")
        assert time.monotonic() - killed < 40  # not the 60 s lease
        ended = bot.wait_for_op(
            lambda op: op["state"] in ("succeeded", "failed"), 60, "the deploy's end"
        )
        assert ended["state"] == "succeeded", (ended, bot.text)
    finally:
        bot.stop()


def test_a_socket_mode_front_closes_its_link_says_unready_and_exits_clean_on_a_signal(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    server = SocketModeServer().start()
    slack_api.socket_url = server.url
    bot = make_bot(slack_api, registry_uri, tmp_path)
    bot.env["SLACK_APP_TOKEN"] = slack_api.app_token
    bot.env.pop("SLACK_SIGNING_SECRET")
    try:
        with open(bot.log, "w") as out:
            bot.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--mode", "socket"],
                env=bot.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        link = server.wait_connections(1, timeout=90)
        ready = f"http://127.0.0.1:{bot.port}/readyz"
        bot.wait_until(lambda: httpx.get(ready).status_code == 200, 60, "the front ready")
        mark = len(bot.text)
        signalled = time.monotonic()
        bot.proc.send_signal(signal.SIGINT)
        bot.wait_until(lambda: link.closed_at is not None, 5, "the Socket Mode link closed")
        assert link.closed_at is not None and link.closed_at - signalled < 2
        assert bot.proc.wait(60) == 0, bot.text
        bot.proc = None
        said = log_after(bot, mark)
        assert not [word for word in UNCLEAN if word in said], said
        assert len(server.links) == 1  # it did not open another
    finally:
        bot.stop()
        server.stop()


def test_readyz_says_stopping_from_the_signal_on(
    slack_api: SlackEmulator, slow_iris_uri: str, tmp_path: Path
) -> None:
    server = SocketModeServer().start()
    slack_api.socket_url = server.url
    bot = make_bot(slack_api, slow_iris_uri, tmp_path)
    bot.env["SLACK_APP_TOKEN"] = slack_api.app_token
    try:
        with open(bot.log, "w") as out:
            bot.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--mode", "socket"],
                env=bot.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server.wait_connections(1, timeout=90)
        ready = f"http://127.0.0.1:{bot.port}/readyz"
        bot.wait_until(lambda: httpx.get(ready).status_code == 200, 60, "the front ready")
        server.send(
            "slash_commands",
            {
                "command": "/deploy",
                "text": "iris v1",
                "user_id": ALICE,
                "channel_id": OPS,
                "team_id": "T0001",
                "response_url": "",
                "trigger_id": "t-stop",
            },
            accepts_response_payload=True,
        )
        bot.wait_for_op(lambda op: op["step"] == "start", 90, "the deploy starting its server")
        bot.proc.send_signal(signal.SIGTERM)
        answer = httpx.get(ready)  # the worker is still handing the deploy over
        assert answer.status_code == 503, answer.text
        assert "stopping (SIGTERM)" in answer.json()["reason"]
        assert bot.proc.wait(60) == 0, bot.text
        bot.proc = None
    finally:
        bot.stop()
        server.stop()


def test_chatops_worker_answers_in_the_renamed_namespace(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    bot = make_bot(slack_api, registry_uri, tmp_path, CHATOPS_SLACK_COMMAND="ops")
    with open(bot.log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            env=bot.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        bot.wait_until(lambda: "taking operations" in bot.text, 90, "the worker taking work")
        queue = JobQueue.open(f"sqlite:///{bot.state_dir / 'chatops.db'}")
        from bot.slack.intake.jobs import Mention

        ts = f"{time.time():.6f}"
        job = Mention(text="help", user_id=ALICE, channel_id=OPS, ts=ts, namespace="ops")
        assert queue.record(key="event:Ev-help", front="slack", job=job, kind="query")
        slack_api.wait_for(lambda api: api.calls_to("chat.postEphemeral"), 30)
        (call,) = slack_api.calls_to("chat.postEphemeral")
        answer = str(call.args.get("text"))  # help, for whoever asked
        assert "/ops status" in answer and "/mlops" not in answer, answer
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, bot.text
    assert "Traceback" not in bot.text, bot.text
