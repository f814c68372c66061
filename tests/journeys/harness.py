"""The whole bot as deployed, driven as its users drive it: `chatops run --mode http` (the
Procfile's line: a front process and its worker) configured only through the environment,
reached only through requests signed as Slack signs them, talking to the Slack Web API
emulator; its endpoints reached on their ports, its state read from its database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from slack_sdk.signature import SignatureVerifier

from tests.local.flaky import BAD, GOOD
from tests.scenarios.slack.crash_support import SETOSA
from tests.slack_api.emulator import SlackEmulator

ROOT = Path(__file__).parents[2]
BOT_TOKEN = "xoxb-1111-2222-journeys0token"
SIGNING_SECRET = "5e1f0c3d9a7b4e2f8c6d1a0b9e8f7d6c"
TEAM = "T0001"

# the workspace: channels, and people of every role
OPS, ONCALL, ANNOUNCE = "C0OPS", "C0ONCALL", "C0ANNOUNCE"
ALICE = "U0ALICE"  # admin in every environment
DAN = "U0DAN"  # admin in dev, developer in prod
BOB = "U0BOB"  # developer in every environment
VIC = "U0VIC"  # a viewer: no role anywhere
CANARY = "U0CANARY"  # named only in typed text: the bot has no reason ever to ping them
USERS = {ALICE: "alice", DAN: "dan", BOB: "bob", VIC: "vic", CANARY: "canary"}
DMS = {user: f"D{user[1:]}" for user in (ALICE, DAN, BOB, VIC)}
ENVIRONMENTS = ("dev", "prod")
# what a user types as free text (a reason, a lock's why): mentions that must never ping
TYPED_PINGS = f"cc <@{CANARY}> cc <!here> cc <@{DAN}> cc <#C0SECRET>"
TYPED_MARK = "cc "


def workspace(api: SlackEmulator) -> None:
    api.add_channel(OPS, name="ops", member=True)
    api.add_channel(ONCALL, name="oncall", member=True)
    api.add_channel(ANNOUNCE, name="models", member=True)
    for user, name in USERS.items():
        api.add_user(user, name=name)
    for user, dm in DMS.items():
        api.add_channel(dm, name=f"{USERS[user]}-dm", member=True, is_im=True)


def environments(low: int, *, watch_s: float) -> list[dict[str, Any]]:
    """dev and prod, both local, each its own ports; prod is production and takes from dev;
    dev's canaries promote themselves."""
    watch = {"watch_s": watch_s, "watch_min_requests": 5, "max_error_rate": 0.2}
    return [
        {
            "name": "dev",
            "port_range": [low + 1, low + 12],
            "admins": [ALICE, DAN],
            "developers": [BOB],
            "limits": {"cpu": 2, "memory_mb": 2048, "replicas": 2},
            # a canary asked for here (`--canary`, `--shadow`) promotes itself: journeys wait
            # for what they started before their next step
            "rollout": {"bake_s": 2, "auto_promote": True},
            **watch,
        },
        {
            "name": "prod",
            "port_range": [low + 13, low + 24],
            "admins": [ALICE],
            "developers": [BOB, DAN],
            "production": True,
            "limits": {"cpu": 2, "memory_mb": 2048, "replicas": 2},
            **watch,
        },
    ]


def free_block(size: int = 25) -> int:
    """The first of `size` ports that are free right now, below the ephemeral range (32768
    on): a port the system hands out (a model server's private port, a client's) never
    lands in the environments' ranges, where the invariants take every listener for an
    endpoint."""
    import random
    import socket

    for _ in range(100):
        low = random.randrange(20000, 32000 - size)
        taken = False
        for port in range(low, low + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return low
    raise RuntimeError("no free block of ports")


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll real state until `predicate` holds; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:.0f} s: {what}")
        time.sleep(0.05)


@dataclass
class Sent:
    """One request to the front, and what it answered."""

    kind: str  # command, event, click
    user: str
    what: str
    status: int
    body: str


@dataclass
class Bot:
    """`chatops run --mode http` in its own process group, with its state database."""

    api: SlackEmulator
    state_dir: Path
    log: Path
    tracking_uri: str
    watch_s: float
    direct_commands: bool = True
    namespace: str = "mlops"  # the one slash command that takes every command
    port: int = field(default_factory=free_block)
    proc: subprocess.Popen[bytes] | None = None
    sent: list[Sent] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**9)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CHATOPS_"))}
        return {
            **keep,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.api.api_url,
            "PORT": str(self.port),
            "SLACK_HOST": "127.0.0.1",
            "CHATOPS_STATE_DIR": str(self.state_dir),
            "CHATOPS_MLFLOW_TRACKING_URI": self.tracking_uri,
            "CHATOPS_ENVIRONMENTS": json.dumps(environments(self.port, watch_s=self.watch_s)),
            "CHATOPS_SLACK_UPDATE_INTERVAL": "0.3",
            "CHATOPS_ONCALL_CHANNEL": ONCALL,
            "CHATOPS_ANNOUNCE_CHANNEL": ANNOUNCE,
            "CHATOPS_REGISTRY_POLL_S": "1",
            "CHATOPS_RUNNER_POLL_S": "0.2",
            "CHATOPS_START_TIMEOUT_S": "60",
            "CHATOPS_SLACK_DIRECT_COMMANDS": "true" if self.direct_commands else "false",
            "CHATOPS_SLACK_COMMAND": self.namespace,
        }

    # -- life ------------------------------------------------------------------------------
    def start(self) -> Bot:
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                if ready.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.text
            assert time.monotonic() < deadline, "the bot did not become ready\n" + self.text
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM as a platform does, then `chatops down` for the endpoints it started."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            check=False,
            timeout=120,
        )

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- requests signed as Slack signs them -----------------------------------------------
    def _signed(self, body: str, content_type: str) -> httpx.Response:
        stamp = str(int(time.time()))
        signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
        return httpx.post(
            self.url,
            content=body,
            timeout=15,
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        )

    def _record(self, kind: str, user: str, what: str, answer: httpx.Response) -> Sent:
        sent = Sent(kind, user, what, answer.status_code, answer.text)
        self.sent.append(sent)
        return sent

    def command(self, user: str, command: str, text: str, *, channel: str = OPS) -> Sent:
        body = urllib.parse.urlencode(
            {
                "token": "unused",
                "team_id": TEAM,
                "team_domain": "acme",
                "channel_id": channel,
                "channel_name": "ops",
                "user_id": user,
                "user_name": USERS[user],
                "command": command,
                "text": text,
                "api_app_id": "A0001",
                "is_enterprise_install": "false",
                "response_url": self.api.response_url(command, channel=channel),
                "trigger_id": f"{next(self._ids)}.{int(time.time())}",
            }
        )
        answer = self._signed(body, "application/x-www-form-urlencoded")
        return self._record("command", user, f"{command} {text}".strip(), answer)

    def event(self, user: str, event: dict[str, Any]) -> Sent:
        body = json.dumps(
            {
                "token": "unused",
                "team_id": TEAM,
                "api_app_id": "A0001",
                "type": "event_callback",
                "event_id": f"Ev{next(self._ids)}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
                "event": event,
            }
        )
        answer = self._signed(body, "application/json")
        return self._record("event", user, f"{event['type']} {event.get('text', '')}", answer)

    def mention(self, user: str, text: str, *, thread_ts: str | None = None) -> Sent:
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@UBOT> {text}",
            "ts": f"{time.time():.6f}",
            "channel": OPS,
        }
        return self.event(user, event | ({"thread_ts": thread_ts} if thread_ts else {}))

    def direct(self, user: str, text: str) -> Sent:
        event = {
            "type": "message",
            "channel_type": "im",
            "user": user,
            "text": text,
            "ts": f"{time.time():.6f}",
            "channel": DMS[user],
        }
        return self.event(user, event)

    def open_home(self, user: str) -> Sent:
        return self.event(user, {"type": "app_home_opened", "user": user, "tab": "home"})

    def click(
        self, user: str, channel: str, message_ts: str, block_id: str, button: dict[str, Any]
    ) -> Sent:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": USERS[user]},
            "api_app_id": "A0001",
            "team": {"id": TEAM},
            "trigger_id": f"{next(self._ids)}.{int(time.time())}",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel, "name": channel.lower()},
            "message": {"ts": message_ts, "text": ""},
            "response_url": self.api.response_url(
                f"click-{button['action_id']}", channel=channel, message_ts=message_ts
            ),
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": block_id,
                    "value": button.get("value", ""),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        answer = self._signed(body, "application/x-www-form-urlencoded")
        return self._record("click", user, f"{button['action_id']} {button.get('value')}", answer)

    # -- its state database ----------------------------------------------------------------
    def rows(self, table: str, where: str = "", *args: object) -> list[dict[str, Any]]:
        # the jobs fronts record before they ack live in a file of their own
        name = "chatops-intake.db" if table == "jobs" else "chatops.db"
        try:
            with closing(sqlite3.connect(self.state_dir / name, timeout=10)) as db:
                db.row_factory = sqlite3.Row
                query = f"SELECT * FROM {table} {where}"
                return [dict(r) for r in db.execute(query, args)]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "unable to open" in str(exc):
                return []
            raise

    def busy(self) -> bool:
        """Whether any request or operation is still being worked on."""
        jobs = self.rows("jobs", "WHERE state IN ('queued', 'running')")
        ops = self.rows("operations", "WHERE state IN ('queued', 'running')")
        return bool(jobs or ops)

    def settle(self, timeout: float = 120) -> None:
        """Wait until every request taken has ended and what the bot had to say about it
        reached Slack: no job or operation left, then the emulator quiet for a moment."""
        wait_until(lambda: not self.busy(), timeout, "every job and operation ended")
        seen = [len(self.api.calls) + len(self.api.responses), time.monotonic()]

        def quiet() -> bool:
            now = len(self.api.calls) + len(self.api.responses)
            if now != seen[0] or self.busy():
                seen[:] = [now, time.monotonic()]
                return False
            return time.monotonic() - seen[1] >= 0.6

        wait_until(quiet, timeout, "the bot done talking to Slack")

    # -- its endpoints -----------------------------------------------------------------------
    def endpoint(self, env: str, name: str) -> dict[str, Any] | None:
        found = self.rows("endpoints", "WHERE env = ? AND name = ?", env, name)
        return found[0] if found else None

    def score(self, env: str, name: str, *, good: bool, n: int) -> tuple[int, int, str | None]:
        """Send `n` requests to what serves `name` in `env` now: (answered, server errors,
        the deployment that served them all, or None when it changed meanwhile)."""
        before = self.endpoint(env, name)
        if before is None:
            return 0, 0, None
        payload = SETOSA if name == "iris" else (GOOD if good else BAD)
        answered = errors = 0
        with httpx.Client(timeout=10) as client:
            for _ in range(n):
                try:
                    status = client.post(before["url"], json=payload).status_code
                except httpx.HTTPError:
                    continue
                answered += 1
                errors += status >= 500
        after = self.endpoint(env, name)
        same = after is not None and after["deployment"] == before["deployment"]
        return answered, errors, before["deployment"] if same else None
