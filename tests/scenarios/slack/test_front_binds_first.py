"""A restarted `chatops run --mode http` holds its port from its first milliseconds: `/healthz`
answers while the front still loads (its settings, SQLAlchemy, Bolt, uvicorn, and its call
to `auth.test`), `/readyz` says it is starting, and a signed command that arrives meanwhile is
kept, unread and unanswered, until the app takes the port: then acked and answered once. A
signal in that window ends the front cleanly; without a signing secret the port is never
served at all."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import psutil
from slack_sdk.signature import SignatureVerifier

from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import ALICE, OPS, SIGNING_SECRET, bot_environment
from tests.scenarios.slack.test_front_starts_at_once import status_code, until
from tests.scenarios.slack.test_run_http import unfinished_jobs
from tests.slack_api.emulator import SlackEmulator

ROOT = Path(__file__).parents[3]


def signed_command(api: SlackEmulator, port: int, text: str) -> bytes:
    """The bytes of a `/mlops <text>` request as Slack sends it."""
    body = urllib.parse.urlencode(
        {
            "team_id": "T0001",
            "channel_id": OPS,
            "user_id": ALICE,
            "user_name": "alice",
            "command": "/mlops",
            "text": text,
            "api_app_id": "A0001",
            "response_url": api.response_url("/mlops"),
            "trigger_id": f"held.{time.time()}",
        }
    )
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    return (
        f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nX-Slack-Request-Timestamp: {stamp}\r\n"
        f"X-Slack-Signature: {signature}\r\n\r\n{body}"
    ).encode()


def held_by(pid: int, client: socket.socket) -> bool:
    """Whether process `pid` accepted `client`'s connection (one still in the listening
    socket's backlog belongs to no process)."""
    mine = client.getsockname()[1]
    return any(
        c.raddr and c.raddr.port == mine and c.status == psutil.CONN_ESTABLISHED
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(bot: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    if bot.poll() is None:
        bot.send_signal(signal.SIGINT)
        bot.wait(60)
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "down"], env=env, cwd=ROOT, capture_output=True
    )


def test_healthz_answers_while_the_front_loads_and_a_command_sent_then_is_answered_once(
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
    # the front asks Slack which team its token belongs to before it builds its app: held
    # there, it is still loading for as long as the test likes
    front_may_load = slack_api.hold("auth.test")
    log = tmp_path / "bot.log"
    base = f"http://127.0.0.1:{low}"
    bot = start(env, log)
    client = None
    try:
        until("/healthz 200", lambda: status_code(f"{base}/healthz") == 200, log)
        assert httpx.get(f"{base}/healthz").json() == {"ok": True, "mode": "http"}
        readyz = httpx.get(f"{base}/readyz", timeout=2)
        assert readyz.status_code == 503
        assert readyz.json() == {"ready": False, "reason": "the front is starting"}

        client = socket.create_connection(("127.0.0.1", low), timeout=30)
        client.sendall(signed_command(slack_api, low, "status public"))
        until("the command's connection held", lambda: held_by(bot.pid, client), log)
        client.setblocking(False)
        try:
            raise AssertionError(f"answered before the app could record it: {client.recv(99)!r}")
        except BlockingIOError:
            pass  # nothing acked yet
        client.setblocking(True)
        client.settimeout(30)
        assert slack_api.responses == []
        assert status_code(f"{base}/healthz") == 200  # the held command blocks no health check

        front_may_load.set()
        acked = http.client.HTTPResponse(client)
        acked.begin()
        assert acked.status == 200
        assert acked.read() == b""
        slack_api.wait_for(lambda api: len(api.responses) == 1, timeout=120)
        answer = slack_api.responses[0].body
        assert answer["response_type"] == "in_channel", answer
        assert answer["text"].startswith("No endpoints yet."), answer
        until("/readyz 200", lambda: status_code(f"{base}/readyz") == 200, log)
        until("the job done", lambda: unfinished_jobs(tmp_path / "state") == 0, log)
        assert len(slack_api.responses) == 1  # answered once, not once per door
        # the app serves the same port: a command now is acked as usual
        assert httpx.get(f"{base}/healthz").json() == {"ok": True, "mode": "http"}
    finally:
        front_may_load.set()
        if client is not None:
            client.close()
        stop(bot, env)
    assert bot.returncode == 0, log.read_text()


def test_a_signal_while_the_front_loads_ends_it_cleanly_and_acks_nothing(
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
    front_may_load = slack_api.hold("auth.test")
    log = tmp_path / "bot.log"
    base = f"http://127.0.0.1:{low}"
    bot = start(env, log)
    client = None
    try:
        until("/healthz 200", lambda: status_code(f"{base}/healthz") == 200, log)
        client = socket.create_connection(("127.0.0.1", low), timeout=30)
        client.sendall(signed_command(slack_api, low, "status public"))
        until("the command's connection held", lambda: held_by(bot.pid, client), log)

        bot.send_signal(signal.SIGTERM)
        until("/readyz says why", lambda: "SIGTERM" in httpx.get(f"{base}/readyz").text, log)
        front_may_load.set()
        assert bot.wait(60) == 0, log.read_text()
        said = log.read_text()
        assert "stopping (SIGTERM) before the front served" in said, said
        assert "Traceback" not in said, said
        # the command was never acked (Slack sends it again, to a bot that runs) nor recorded
        acked = http.client.HTTPResponse(client)
        try:
            acked.begin()
            raise AssertionError(f"acked by a front that stopped: {acked.status}")
        except (http.client.RemoteDisconnected, ConnectionResetError):
            pass
        assert status_code(f"{base}/healthz") == 0
        assert slack_api.responses == []
        assert "bot.slack.worker" not in said
    finally:
        front_may_load.set()
        if client is not None:
            client.close()
        stop(bot, env)


def test_without_a_signing_secret_the_port_is_never_served(
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
    env.pop("SLACK_SIGNING_SECRET")
    log = tmp_path / "bot.log"
    bot = start(env, log)
    answered: list[int] = []

    def watch() -> None:  # what a platform's health check would have seen
        while bot.poll() is None:
            if (code := status_code(f"http://127.0.0.1:{low}/healthz")) != 0:
                answered.append(code)

    watching = threading.Thread(target=watch)
    watching.start()
    try:
        assert bot.wait(60) == 2
        watching.join()
    finally:
        stop(bot, env)
    said = log.read_text()
    assert "cannot start: SLACK_SIGNING_SECRET is not set" in said, said
    assert answered == []


def test_a_wrong_slack_setting_is_said_without_a_traceback_and_the_port_closes(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    low, _ = free_port_range()
    for wrong in ({"PORT": "http"}, {"CHATOPS_SLACK_WORKERS": "many"}):
        env = bot_environment(
            slack_api,
            port=low,
            state_dir=tmp_path / "state",
            tracking_uri=registry_uri,
            environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
            **wrong,
        )
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert said.startswith("cannot start, the Slack settings are wrong: "), said
        assert next(iter(wrong)) in said and "Traceback" not in said, said
        assert SIGNING_SECRET not in said
        assert status_code(f"http://127.0.0.1:{low}/healthz") == 0
