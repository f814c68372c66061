"""Ack latency of the Slack HTTP front: signed slash commands on loopback.

    python bench/slack_ack.py [--requests 200] [--concurrency 20]

Starts `chatops run --mode http` (front and worker processes, as deployed) against the Slack
Web API emulator, with a registry holding the demo model, then sends signed `/mlops status` and
`/deploy iris v1` requests (half each) on `--concurrency` connections and reports the time to
each HTTP response (the ack). Slack's deadline is 3,000 ms; the target is p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.slack.app import EVENTS_PATH  # noqa: E402
from core.registry.demo import create_demo_model  # noqa: E402
from tests.slack_api.emulator import SlackEmulator  # noqa: E402

TOKEN, SECRET = "xoxb-bench", "bench-signing-secret"


def signed(
    i: int, response_url: str, verifier: SignatureVerifier
) -> tuple[str, bytes, dict[str, str]]:
    command, text = ("/mlops", "status") if i % 2 else ("/deploy", "iris v1")
    return slash(command, text, trigger=f"t{i}", response_url=response_url, verifier=verifier)


def slash(
    command: str,
    text: str,
    *,
    trigger: str,
    response_url: str,
    verifier: SignatureVerifier,
    user: str = "U0BENCH",
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
    url: str, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int
) -> list[tuple[str, float, int]]:
    """Closed loop on `concurrency` keep-alive connections: each sends its next request when
    the last answer is in. Plain asyncio streams, so the client's own cost stays small next
    to what it measures (a threaded Python HTTP client adds tens of milliseconds here)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    todo = list(enumerate(requests))
    results: list[tuple[str, float, int]] = [("", 0.0, 0)] * len(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while todo:
            i, (tag, body, headers) = todo.pop(0)
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SlackEmulator(bot_token=TOKEN) as api:
        api.add_channel("C0OPS", name="ops", member=True)
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=Path(tmp) / "artifacts")
        port = free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api.api_url,
            "PORT": str(port),
            "SLACK_HOST": "127.0.0.1",
            "CHATOPS_STATE_DIR": str(Path(tmp) / "state"),
            "CHATOPS_MLFLOW_TRACKING_URI": uri,
        }
        env.pop("SLACK_APP_TOKEN", None)
        # The bot runs as deployed (`chatops run`: a front process and its worker process);
        # this process plays Slack: it sends the requests and answers the Web API calls.
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        response_url = api.response_url()
        try:
            wait_healthy(f"http://127.0.0.1:{port}/readyz", bot)
            time.sleep(6)  # the worker warms its model-server runtime at start, as it always does
            verifier = SignatureVerifier(SECRET)
            # a warm-up burst, not measured: connections, pools, the first real deploy
            warm = [signed(i, response_url, verifier) for i in range(2 * args.concurrency)]
            asyncio.run(load(url, warm, args.concurrency))
            time.sleep(2)
            requests = [signed(i, response_url, verifier) for i in range(args.requests)]
            results = asyncio.run(load(url, requests, args.concurrency))
        finally:
            bot.send_signal(signal.SIGINT)
            bot.wait(120)
            subprocess.run(
                [sys.executable, "-m", "bot.cli", "down"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                check=False,
            )
    bad = [r for r in results if r[2] != 200]
    print(f"{args.requests} signed requests, concurrency {args.concurrency}, non-200: {len(bad)}")
    for name in ("/mlops", "/deploy", "all"):
        ms = sorted(r[1] for r in results if name in ("all", r[0]))
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(
            f"{name:8} n={len(ms):4}  p50 {statistics.median(ms):6.1f} ms   "
            f"p99 {p99:6.1f} ms   max {ms[-1]:6.1f} ms"
        )
    return 1 if bad else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, bot: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert bot.poll() is None, "the bot exited"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the bot did not become healthy")


if __name__ == "__main__":
    sys.exit(main())
