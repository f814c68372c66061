"""Registry events from a real `mlflow server` (SQLite backend, on loopback): the bot's
webhook registered once, deliveries verified, each event announced once by one of two bot
processes, and the announcement's buttons run through the core as typed commands would."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from mlflow.webhooks.delivery import _generate_hmac_signature

from bot.slack.app import SlackFront
from bot.slack.settings import SlackSettings
from bot.slack.transport.webhook import RegistryWebhook
from core.config import Settings
from core.oncall.checks import Verdict
from core.oncall.checks.events import registry_events_finding
from core.registry.mlflow import Registry
from core.registry.webhooks import ensure_webhook
from core.runtime import Runtime
from core.store.jobs import JobQueue
from core.targets.local.target import Zygote
from tests.conftest import make_settings
from tests.mlflow_server import MlflowServer
from tests.scenarios.slack.conftest import ALICE, signed_post
from tests.slack_api.emulator import SlackEmulator

SECRET = "mlflow-webhook-secret-5d1e"
ANNOUNCE = "C0MODELS"
BOB = "U0BOB"  # a developer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    uri: str
    client: MlflowClient
    runs: dict[float, tuple[str, str, str | None]]  # accuracy -> run id, source, model id


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`mlflow server` over SQLite, allowed to deliver webhooks to loopback over HTTP; two runs that
    logged an iris model, with accuracy 0.911 and 0.931."""
    root = tmp_path_factory.mktemp("mlflow-server")
    env = {
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        # the bot listens on plain HTTP here (behind TLS in a deployment)
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }
    server = MlflowServer(root, env=env).start()
    uri = server.uri
    client = MlflowClient(uri)
    runs = {accuracy: _logged_run(uri, client, accuracy) for accuracy in (0.911, 0.931)}
    yield Server(uri=uri, client=client, runs=runs)
    server.stop()


def _logged_run(uri: str, client: MlflowClient, accuracy: float) -> tuple[str, str, str | None]:
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.set_experiment("churn")
        x, y = load_iris(return_X_y=True, as_frame=True)
        with (
            mlflow.start_run(experiment_id=experiment.experiment_id, tags={"mlflow.user": "dana"}),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            info = mlflow.sklearn.log_model(
                LogisticRegression(max_iter=300).fit(x, y),
                name="model",
                pip_requirements=["scikit-learn"],
            )
            mlflow.log_metric("accuracy", accuracy)
    finally:
        mlflow.set_tracking_uri(before)
    logged = client.get_logged_model(info.model_id)
    return info.run_id, logged.artifact_location, info.model_id


@pytest.fixture(scope="module")
def bot_port() -> int:
    """One address for the bot's webhook through the module: MLflow caches its webhooks."""
    return _free_port()


@pytest.fixture
def settings(tmp_path: Path, mlflow_server: Server, bot_port: int) -> Settings:
    base = make_settings(
        tmp_path / "state",
        mlflow_server.uri,
        registry_webhook_url=f"http://127.0.0.1:{bot_port}/mlflow/webhook",
        registry_webhook_secret=SECRET,
    )
    for env in base.environments:
        env.admins, env.developers = [ALICE], [BOB]
    return base


@dataclass
class Bot:
    front: SlackFront
    runtime: Runtime
    url: str

    def drain(self) -> None:
        assert self.front.dispatcher.wait_idle(90), "jobs still running"


@pytest.fixture
def bots(
    settings: Settings,
    zygote: Zygote,
    slack_settings: SlackSettings,
    slack_api: SlackEmulator,
    bot_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Bot, Bot]]:
    """Two bot processes (each a front with its own dispatcher) over one state database:
    MLflow delivers to the first."""
    monkeypatch.setenv("CHATOPS_REGISTRY_WEBHOOK_SECRET", SECRET)
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    slack_api.add_user(BOB, name="bob")
    announcing = slack_settings.model_copy(update={"announce_channel": ANNOUNCE})
    made: list[tuple[Bot, Any]] = []
    for port in (bot_port, 0):
        runtime = Runtime(settings, zygote=zygote)
        front = SlackFront(announcing, runtime=runtime)
        server = front.http_server(host="127.0.0.1", port=port)
        threading.Thread(target=server.run, daemon=True).start()
        made.append((Bot(front, runtime, f"http://127.0.0.1:{server.port}"), server))
    yield made[0][0], made[1][0]
    for bot, server in made:
        server.close()
        bot.front.close()
    made[0][0].runtime.shut_down_endpoints()
    for bot, _ in made:
        bot.runtime.close()


def _register(server: Server, model: str, accuracy: float) -> None:
    run_id, source, model_id = server.runs[accuracy]
    if not server.client.search_registered_models(f"name = '{model}'"):
        server.client.create_registered_model(model)
    server.client.create_model_version(model, source, run_id=run_id, model_id=model_id)


def _announced(api: SlackEmulator, needle: str) -> list[Any]:
    return [m for m in api.messages(ANNOUNCE) if m.thread_ts is None and needle in m.text]


def _click(bot: Bot, api: SlackEmulator, user: str, message: Any, label: str) -> None:
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    button = next(b for b in actions["elements"] if b["text"]["text"] == label)
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "container": {"type": "message", "message_ts": message.ts, "channel_id": ANNOUNCE},
        "channel": {"id": ANNOUNCE, "name": "models"},
        "message": {"ts": message.ts, "text": message.text},
        "response_url": api.response_url(f"click-{user}-{label}"),
        "actions": [{**button, "block_id": "announced", "action_ts": str(time.time())}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    answer = signed_post(f"{bot.url}/slack/events", body)
    assert answer.status_code == 200


def _deliver(
    bot: Bot, payload: dict[str, Any], *, secret: str = SECRET, at: float | None = None
) -> httpx.Response:
    """A delivery built as MLflow builds one (its signer), to `bot`'s route."""
    body = json.dumps(payload)
    delivery, stamp = str(uuid.uuid4()), str(int(time.time() if at is None else at))
    return httpx.post(
        f"{bot.url}/mlflow/webhook",
        content=body.encode(),
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": _generate_hmac_signature(secret, delivery, stamp, body),
        },
    )


def _created(model: str, version: int) -> dict[str, Any]:
    return {
        "entity": "model_version",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"name": model, "version": str(version), "tags": {}, "run_id": None},
    }


def test_check_tells_whether_the_tracking_server_holds_the_bot_s_webhook(
    mlflow_server: Server, settings: Settings
) -> None:
    """Read only: `chatops check` never registers it; the bot does when it starts."""
    before = registry_events_finding(settings)
    assert (before.verdict, before.detail) == (
        Verdict.OK,
        "webhook: none yet; the bot registers it when it starts",
    )
    assert list(mlflow_server.client.list_webhooks()) == []
    registry = Registry(tracking_uri=mlflow_server.uri, wait_s=30)
    ensure_webhook(registry, url=settings.registry_webhook_url, secret=SECRET)
    after = registry_events_finding(settings)
    assert (after.verdict, after.detail) == (Verdict.OK, "webhook chatops (ACTIVE)")
    assert SECRET not in after.detail


def test_a_registered_version_is_announced_once_and_its_buttons_go_through_the_core(
    bots: tuple[Bot, Bot], mlflow_server: Server, slack_api: SlackEmulator, settings: Settings
) -> None:
    first, second = bots
    url, client = settings.registry_webhook_url, mlflow_server.client
    # every bot process makes sure of it at start-up: one webhook, never a second
    ids = {ensure_webhook(bot.runtime.registry, url=url, secret=SECRET) for bot in bots}
    ids.add(ensure_webhook(first.runtime.registry, url=url, secret=SECRET))
    assert [(w.webhook_id, w.url) for w in client.list_webhooks()] == [(ids.pop(), url)]

    _register(mlflow_server, "churn", 0.911)
    slack_api.wait_for(lambda api: _announced(api, "churn v1"), timeout=30)
    # the same event again, delivered (signed anew) to the other bot process
    assert _deliver(second, _created("churn", 1)).status_code == 200
    first.drain()
    second.drain()
    (message,) = _announced(slack_api, "churn v1")
    assert message.text == "churn v1 registered by dana — accuracy 0.911"

    # an admin of dev deploys it with one click; progress in the announcement's thread
    _click(first, slack_api, ALICE, message, "Deploy to dev")
    first.drain()
    second.drain()
    serving = first.runtime.repos.endpoints.get("dev", "churn")
    assert serving is not None and serving.version == 1
    thread = [m.text for m in slack_api.messages(ANNOUNCE) if m.thread_ts == message.ts]
    assert any("churn v1 is live at http://127.0.0.1:" in t for t in thread)

    _register(mlflow_server, "churn", 0.931)
    slack_api.wait_for(lambda api: _announced(api, "churn v2"), timeout=30)
    first.drain()
    second.drain()
    (message,) = _announced(slack_api, "churn v2")
    assert message.text == "churn v2 registered by dana — accuracy 0.931 (dev serves v1: 0.911)"

    # a developer's click on Deploy is refused by the core, privately; nothing changes
    _click(second, slack_api, BOB, message, "Deploy to dev")
    second.drain()
    first.drain()
    refused = [r for r in slack_api.responses if r.name == f"click-{BOB}-Deploy to dev"]
    assert [r.body["text"] for r in refused] == [
        "only admins of dev can deploy — ask for it with `/promote churn v2 to dev`"
    ]
    assert first.runtime.repos.endpoints.get("dev", "churn").version == 1  # type: ignore[union-attr]
    # … and asking for promotion posts the approval request, as /promote does
    _click(second, slack_api, BOB, message, "Request promotion to prod")
    second.drain()
    first.drain()
    requests = [m for m in slack_api.messages(ANNOUNCE) if "asks to deploy" in m.text]
    assert [m.text.split(" (request")[0] for m in requests] == [
        f"<@{BOB}> asks to deploy churn v2 to prod"
    ]


def test_forged_unsigned_stale_oversized_and_malformed_deliveries_announce_nothing(
    bots: tuple[Bot, Bot], slack_api: SlackEmulator
) -> None:
    first, _ = bots
    route = f"{first.url}/mlflow/webhook"
    body = json.dumps(_created("churn", 7))
    assert httpx.post(route, content=body, timeout=10).status_code == 401  # unsigned
    assert _deliver(first, _created("churn", 7), secret="guessed").status_code == 401
    assert _deliver(first, _created("churn", 7), at=time.time() - 400).status_code == 401
    huge = {**_created("churn", 7), "padding": "x" * 70_000}
    assert _deliver(first, huge).status_code == 413
    broken = {"entity": "model_version", "action": "created", "data": {"name": "churn"}}
    assert _deliver(first, broken).status_code == 400
    assert httpx.get(route, timeout=10).status_code == 405
    first.drain()
    assert slack_api.messages(ANNOUNCE) == []
    assert first.runtime.repos.registry_events.count() == 0


def test_without_a_secret_the_route_takes_no_delivery(settings: Settings) -> None:
    queue = JobQueue.open(settings.database_url)
    route = RegistryWebhook(queue=queue, nudge=lambda: None, secret=None)
    body = json.dumps(_created("churn", 1))
    delivery, stamp = "d-1", str(int(time.time()))

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=route)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
            return await http.post(
                "/mlflow/webhook",
                content=body,
                headers={
                    "X-MLflow-Delivery-Id": delivery,
                    "X-MLflow-Timestamp": stamp,
                    "X-MLflow-Signature": _generate_hmac_signature("", delivery, stamp, body),
                },
            )

    answer = asyncio.run(post())
    assert (answer.status_code, answer.json()["detail"]) == (401, "no webhook secret is configured")
    assert queue.unfinished(frozenset({"slack"})) == 0


def test_a_signed_event_for_a_version_the_registry_does_not_have_is_not_announced(
    bots: tuple[Bot, Bot], mlflow_server: Server, slack_api: SlackEmulator
) -> None:
    """Signed with the right secret, but MLflow answers RESOURCE_DOES_NOT_EXIST: no message
    with Deploy and Promote buttons for a model or version that is not there."""
    first, _ = bots
    _register(mlflow_server, "iris", 0.911)
    slack_api.wait_for(lambda api: _announced(api, "iris v1"), timeout=30)
    for model, version in (("ghostmodel", 7), ("iris", 99)):
        assert _deliver(first, _created(model, version)).status_code == 200
    first.drain()
    assert _announced(slack_api, "ghostmodel") == []
    assert _announced(slack_api, "iris v99") == []
    assert [m.text for m in _announced(slack_api, "iris")] == [
        "iris v1 registered by dana — accuracy 0.911"
    ]


def test_a_version_number_beyond_any_model_s_is_refused_at_the_door(
    bots: tuple[Bot, Bot], slack_api: SlackEmulator
) -> None:
    """A 40-digit version was taken (200), then overflowed in the worker: now 400, nothing
    recorded."""
    first, _ = bots
    for version in ("9" * 40, "0", "2147483648"):
        answer = _deliver(
            first, {**_created("churn", 1), "data": {"name": "churn", "version": version}}
        )
        assert (answer.status_code, answer.json()["detail"]) == (
            400,
            "the version is not one MLflow gives (1 to 2147483647)",
        )
    first.drain()
    assert slack_api.messages(ANNOUNCE) == []
    assert first.runtime.repos.registry_events.count() == 0
