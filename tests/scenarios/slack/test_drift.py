"""An environment's registry alias (`@prod`) against what serves there: moved in the registry
by hand (MlflowClient), the drift is announced once across bot processes with a button for
each way back, each admitted as its typed command; /status marks the endpoint."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from bot.slack.app import EVENTS_PATH, SlackFront
from bot.slack.intake.jobs import RegistryNotice
from bot.slack.posting.announce import SlackAnnouncer
from bot.slack.posting.poster import Poster, web_client
from bot.slack.settings import SlackSettings
from core.admission.roles import Actor
from core.config import Settings
from core.drift import Drift
from core.events import Notice, Outcome, Refusal
from core.marks import unmarked
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import Recorder, make_settings
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    SIGNING_SECRET,
    post_command,
    signed_post,
)
from tests.slack_api.emulator import SlackEmulator

ANNOUNCE = "C0MODELS"
BOB = "U0BOB"  # a developer of every environment
ADMIN = Actor(id=ALICE, name="alice")


@pytest.fixture(scope="module")
def registry_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> str:
    """iris v1 and v2 in a registry no other test moves aliases in."""
    root = tmp_path_factory.mktemp("drift-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    return uri


@pytest.fixture
def registry(registry_of_its_own: str) -> Iterator[MlflowClient]:
    client = MlflowClient(registry_of_its_own)
    yield client
    if "prod" in _aliases(client):  # each test starts with no @prod
        client.delete_registered_model_alias("iris", "prod")


def _aliases(client: MlflowClient) -> dict[str, int]:
    return {a: int(v) for a, v in (client.get_registered_model("iris").aliases or {}).items()}


@pytest.fixture
def settings(tmp_path: Path, registry_of_its_own: str) -> Settings:
    """prod names the alias `prod`; alice administers, bob develops, in every environment."""
    base = make_settings(tmp_path / "state", registry_of_its_own, registry_poll_s=3600)
    for env in base.environments:
        env.admins, env.developers = [ALICE], [BOB]
        if env.name == "prod":
            env.alias = "prod"
    return base


@pytest.fixture
def two_bots(settings: Settings, zygote: Zygote) -> Iterator[tuple[Runtime, Runtime]]:
    """Two bot processes' cores over one state database and one registry."""
    first, second = Runtime(settings, zygote=zygote), Runtime(settings, zygote=zygote)
    yield first, second
    first.shut_down_endpoints()
    first.close()
    second.close()


def _both_look(first: Runtime, second: Runtime) -> list[Drift]:
    """Both bots read the registry at the same moment, as two processes' polls may."""
    start = threading.Barrier(2)
    found: list[list[Drift]] = [[], []]

    def look(n: int, rt: Runtime) -> None:
        start.wait()
        rt.announcements.poll(front="slack")
        found[n] = rt.announcements.drifted(front="slack")

    threads = [threading.Thread(target=look, args=(n, rt)) for n, rt in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found[0] + found[1]


def _deploy(rt: Runtime, version: int, *, wait: bool = True) -> Outcome:
    done = rt.deployer.deploy(
        model="iris",
        version=version,
        env="prod",
        actor=ADMIN,
        command=f"/deploy iris v{version} to prod",
        reporter=Recorder(),
        wait=wait,
    )
    assert isinstance(done, Outcome) and done.ok, done
    return done


def _marks(rt: Runtime) -> list[str]:
    found = rt.deployer.status(env="prod")
    assert not isinstance(found, Refusal)
    return [ep.drift for ep in found]


def test_a_moved_alias_is_announced_once_across_two_bots_and_status_marks_it(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient
) -> None:
    first, second = two_bots
    _deploy(first, 1)
    # an alias the bot never saw name anything has not drifted from what serves
    assert _both_look(first, second) == []
    registry.set_registered_model_alias("iris", "prod", "1")
    assert _both_look(first, second) == []  # it agrees with what serves
    assert _marks(first) == [""]

    # moved while an operation holds the endpoint: the rollout moves it itself at its end
    queued = first.deployer.scale(
        endpoint="iris",
        replicas=2,
        env="prod",
        actor=ADMIN,
        command="/scale iris 2 replicas in prod",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.data == {"queued": True}
    registry.set_registered_model_alias("iris", "prod", "2")
    assert _both_look(first, second) == []
    assert _marks(first) == [""]

    # the operation ended (serving v1 still): one bot of the two announces it, once
    assert first.worker().run_pending() == 1
    found = _both_look(first, second)
    assert [d.text for d in found] == ["`@prod` now names iris v2, prod serves v1"]
    assert _both_look(first, second) == []
    assert _marks(first) == _marks(second) == ["@prod names v2"]

    # deleted: a new drift, announced once too
    registry.delete_registered_model_alias("iris", "prod")
    assert [d.text for d in _both_look(first, second)] == [
        "`@prod` no longer names any version of iris, prod serves v1"
    ]
    assert _marks(first) == ["@prod names no version"]
    # back where it was: the same drift as before is never announced twice
    registry.set_registered_model_alias("iris", "prod", "2")
    assert _both_look(first, second) == []


@pytest.fixture
def front(
    two_bots: tuple[Runtime, Runtime], slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The first bot's Slack front over HTTP, announcing in ANNOUNCE: its address."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    slack_api.add_user(BOB, name="bob")
    made = SlackFront(SlackSettings(announce_channel=ANNOUNCE), runtime=two_bots[0])
    server = made.http_server(host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    yield url
    assert made.dispatcher.wait_idle(90), "jobs still running"
    server.close()
    made.close()


def _click(url: str, api: SlackEmulator, user: str, message: Any, label: str) -> str:
    """`label` clicked on `message` by `user`, signed as Slack signs it: the response's name."""
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    button = next(b for b in actions["elements"] if b["text"]["text"] == label)
    name = f"click-{user}-{label}-{time.monotonic()}"
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "container": {"type": "message", "message_ts": message.ts, "channel_id": ANNOUNCE},
        "channel": {"id": ANNOUNCE, "name": "models"},
        "message": {"ts": message.ts, "text": message.text},
        "response_url": api.response_url(name),
        "actions": [{**button, "block_id": "announced", "action_ts": str(time.time())}],
    }
    answer = signed_post(url, urllib.parse.urlencode({"payload": json.dumps(payload)}))
    assert answer.status_code == 200
    return name


def _typed(api: SlackEmulator, needle: str) -> list[str]:
    """What typed /mlops commands were answered, that say `needle`."""
    said = [str(r.body.get("text", "")) for r in api.responses if r.name == "/mlops"]
    return [t for t in said if needle in t]


def _told(api: SlackEmulator, name: str, message: Any) -> str:
    """What the clicker was answered, privately or in the announcement's thread."""
    private = [str(r.body.get("text", "")) for r in api.responses if r.name == name]
    thread = [m.text for m in api.messages(ANNOUNCE) if m.thread_ts == message.ts]
    return "\n".join(private + thread)


def test_the_buttons_of_a_drift_are_the_typed_commands_of_whoever_clicks(
    two_bots: tuple[Runtime, Runtime],
    registry: MlflowClient,
    front: str,
    slack_api: SlackEmulator,
) -> None:
    first, _ = two_bots
    _deploy(first, 1)
    registry.set_registered_model_alias("iris", "prod", "1")
    first.announcements.poll(front="slack")
    registry.set_registered_model_alias("iris", "prod", "2")
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    announcer = SlackAnnouncer(runtime=first, poster=poster, channel=ANNOUNCE)
    for drift in first.announcements.drifted(front="slack"):
        announcer.post(drift)
    (message,) = [m for m in slack_api.messages(ANNOUNCE) if "serves" in m.text]
    assert message.text == "`@prod` now names iris v2, prod serves v1"
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    assert [(b["text"]["text"], json.loads(b["value"])) for b in actions["elements"]] == [
        ("Deploy v2 to prod", {"model": "iris", "version": 2, "env": "prod"}),
        ("Move @prod back to v1", {"model": "iris", "version": 1, "env": "prod"}),
    ]

    # /status marks it, for anyone who asks
    answer = post_command(front, slack_api, "/mlops", "status in prod", user=BOB)
    assert answer.status_code == 200
    slack_api.wait_for(
        lambda api: any("@prod names v2" in json.dumps(r.body) for r in api.responses)
    )

    # a developer's clicks are refused as typing them would be; nothing changes
    asked = _click(front, slack_api, BOB, message, "Deploy v2 to prod")
    slack_api.wait_for(lambda api: _told(api, asked, message))
    assert _told(slack_api, asked, message) == (
        "only admins of prod can deploy — ask for it with `/promote iris v2 to prod`"
    )
    typed = post_command(front, slack_api, "/mlops", "deploy iris v2 to prod", user=BOB)
    assert typed.status_code == 200
    slack_api.wait_for(lambda api: _typed(api, "only admins"))
    assert _typed(slack_api, "only admins") == [_told(slack_api, asked, message)]
    asked = _click(front, slack_api, BOB, message, "Move @prod back to v1")
    slack_api.wait_for(lambda api: _told(api, asked, message))
    assert _told(slack_api, asked, message) == "only admins of prod can move its registry alias"
    typed = post_command(front, slack_api, "/mlops", "alias iris v1 in prod", user=BOB)
    slack_api.wait_for(lambda api: len(_typed(api, "only admins")) == 2)
    assert _typed(slack_api, "only admins")[1] == _told(slack_api, asked, message)
    assert _aliases(registry) == {"champion": 2, "prod": 2}
    assert first.repos.endpoints.get("prod", "iris").version == 1  # type: ignore[union-attr]

    # an admin moves the alias back: written in the registry, audited; what serves stays
    asked = _click(front, slack_api, ALICE, message, "Move @prod back to v1")
    slack_api.wait_for(lambda api: _told(api, asked, message))
    assert "@prod of iris now names v1 (it named v2): prod serves v1" in _told(
        slack_api, asked, message
    )
    assert _aliases(registry)["prod"] == 1
    rows = [r for r in first.repos.audit.entries(limit=10) if r.command.startswith("/mlops alias")]
    assert [(r.actor_name, r.command, r.outcome) for r in rows] == [
        (f"<@{ALICE}>", "/mlops alias iris v1 in prod if serving", "succeeded"),
        (f"<@{BOB}>", "/mlops alias iris v1 in prod", "refused"),  # typed
        (f"<@{BOB}>", "/mlops alias iris v1 in prod if serving", "refused"),  # clicked
    ]
    assert first.announcements.drifted(front="slack") == []

    # … and deploys what the alias named, with one click: the same admission as typing it
    registry.set_registered_model_alias("iris", "prod", "2")
    asked = _click(front, slack_api, ALICE, message, "Deploy v2 to prod")
    slack_api.wait_for(
        lambda api: (
            (ep := first.repos.endpoints.get("prod", "iris")) is not None and ep.version == 2
        ),
        timeout=90,
    )
    assert first.announcements.drifted(front="slack") == []  # alias and serving agree
    assert _marks(first) == [""]


def test_alias_refuses_without_an_alias_a_version_the_registry_lacks_and_while_held(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient
) -> None:
    first, _ = two_bots

    def move(version: int, env: str) -> Notice | Refusal:
        line = f"/alias iris v{version} in {env}"
        return first.aliases.move(model="iris", version=version, env=env, actor=ADMIN, command=line)

    assert move(1, "dev") == Refusal(
        "dev names no registry alias: an admin sets `alias` in its settings to have the "
        "registry say what serves there"
    )
    missing = move(9, "prod")
    assert isinstance(missing, Refusal)
    assert missing.text == "iris has no version 9 (versions: v1, v2): @prod was not moved"
    _deploy(first, 1, wait=False)
    held = move(1, "prod")
    assert isinstance(held, Refusal) and "under way: it moves @prod itself" in held.text
    assert "prod" not in _aliases(registry)
    assert first.worker().run_pending() == 1
    assert _aliases(registry)["prod"] == 1  # the deploy moved it itself (write-back)
    assert move(1, "prod") == Notice("@prod of iris names v1 already")
    moved = move(2, "prod")
    assert isinstance(moved, Notice)
    assert unmarked(moved.text) == (
        "@prod of iris now names v2 (it named v1); prod serves v1 (`deploy iris v2 to prod` "
        "serves v2)"
    )
    assert _aliases(registry)["prod"] == 2


def test_an_alias_event_from_the_webhook_looks_for_drift_at_once(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient, slack_api: SlackEmulator
) -> None:
    """Delivered by MLflow's webhook (a tracking server): moved, then deleted."""
    first, second = two_bots
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    announcers = [
        SlackAnnouncer(runtime=rt, poster=poster, channel=ANNOUNCE) for rt in (first, second)
    ]
    _deploy(first, 1)
    registry.set_registered_model_alias("iris", "prod", "1")
    created = RegistryNotice(
        event="model_version_alias.created", model="iris", version=1, alias="prod"
    )
    tagged = RegistryNotice(
        event="model_version_tag.set",
        model="iris",
        version=1,
        tag="chatops.prod.serving",
        value='{"since": "2026-12-06T15:00:00Z"}',
    )
    for announcer in announcers:  # delivered to both: what the deploy wrote, no news
        announcer.notice(created)
        announcer.notice(tagged)
    # an environment's alias is told by the deploy that moved it, or as a drift: never
    # as one more "now points at" beside them
    assert _headlines(slack_api) == []

    registry.set_registered_model_alias("iris", "prod", "2")
    moved = created.model_copy(update={"version": 2})
    for announcer in announcers:
        announcer.notice(moved)
    registry.delete_registered_model_alias("iris", "prod")
    deleted = RegistryNotice(
        event="model_version_alias.deleted", model="iris", version=0, alias="prod"
    )
    for announcer in announcers:
        announcer.notice(deleted)
    assert _headlines(slack_api) == [
        "`@prod` now names iris v2, prod serves v1",
        "`@prod` no longer names any version of iris, prod serves v1",
    ]


def _headlines(api: SlackEmulator) -> list[str]:
    """What each announcement says, without the metrics it compares."""
    return [m.text.split(" — ")[0] for m in api.messages(ANNOUNCE)]


def test_a_drift_slack_refused_is_posted_once_by_the_next_bot_that_tries(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient, slack_api: SlackEmulator
) -> None:
    first, second = two_bots
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    announcers = [
        SlackAnnouncer(runtime=rt, poster=poster, channel=ANNOUNCE) for rt in (first, second)
    ]
    _deploy(first, 1)
    registry.set_registered_model_alias("iris", "prod", "1")
    first.announcements.poll(front="slack")
    registry.set_registered_model_alias("iris", "prod", "2")
    slack_api.fail("chat.postMessage", "channel_not_found")  # Slack refuses the first post
    (drift,) = first.announcements.drifted(front="slack")
    announcers[0].post(drift)
    assert slack_api.messages(ANNOUNCE) == []
    # still owed: another bot posts it, buttons and all, once the first one's hold lapsed
    assert not announcers[1].post_owed()
    first.outbox.repo.let_lapse(first.outbox.owner)
    assert announcers[1].post_owed()
    (message,) = slack_api.messages(ANNOUNCE)
    assert message.text == "`@prod` now names iris v2, prod serves v1"
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    assert [b["text"]["text"] for b in actions["elements"]] == [
        "Deploy v2 to prod",
        "Move @prod back to v1",
    ]
    assert not announcers[0].post_owed() and not announcers[1].post_owed()


def test_a_registry_that_cannot_take_the_write_is_said_so_and_nothing_moves(
    tmp_path: Path, zygote: Zygote
) -> None:
    with socket.socket() as s:  # a port nobody listens on: the registry refuses connections
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(tmp_path / "state", f"http://127.0.0.1:{port}", registry_wait_s=2)
    for env in settings.environments:
        env.admins, env.alias = [ALICE], env.name
    rt = Runtime(settings, zygote=zygote)
    try:
        line = "/alias iris v1 in prod"
        refused = rt.aliases.move(model="iris", version=1, env="prod", actor=ADMIN, command=line)
        assert isinstance(refused, Refusal)
        assert refused.text.startswith("the registry did not move @prod of iris: the MLflow ")
        assert "cannot be reached (connection refused" in refused.text
        (row,) = rt.repos.audit.entries()
        assert (row.command, row.outcome) == (line, "refused")
    finally:
        rt.close()
