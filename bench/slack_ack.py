"""Ack latency of the Slack HTTP front: signed slash commands on loopback.

    python bench/slack_ack.py [--requests 200] [--concurrency 20]

Starts the real HTTP app (waitress + Bolt) against the Slack Web API emulator, with the
embedded registry holding the demo model, then sends signed `/status` and `/deploy iris v1`
requests (half each) from `--concurrency` threads and reports the time to each HTTP response
(the ack). Slack's deadline is 3,000 ms; the target is p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
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

from bot.slack.app import EVENTS_PATH, SlackFront  # noqa: E402
from bot.slack.settings import SlackSettings  # noqa: E402
from core.config import Settings  # noqa: E402
from core.registry.demo import create_demo_model  # noqa: E402
from core.runtime import Runtime  # noqa: E402
from tests.slack_api.emulator import SlackEmulator  # noqa: E402

TOKEN, SECRET = "xoxb-0000-bench-token", "bench-signing-secret"


def serve(tmp: Path, ready: Path, api_url: str) -> None:
    """The bot: HTTP front and the embedded registry with the demo model."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=tmp / "artifacts")
    runtime = Runtime(Settings(state_dir=tmp / "state", mlflow_tracking_uri=uri))
    runtime.warm_up()
    front = SlackFront(
        runtime, SlackSettings(bot_token=TOKEN, signing_secret=SECRET, api_url=api_url)
    )
    server = front.http_server(host="127.0.0.1", port=0)
    ready.write_text(f"http://127.0.0.1:{server.port}{EVENTS_PATH}")
    try:
        server.run()
    finally:
        front.listeners.wait_idle(120)
        runtime.shut_down_endpoints()
        runtime.close()


def signed(
    i: int, response_url: str, verifier: SignatureVerifier
) -> tuple[str, bytes, dict[str, str]]:
    command, text = ("/status", "") if i % 2 else ("/deploy", "iris v1")
    body = urllib.parse.urlencode(
        {
            "command": command,
            "text": text,
            "user_id": "U0BENCH",
            "user_name": "bench",
            "channel_id": "C0OPS",
            "team_id": "T0001",
            "response_url": response_url,
            "trigger_id": f"t{i}",
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
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve.parent, args.serve, args.api_url)
        return 0
    with tempfile.TemporaryDirectory() as tmp, SlackEmulator(bot_token=TOKEN) as api:
        api.add_channel("C0OPS", name="ops", member=True)
        response_url = api.response_url()
        ready = Path(tmp) / "ready"
        # The bot runs in its own process, as in production; this one plays Slack: it sends
        # the requests and answers the bot's Web API calls.
        bot = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(ready), "--api-url", api.api_url],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while not ready.exists():
                assert time.monotonic() < deadline and bot.poll() is None, "bot did not start"
                time.sleep(0.1)
            url = ready.read_text()
            time.sleep(5)  # the bot warms its model-server runtime at start, as it always does
            verifier = SignatureVerifier(SECRET)
            # a warm-up burst, not measured: connections, thread pools, the first deploy
            warm = [signed(i, response_url, verifier) for i in range(2 * args.concurrency)]
            asyncio.run(load(url, warm, args.concurrency))
            time.sleep(2)
            requests = [signed(i, response_url, verifier) for i in range(args.requests)]
            results = asyncio.run(load(url, requests, args.concurrency))
        finally:
            bot.send_signal(signal.SIGINT)
            bot.wait(120)
    bad = [r for r in results if r[2] != 200]
    print(f"{args.requests} signed requests, concurrency {args.concurrency}, non-200: {len(bad)}")
    for name in ("/status", "/deploy", "all"):
        ms = sorted(r[1] for r in results if name in ("all", r[0]))
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(
            f"{name:8} n={len(ms):4}  p50 {statistics.median(ms):6.1f} ms   p99 {p99:6.1f} ms   "
            f"max {ms[-1]:6.1f} ms"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
