"""Where write-back, the drift guard and the time machine meet, as a team lives it: an admin's
deploy moves `@prod` inside the operation and no drift is ever announced for it (registry
polled at its fastest, the webhook delivering the alias event the bot's own write caused);
a hand-moved `@prod` is announced once and repaired with one click, whose buttons then change
nothing more; `/history --at` names what `@prod` named at the moment asked."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from bot.slack.app import EVENTS_PATH, SlackFront
from bot.slack.intake.jobs import RegistryNotice
from bot.slack.posting.announce import SlackAnnouncer
from bot.slack.posting.poster import Poster, web_client
from bot.slack.settings import SlackSettings
from commands.registry import COMMANDS
from core.config import Settings
from core.events import Outcome
from core.oncall.alerts import LogAlerts
from core.oncall.watching import CHECK_S
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.mlflow_server import MlflowServer
from tests.scenarios.slack.conftest import ALICE, BOT_TOKEN, SIGNING_SECRET, post_command
from tests.scenarios.slack.test_drift import ANNOUNCE, BOB, _aliases, _click, _told
from tests.scenarios.test_deploy_scale_status import ADMIN, run
from tests.scenarios.test_write_back import BODY, StopsTheRegistry, with_alias
from tests.scenarios.watch_support import fragile_settings, send
from tests.slack_api.emulator import SlackEmulator

DRIFT = "`@prod` "  # how every drift announcement begins, and no other message


@pytest.fixture(scope="module")
def registry_uri_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("truth-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    return uri


@pytest.fixture
def registry(registry_uri_of_its_own: str) -> Iterator[MlflowClient]:
    client = MlflowClient(registry_uri_of_its_own)
    yield client
    if "prod" in _aliases(client):
        client.delete_registered_model_alias("iris", "prod")


def _settings(state: Path, uri: str, **overrides: object) -> Settings:
    base = make_settings(state, uri, **overrides)
    for env in base.environments:
        env.admins, env.developers = [ALICE], [BOB]
        if env.name == "prod":
            env.alias = "prod"
    return base


@pytest.fixture
def bot(
    tmp_path: Path,
    registry_uri_of_its_own: str,
    zygote: Zygote,
    slack_api: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Runtime, str]]:
    """One bot over HTTP, polling the registry at its fastest, announcing in ANNOUNCE."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    slack_api.add_user(BOB, name="bob")
    settings = _settings(tmp_path / "state", registry_uri_of_its_own, registry_poll_s=0.01)
    rt = Runtime(settings, zygote=zygote)
    made = SlackFront(SlackSettings(announce_channel=ANNOUNCE), runtime=rt)
    server = made.http_server(host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    feed = _webhook(rt, slack_api).follow()
    assert feed is not None
    stop = threading.Event()

    def polling() -> None:  # the registry polled at its fastest: one look after another
        while not stop.is_set():
            feed.poll()

    poller = threading.Thread(target=polling, daemon=True)
    poller.start()
    yield rt, f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    stop.set()
    poller.join(30)
    assert made.dispatcher.wait_idle(90), "jobs still running"
    server.close()
    made.close()
    rt.shut_down_endpoints()
    rt.close()


def _said(api: SlackEmulator) -> list[str]:
    """Every text the bot posted, updated or answered."""
    out = [str(c.args.get("text") or "") for c in api.calls if c.method.startswith("chat.")]
    return out + [str(r.body.get("text") or "") for r in api.responses]


def _drifts(api: SlackEmulator) -> list[str]:
    return [m.text for m in api.messages(ANNOUNCE) if m.text.startswith(DRIFT)]


def _sound(api: SlackEmulator) -> None:
    """Nothing unexpected said; every `/mlops <word>` hinted at is a registered command."""
    for text in _said(api):
        assert "unexpected" not in text.lower() and "Traceback" not in text, text
        for word in re.findall(r"/mlops (\w+)", text):
            assert word in COMMANDS, (word, text)


def _serving(rt: Runtime) -> int | None:
    ep = rt.repos.endpoints.get("prod", "iris")
    return None if ep is None else ep.version


def _webhook(rt: Runtime, api: SlackEmulator) -> SlackAnnouncer:
    """What the bot does with an event MLflow's webhook delivers."""
    poster = Poster(web_client(token=BOT_TOKEN, base_url=api.api_url))
    return SlackAnnouncer(runtime=rt, poster=poster, channel=ANNOUNCE)


def test_an_admins_deploy_moves_the_alias_and_no_drift_is_ever_announced_for_it(
    bot: tuple[Runtime, str], registry: MlflowClient, slack_api: SlackEmulator
) -> None:
    rt, url = bot
    webhook = _webhook(rt, slack_api)
    for version in (1, 2):
        own = RegistryNotice(
            event="model_version_alias.created", model="iris", version=version, alias="prod"
        )
        assert post_command(url, slack_api, "/mlops", f"deploy iris v{version} to prod").is_success

        def ended(api: SlackEmulator, own: RegistryNotice = own, version: int = version) -> bool:
            # once written, while it runs and after it ended, the webhook delivers the event
            if _aliases(registry).get("prod") == version:
                webhook.notice(own)
            assert _drifts(api) == [], api.summary()
            return any(f"iris v{version} is live" in t for t in _said(api)) and not (
                rt.repos.operations.running()
            )

        slack_api.wait_for(ended, timeout=90)
        for _ in range(20):  # right after it ended, polled at the fastest and delivered
            rt.announcements.poll(front="slack")
            webhook.notice(own)
        assert _aliases(registry)["prod"] == version
        assert _serving(rt) == version
        assert _drifts(slack_api) == [], slack_api.summary()
        _sound(slack_api)

    # what @prod named at a moment between the two deploys: v1, which served then
    (first,) = rt.repos.served.intervals("prod", "iris", 1)
    assert first.ended is not None
    between = first.started + (first.ended - first.started) / 2
    moment = f"{between.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"
    asked = post_command(url, slack_api, "/mlops", f"history iris --at {moment}")
    assert asked.is_success
    slack_api.wait_for(lambda api: any("What served iris" in t for t in _said(api)), 30)
    (told,) = [t for t in _said(slack_api) if "What served iris" in t]
    assert "prod: iris v1 since " in told and "; @prod named v1" in told, told
    _sound(slack_api)


def _drift_message(api: SlackEmulator) -> Any:
    (message,) = [m for m in api.messages(ANNOUNCE) if m.text.startswith(DRIFT)]
    return message


def test_a_hand_moved_alias_is_repaired_with_one_click_and_its_buttons_then_change_nothing(
    bot: tuple[Runtime, str], registry: MlflowClient, slack_api: SlackEmulator
) -> None:
    rt, url = bot
    assert post_command(url, slack_api, "/mlops", "deploy iris v1 to prod").is_success
    slack_api.wait_for(lambda api: _serving(rt) == 1 and not rt.repos.operations.running(), 90)
    assert _aliases(registry)["prod"] == 1

    registry.set_registered_model_alias("iris", "prod", "2")  # by hand, in the registry
    slack_api.wait_for(lambda api: _drifts(api), timeout=30)
    for _ in range(20):
        rt.announcements.poll(front="slack")
        _webhook(rt, slack_api).notice(
            RegistryNotice(
                event="model_version_alias.created", model="iris", version=2, alias="prod"
            )
        )
    assert _drifts(slack_api) == ["`@prod` now names iris v2, prod serves v1"]  # once
    message = _drift_message(slack_api)
    _sound(slack_api)
    # the time machine tells the moved alias from what served
    # a moment is said to the second: the next whole second is after the move, whenever in
    # its second the move came (an earlier one may come before it)
    time.sleep(1.001 - datetime.now(UTC).microsecond / 1e6)
    moment = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z"
    assert post_command(url, slack_api, "/mlops", f"history iris --at {moment}").is_success
    slack_api.wait_for(lambda api: any("What served iris" in t for t in _said(api)), 30)
    (told,) = [t for t in _said(slack_api) if "What served iris" in t]
    assert "prod: iris v1 since " in told and "; @prod named v2" in told, told

    # an admin deploys what the alias names, with one click: alias and serving agree
    _click(url, slack_api, ALICE, message, "Deploy v2 to prod")
    slack_api.wait_for(lambda api: _serving(rt) == 2 and not rt.repos.operations.running(), 90)
    assert _aliases(registry)["prod"] == 2
    assert rt.announcements.drifted(front="slack") == []

    # the drift's buttons are stale now: each click is answered and changes nothing
    again = _click(url, slack_api, ALICE, message, "Deploy v2 to prod")
    slack_api.wait_for(lambda api: "already live" in _told(api, again, message), 30)
    back = _click(url, slack_api, ALICE, message, "Move @prod back to v1")
    slack_api.wait_for(lambda api: "not moved" in _told(api, back, message), 30)
    assert "prod serves iris v2 now, not v1" in _told(slack_api, back, message)
    assert _aliases(registry)["prod"] == 2 and _serving(rt) == 2
    for _ in range(5):
        rt.announcements.poll(front="slack")
    assert len(_drifts(slack_api)) == 1
    _sound(slack_api)

    # moved by hand again, and moved back with the button: no new drift
    registry.set_registered_model_alias("iris", "prod", "1")
    slack_api.wait_for(lambda api: len(_drifts(api)) == 2, timeout=30)
    assert _drifts(slack_api)[1] == "`@prod` now names iris v1, prod serves v2"
    fresh = [m for m in slack_api.messages(ANNOUNCE) if m.text.startswith(DRIFT)][1]
    moved = _click(url, slack_api, ALICE, fresh, "Move @prod back to v2")
    slack_api.wait_for(lambda api: "now names v2" in _told(api, moved, fresh), 30)
    assert _aliases(registry)["prod"] == 2 and _serving(rt) == 2
    for _ in range(5):
        rt.announcements.poll(front="slack")
    assert len(_drifts(slack_api)) == 2
    _sound(slack_api)


def test_a_real_registry_that_refuses_the_write_back_leaves_the_endpoint_live_and_one_drift(
    tmp_path: Path, zygote: Zygote, slack_api: SlackEmulator
) -> None:
    """A real `mlflow server`, down the moment traffic moved: the deploy ends live and says
    the registry refused; once the server is back, the drift this left is announced once."""
    (tmp_path / "mlflow").mkdir()
    server = MlflowServer(tmp_path / "mlflow").start()
    rt: Runtime | None = None
    try:
        create_demo_model(tracking_uri=server.uri, artifact_root=tmp_path / "artifacts")
        settings = _settings(tmp_path / "state", server.uri, registry_wait_s=2.0)
        for env in settings.environments:
            env.admins.append(ADMIN.id)
        rt = Runtime(settings, zygote=zygote)
        slack_api.add_channel(ANNOUNCE, name="models", member=True)
        feed = _webhook(rt, slack_api).follow()
        assert feed is not None
        client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
        assert run(rt, "/deploy iris v1 to prod").ok
        feed.poll()
        assert _aliases(client)["prod"] == 1

        refused = run(rt, "/deploy iris v2 to prod", seen := StopsTheRegistry(server))
        assert isinstance(refused, Outcome) and refused.ok, seen.text
        assert "; the registry refused to move @prod to v2: " in refused.text
        assert "unexpected" not in seen.text.lower()
        answer = httpx.post(refused.url, json=BODY, timeout=10)
        assert answer.status_code == 200 and answer.headers["x-model"] == "iris/2"
        for _ in range(3):  # a registry that cannot be read announces nothing, nor fails
            feed.poll()
        assert _drifts(slack_api) == []

        server.start()  # back: @prod still names v1 while v2 serves, told once
        for _ in range(5):
            feed.poll()
        assert _drifts(slack_api) == ["`@prod` now names iris v1, prod serves v2"]
        (actions,) = [b for b in _drift_message(slack_api).blocks if b["type"] == "actions"]
        assert [b["text"]["text"] for b in actions["elements"]] == [
            "Deploy v1 to prod",
            "Move @prod back to v2",
        ]
        _sound(slack_api)
    finally:
        server.stop()
        if rt is not None:
            rt.shut_down_endpoints()
            rt.close()


def test_the_watchs_automatic_rollback_moves_the_alias_back_and_announces_no_drift(
    tmp_path: Path, zygote: Zygote, clock: FakeClock, slack_api: SlackEmulator
) -> None:
    settings = with_alias(fragile_settings(tmp_path), "dev-serving", env="dev")
    settings = settings.model_copy(update={"registry_poll_s": 0.01})
    client = MlflowClient(settings.mlflow_tracking_uri)
    rt = Runtime(settings, zygote=zygote, clock=clock)
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    feed = _webhook(rt, slack_api).follow()
    assert feed is not None
    stop = threading.Event()

    def polling() -> None:  # at its fastest, through the deploys and the rollback
        while not stop.is_set():
            feed.poll()

    poller = threading.Thread(target=polling, daemon=True)
    poller.start()
    try:
        assert run(rt, "/deploy iris v2").ok
        deployed = run(rt, "/deploy iris v3")
        assert isinstance(deployed, Outcome) and deployed.ok
        watcher = rt.watcher(alerts=LogAlerts(say=lambda _: None), runner=rt.runner)
        watcher.tick()
        assert set(send(deployed.url, 30, 500.0)) == {500}
        clock.advance(CHECK_S)
        watcher.tick()
        assert watcher.settle(120)
        assert rt.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]
        assert _aliases(client)["dev-serving"] == 2
        stop.set()
        poller.join(30)
        for _ in range(5):
            feed.poll()
        drifts = [m.text for m in slack_api.messages(ANNOUNCE) if m.text.startswith("`@")]
        assert drifts == [], slack_api.summary()
        _sound(slack_api)
    finally:
        stop.set()
        poller.join(30)
        rt.shut_down_endpoints()
        rt.close()
