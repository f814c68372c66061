"""Ack latency of the Slack HTTP front: signed slash commands on loopback, while the worker
deploys, watches an endpoint and counts its traffic.

    python bench/slack_ack.py [--requests 200] [--concurrency 20] [--spread 8]
                              [--database URL] [--tree PATH] [--json FILE]

Starts `chatops run --mode http` (front and worker processes, as deployed) against the Slack
Web API emulator, with a registry holding the demo model (iris v1 and v2). Before measuring,
iris v1 is deployed to `dev` and serves: its watch window runs from then on. Then, at once:
model traffic is sent to that endpoint (the worker counts it for the watch), `/deploy iris v2`
is sent (a deploy that builds, starts, smoke-tests and switches, a new watch after it), and
the measured signed requests go out, `/mlops status` and `/deploy iris v1` (half each) on
`--concurrency` connections, spread over `--spread` seconds so the deploy runs beside them.
Reports the time to each HTTP response (the ack): p50, p99, max; what the worker did meanwhile;
and the machine's load average. Slack's deadline is 3,000 ms; the target is p99 <= 20 ms.

`--database URL` runs the bot on that state database (PostgreSQL: a fresh schema of it, dropped
afterwards; `bash .ci/scripts/postgres.sh` prints a URL). `--tree PATH` starts the bot of
another checkout (an older commit, for a before/after figure); the client is this one.
`--json FILE` also writes p50/p99/max to a file (bench/front.py reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine, create_engine, make_url, pool, text
from sqlalchemy.exc import SQLAlchemyError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.slack.app import EVENTS_PATH  # noqa: E402
from core.registry.demo import create_demo_model  # noqa: E402
from tests.slack_api.emulator import SlackEmulator  # noqa: E402

TOKEN, SECRET, USER = "xoxb-bench", "bench-signing-secret", "U0BENCH"
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SETOSA = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}


def signed(
    i: int, response_url: str, verifier: SignatureVerifier, batch: str = "t"
) -> tuple[str, bytes, dict[str, str]]:
    command, words = ("/mlops", "status") if i % 2 else ("/deploy", "iris v1")
    return slash(
        command, words, trigger=f"{batch}{i}", response_url=response_url, verifier=verifier
    )


def slash(
    command: str,
    text: str,
    *,
    trigger: str,
    response_url: str,
    verifier: SignatureVerifier,
    user: str = USER,
    channel: str = "C0OPS",
) -> tuple[str, bytes, dict[str, str]]:
    """A slash command signed as Slack signs it, for `load`: (command, body, headers)."""
    body = urllib.parse.urlencode(
        {
            "command": command,
            "text": text,
            "user_id": user,
            "user_name": "bench",
            "channel_id": channel,
            "team_id": "T0001",
            "response_url": response_url,
            "trigger_id": trigger,
        }
    )
    ts = str(int(time.time()))
    return (
        command,
        body.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": verifier.generate_signature(timestamp=ts, body=body),
        },
    )


async def load(
    url: str,
    requests: list[tuple[str, bytes, dict[str, str]]],
    concurrency: int,
    *,
    spread: float = 0.0,
) -> list[tuple[str, float, int]]:
    """Closed loop on `concurrency` keep-alive connections: each sends its next request when
    the last answer is in (and, with `spread`, not before its turn: request i at
    i * spread / len(requests) seconds). Plain asyncio streams, so the client's own cost
    stays small next to what it measures (a threaded Python HTTP client adds tens of
    milliseconds here)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    todo = list(enumerate(requests))
    results: list[tuple[str, float, int]] = [("", 0.0, 0)] * len(requests)
    start = time.perf_counter()
    gap = spread / max(1, len(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while todo:
            i, (tag, body, headers) = todo.pop(0)
            if (wait := start + i * gap - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            began = time.perf_counter()
            writer.write(
                f"POST {parts.path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: "
                f"{len(body)}\r\n{head}\r\n".encode()
                + body
            )
            status = int((await reader.readline()).split()[1])
            length, chunked = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                length = int(value) if name.lower() == "content-length" else length
                chunked = chunked or (name.lower() == "transfer-encoding" and "chunked" in value)
            if chunked:
                while (size := int((await reader.readline()).strip(), 16)) > 0:
                    await reader.readexactly(size + 2)
                await reader.readline()
            elif length:
                await reader.readexactly(length)
            results[i] = (tag, (time.perf_counter() - began) * 1000, status)
        writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--spread", type=float, default=8.0, help="seconds to send them over")
    parser.add_argument("--database", default="", help="state database URL (PostgreSQL)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to start")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    tree = args.tree.resolve()
    with (
        tempfile.TemporaryDirectory() as tmp,
        SlackEmulator(bot_token=TOKEN) as api,
        state_database(args.database) as database,
    ):
        api.add_channel("C0OPS", name="ops", member=True)
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=Path(tmp) / "artifacts")
        port = free_port()
        database = database or f"sqlite:///{Path(tmp) / 'state' / 'chatops.db'}"
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api.api_url,
            "PORT": str(port),
            "SLACK_HOST": "127.0.0.1",
            "CHATOPS_STATE_DIR": str(Path(tmp) / "state"),
            "CHATOPS_DATABASE_URL": database,
            "CHATOPS_MLFLOW_TRACKING_URI": uri,
            "CHATOPS_ENVIRONMENTS": json.dumps(
                [{"name": "dev", "admins": [USER], "port_range": [port + 1, port + 60]}]
            ),
        }
        env.pop("SLACK_APP_TOKEN", None)
        # The bot runs as deployed (`chatops run`: a front process and its worker process);
        # this process plays Slack: it sends the requests and answers the Web API calls.
        log = open(Path(tmp) / "bot.log", "wb")  # noqa: SIM115 - closed with the bot
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=tree,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        response_url = api.response_url()
        state = create_engine(database, poolclass=pool.NullPool)
        try:
            wait_for("/readyz", 180, bot, lambda: ready(f"http://127.0.0.1:{port}/readyz"))
            verifier = SignatureVerifier(SECRET)
            # iris v1 serves on dev before measuring: its watch window runs from then on
            first = [slash("/deploy", "iris v1", trigger="t-v1", **signing(response_url, verifier))]
            asyncio.run(load(url, first, 1))
            wait_for("iris v1 serving", 300, bot, lambda: serving(state))
            endpoint = serving(state)
            # a warm-up burst, not measured: connections, pools, the front's first records
            # (queries only: a deploy left from it would refuse the v2 deploy as locked)
            warm = [
                signed(2 * i + 1, response_url, verifier, "warm")
                for i in range(2 * args.concurrency)
            ]
            asyncio.run(load(url, warm, args.concurrency))
            time.sleep(2)
            load_before = os.getloadavg()
            traffic = Traffic(str(endpoint)).start()
            deploy = [
                slash("/deploy", "iris v2", trigger="t-v2", **signing(response_url, verifier))
            ]
            asyncio.run(load(url, deploy, 1))
            requests = [signed(i, response_url, verifier) for i in range(args.requests)]
            began = time.time()
            results = asyncio.run(load(url, requests, args.concurrency, spread=args.spread))
            ended = time.time()
            traffic.stop()
            load_after = os.getloadavg()
            beside = worker_meanwhile(state, began, ended)
        finally:
            bot.send_signal(signal.SIGINT)
            bot.wait(120)
            subprocess.run(
                [sys.executable, "-m", "bot.cli", "down"],
                env=env,
                cwd=tree,
                capture_output=True,
                check=False,
            )
            state.dispose()
            log.close()
        records = slow_records(Path(tmp) / "bot.log")
    bad = [r for r in results if r[2] != 200]
    backend = "PostgreSQL" if database.startswith("postgresql") else "SQLite"
    print(
        f"{tree.name} on {backend}: {args.requests} signed requests over {ended - began:.1f} s,"
        f" concurrency {args.concurrency}, non-200: {len(bad)}"
    )
    figures = {}
    for name in ("/mlops", "/deploy", "all"):
        ms = sorted(r[1] for r in results if name in ("all", r[0]))
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        figures[name] = {"p50_ms": statistics.median(ms), "p99_ms": p99, "max_ms": ms[-1]}
        print(
            f"{name:8} n={len(ms):4}  p50 {statistics.median(ms):6.1f} ms   "
            f"p99 {p99:6.1f} ms   max {ms[-1]:6.1f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(figures))
    print(
        f"meanwhile: {beside}; model traffic {traffic.sent} requests"
        f" ({traffic.failed} failed) to {endpoint}; front: {records}"
    )
    print(
        "load average (1, 5, 15 min) before "
        + " ".join(f"{x:.1f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.1f}" for x in load_after)
        + f", on {os.cpu_count()} cores"
    )
    return 1 if bad else 0


def signing(response_url: str, verifier: SignatureVerifier) -> dict[str, Any]:
    return {"response_url": response_url, "verifier": verifier}


@contextmanager
def state_database(url: str) -> Iterator[str]:
    """`url` as the bot's state database: "" (SQLite in the bench's directory), or a fresh
    schema of the PostgreSQL database at `url`, dropped afterwards."""
    if not url:
        yield ""
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, poolclass=pool.NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        options = {"options": f"-csearch_path={schema}"}
        yield make_url(url).update_query_dict(options).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def serving(state: Engine) -> str | None:
    """The URL of iris on dev once it serves and no operation is under way."""
    try:
        with state.connect() as conn:
            busy = conn.execute(
                text("SELECT count(*) FROM operations WHERE state IN ('queued', 'running')")
            ).scalar_one()
            url = conn.execute(text("SELECT url FROM endpoints WHERE name = 'iris'")).scalar()
    except SQLAlchemyError:  # not migrated yet
        return None
    return str(url) if url and not busy else None


def worker_meanwhile(state: Engine, began: float, ended: float) -> str:
    """What the worker did while the requests were sent: deploys under way, watches open."""
    start = datetime.fromtimestamp(began, UTC).replace(tzinfo=None)
    end = datetime.fromtimestamp(ended, UTC).replace(tzinfo=None)
    with state.connect() as conn:
        ops = conn.execute(
            text("SELECT command, state, created_at, finished_at FROM operations")
        ).all()
        watches = conn.execute(text("SELECT count(*) FROM watches")).scalar_one()
    busy = 0.0  # seconds of the window during which some operation was under way
    overlapping = []
    for command, _state, created, finished in ops:
        created, finished = naive(created), naive(finished)
        if created <= end and (finished is None or finished >= start):
            overlapping.append(command)
            busy += (min(finished or end, end) - max(created, start)).total_seconds()
    v2 = "with /deploy iris v2" if "/deploy iris v2" in overlapping else "without the v2 deploy"
    return (
        f"{len(overlapping)} operations under way ({v2}), {busy:.1f} operation-seconds in"
        f" {ended - began:.1f} s; {watches} watch(es) recorded"
    )


def slow_records(log: Path) -> str:
    """What the front logged of its records that took over 20 ms (the database's wait, apart
    from the time the front waited for a CPU)."""
    text = log.read_text()
    took = [int(m) for m in re.findall(r"recording a job took (\d+) ms", text)]
    said = f"records over 20 ms: {len(took)}" + (f" (max {max(took)} ms)" if took else "")
    # this version says how long of it was spent waiting for the database's write lock
    waited = [int(m) for m in re.findall(r"recording a job waited (\d+) ms", text)]
    if waited:
        said += f", {len(waited)} of them waiting over 20 ms for the lock (max {max(waited)} ms)"
    return said


def naive(moment: Any) -> Any:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


class Traffic:
    """Predictions sent to a served endpoint on one thread, as fast as it answers (paced at
    `every` seconds): requests the worker counts for the endpoint's watch."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        self.url, self.every = url, every
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        body = json.dumps(SETOSA).encode()
        while not self._stop.wait(self.every):
            request = urllib.request.Request(
                self.url, data=body, headers={"Content-Type": "application/json"}
            )
            self.sent += 1
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    answer.read()
            except OSError:
                self.failed += 1


def wait_for(what: str, timeout: float, bot: subprocess.Popen[bytes], check: Any) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if bot.poll() is not None:
            raise RuntimeError(f"the bot exited before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
