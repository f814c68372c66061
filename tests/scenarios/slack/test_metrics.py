"""`/metrics` of `chatops run` as deployed (a front process and its worker process), read as
Prometheus reads it (prometheus_client's own parser): operations by outcome, the worker's
calls to MLflow, CML and Slack counted at the front, a bearer token when one is set, and no
secret, id or free text in the page. Socket Mode serves it too."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from emulators.cml import RunningEmulator
from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    SIGNING_SECRET,
    bot_environment,
    post_command,
)
from tests.scenarios.slack.crash_support import (
    CML_KEY_VAR,
    CML_PROJECT,
    ROOT,
    Bot,
    cml_environment,
)
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["tests.scenarios.slack.crash_support"]

METRICS_TOKEN = "metrics-7d1f0c2b9a8e4f3d"
Page = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def parse(text: str) -> Page:
    return {
        key(s.name, **s.labels): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(port: int, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


def ended(bot: Bot, n: int) -> bool:
    """Whether `n` operations are recorded and every one has ended (read once: the second
    deploy may be recorded between two reads)."""
    states = [op["state"] for op in bot.operations()]
    return len(states) == n and not {"running", "queued"} & set(states)


def run_deploys(bot: Bot, slack_api: SlackEmulator, *lines: str) -> list[str]:
    """Each deploy, one after the other, run to its end: their states."""
    for n, line in enumerate(lines, 1):
        assert post_command(bot.events_url, slack_api, "/deploy", line).status_code == 200
        bot.wait_until(lambda n=n: ended(bot, n), 120, f"deploy {line} to end")
    return [op["state"] for op in bot.operations()]


def test_metrics_count_what_the_worker_did_with_outcomes_and_no_secret(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], registry_uri: str, tmp_path: Path
) -> None:
    bot = make_bot({"name": "dev"}, tracking_uri=registry_uri, CHATOPS_METRICS_TOKEN=METRICS_TOKEN)
    bot.start()
    # Slack refuses the first message of the first deploy's thread
    slack_api.fail("chat.postMessage", "channel_not_found")
    states = run_deploys(bot, slack_api, "iris v1", "iris v3")  # v3 cannot be loaded
    assert sorted(states) == ["failed", "succeeded"], bot.text

    base = f"http://127.0.0.1:{bot.port}/metrics"
    assert httpx.get(base, timeout=10).status_code == 401
    wrong = httpx.get(base, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and METRICS_TOKEN not in wrong.text
    text = scrape(bot.port, METRICS_TOKEN)
    page = parse(text)

    ok = {"kind": "deploy", "env": "dev", "outcome": "succeeded"}
    failed = {**ok, "outcome": "failed"}
    assert page[key("chatops_operations_total", **ok)] == 1
    assert page[key("chatops_operations_total", **failed)] == 1
    took = "chatops_operation_duration_seconds"
    assert page[key(f"{took}_count", **ok)] == 1 and page[key(f"{took}_sum", **ok)] > 0
    assert page[key(f"{took}_bucket", **failed, le="+Inf")] == 1
    # counted in the worker process (the front only records and acks), shown by the front
    refused = key(
        "chatops_slack_api_errors_total", method="chat.postMessage", error="channel_not_found"
    )
    assert page[refused] == 1
    assert page[key("chatops_slack_api_requests_total", method="chat.postMessage")] >= 3
    assert page[key("chatops_registry_requests_total", outcome="ok")] >= 2
    # both processes asked Slack who the bot is: the front's counts and the worker's, summed
    assert page[key("chatops_slack_api_requests_total", method="auth.test")] >= 2
    # nothing waits once both ended
    assert page[key("chatops_operation_oldest_queued_seconds")] == 0
    assert page[key("chatops_slack_job_oldest_queued_seconds")] == 0
    assert page[key("chatops_state_database_up")] == 1

    for secret in (BOT_TOKEN, SIGNING_SECRET, METRICS_TOKEN, str(tmp_path), ALICE, "iris v"):
        assert secret not in text
    labels = {v for (_, pairs) in page for _, v in pairs}
    assert not [v for v in labels if "/" in v and not v.startswith("/api/v2")], labels


def test_cml_calls_are_counted_by_route_template_and_status_class(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bot does
    make_bot: Callable[..., Bot],
    registry_uri: str,
) -> None:
    # the workspace answers one listing of models with 503: retried, counted as a 5xx
    cml.faults.update({"fail_next": 1, "fail_status": 503, "fail_operations": ["ListModels"]})
    bot = make_bot(cml_environment(cml), tracking_uri=registry_uri, **{CML_KEY_VAR: cml.api_key})
    bot.start()
    assert run_deploys(bot, slack_api, "iris v1") == ["succeeded"], bot.text
    text = scrape(bot.port)
    page = parse(text)

    def calls(method: str, route: str, status: str) -> float:
        return page.get(
            key("chatops_cml_requests_total", method=method, route=route, status=status), 0
        )

    models = "/api/v2/projects/{id}/models"
    assert calls("GET", models, "5xx") == 1
    assert calls("GET", models, "2xx") >= 1
    assert calls("POST", models, "2xx") == 1
    assert calls("POST", f"{models}/{{id}}/builds", "2xx") == 1
    assert calls("POST", f"{models}/{{id}}/builds/{{id}}/deployments", "2xx") == 1
    seconds = key(
        "chatops_cml_request_duration_seconds_count", method="POST", route=f"{models}/{{id}}/builds"
    )
    assert page[seconds] == 1
    routes = {
        dict(pairs)["route"] for (name, pairs) in page if name == "chatops_cml_requests_total"
    }
    assert all(r.startswith("/api/v2/") for r in routes) and len(routes) <= 12, routes
    for secret in (cml.api_key, CML_PROJECT, cml.url, BOT_TOKEN):
        assert secret not in text


def test_socket_mode_serves_health_and_metrics_on_port(
    slack_api: SlackEmulator, registry_uri: str, tmp_path: Path
) -> None:
    from tests.slack_api.socket_mode import SocketModeServer

    server = SocketModeServer().start()
    slack_api.socket_url = server.url
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
    )
    env["SLACK_APP_TOKEN"] = slack_api.app_token
    env.pop("SLACK_SIGNING_SECRET")
    log = tmp_path / "bot.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "socket"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{low}"
    try:
        server.wait_connections(1, timeout=90)
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert ready.status_code == 200 and ready.json() == {"ready": True, "reason": None}
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"ok": True, "mode": "socket"}
        # events come over the socket: nothing of Slack's is served over HTTP
        assert httpx.post(f"{base}/slack/events", content=b"{}", timeout=5).status_code == 404
        page = parse(scrape(low))
    finally:
        proc.terminate()
        proc.wait(30)
        server.stop()
    assert page[key("chatops_state_database_up")] == 1
    assert page[key("chatops_slack_api_requests_total", method="auth.test")] >= 1
    assert "Socket Mode (health: /healthz" in log.read_text()
