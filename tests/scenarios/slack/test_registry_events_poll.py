"""Registry events from the embedded registry (no tracking server): polled by every bot
process, each announced once, in the announce channel with its buttons."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bot.slack.posting.announce import SlackAnnouncer
from bot.slack.posting.poster import Poster, web_client
from core.announcements import Announcement, Delivery
from core.config import Settings
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import BOT_TOKEN
from tests.slack_api.emulator import SlackEmulator

ANNOUNCE = "C0MODELS"


@pytest.fixture
def registry(tmp_path: Path) -> MlflowClient:
    """A registry of its own with `churn` v1 (accuracy 0.911), registered before the bot."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("churn")
    _version(client, accuracy=0.911)
    return client


def _version(client: MlflowClient, *, accuracy: float) -> int:
    experiment = client.get_experiment_by_name("churn") or None
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("churn")
    run = client.create_run(experiment_id, tags={"mlflow.user": "dana"})
    client.log_metric(run.info.run_id, "accuracy", accuracy)
    client.set_terminated(run.info.run_id)
    made = client.create_model_version("churn", "file:///nowhere/model", run_id=run.info.run_id)
    return int(made.version)


@pytest.fixture
def settings(tmp_path: Path, registry: MlflowClient) -> Settings:
    return make_settings(tmp_path / "state", registry.tracking_uri, registry_poll_s=5)


@pytest.fixture
def two_bots(settings: Settings, zygote: Zygote) -> Iterator[tuple[Runtime, Runtime]]:
    """Two bot processes' cores over one state database and one registry."""
    first, second = Runtime(settings, zygote=zygote), Runtime(settings, zygote=zygote)
    yield first, second
    first.close()
    second.close()


def _both_poll(first: Runtime, second: Runtime) -> list[Announcement]:
    """Both bots look at the same moment, as two processes' watches may."""
    start = threading.Barrier(2)
    found: list[list[Announcement]] = [[], []]

    def poll(n: int, rt: Runtime) -> None:
        start.wait()
        found[n] = rt.announcements.poll(front="slack")

    threads = [threading.Thread(target=poll, args=(n, rt)) for n, rt in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found[0] + found[1]


def test_each_change_is_announced_once_by_one_of_two_polling_bots(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient
) -> None:
    first, second = two_bots
    assert first.announcements.delivery is Delivery.POLL
    # what was there before anyone watched is taken in, not announced
    assert _both_poll(first, second) == []

    _version(registry, accuracy=0.931)
    found = _both_poll(first, second)
    assert [a.text for a in found] == ["churn v2 registered by dana — accuracy 0.931"]
    assert found[0].deploy_env == "dev" and found[0].promote_env == "prod"

    registry.set_registered_model_alias("churn", "champion", "2")
    registry.set_model_version_tag("churn", "2", "validated", "yes")
    assert sorted(a.text for a in _both_poll(first, second)) == [
        "churn @champion now points at v2 — accuracy 0.931",
        "churn v2 tagged validated=yes — accuracy 0.931",
    ]
    # the same value again is no news; the alias moving away and back is, each time
    registry.set_model_version_tag("churn", "2", "validated", "yes")
    assert _both_poll(first, second) == []
    registry.set_registered_model_alias("churn", "champion", "1")
    assert [a.text for a in _both_poll(first, second)] == [
        "churn @champion now points at v1 — accuracy 0.911"
    ]
    registry.set_registered_model_alias("churn", "champion", "2")
    assert [a.text for a in _both_poll(first, second)] == [
        "churn @champion now points at v2 — accuracy 0.931"
    ]
    assert _both_poll(first, second) == []


def test_a_version_registered_with_tags_is_one_announcement(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient
) -> None:
    first, second = two_bots
    assert first.announcements.poll(front="slack") == []
    run = registry.create_run(registry.create_experiment("tagged"))
    registry.create_model_version(
        "churn", "file:///nowhere/model", run_id=run.info.run_id, tags={"team": "growth"}
    )
    assert [a.text for a in _both_poll(first, second)] == ["churn v2 registered"]


def test_the_announcement_in_slack_is_escaped_and_offers_both_buttons(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient, slack_api: SlackEmulator
) -> None:
    first, _ = two_bots
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    first.announcements.poll(front="slack")
    registry.set_model_version_tag("churn", "1", "note", "<!channel> *ship it*")
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    announcer = SlackAnnouncer(runtime=first, poster=poster, channel=ANNOUNCE)
    for announcement in first.announcements.poll(front="slack"):
        announcer.post(announcement)

    (message,) = slack_api.messages(ANNOUNCE)
    assert message.text == "churn v1 tagged note=&lt;!channel&gt; *ship it* — accuracy 0.911"
    assert "<!channel>" not in json.dumps(message.blocks)
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    assert [(b["text"]["text"], json.loads(b["value"])) for b in actions["elements"]] == [
        ("Deploy to dev", {"model": "churn", "version": 1, "env": "dev"}),
        ("Request promotion to prod", {"model": "churn", "version": 1, "env": "prod"}),
    ]


def test_an_announcement_slack_refused_is_posted_once_by_the_next_bot_that_tries(
    two_bots: tuple[Runtime, Runtime], registry: MlflowClient, slack_api: SlackEmulator
) -> None:
    first, second = two_bots
    slack_api.add_channel(ANNOUNCE, name="models", member=True)
    first.announcements.poll(front="slack")
    registry.set_model_version_tag("churn", "1", "stage", "ready")
    poster = Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    announcers = [
        SlackAnnouncer(runtime=rt, poster=poster, channel=ANNOUNCE) for rt in (first, second)
    ]
    slack_api.fail("chat.postMessage", "channel_not_found")  # Slack refuses the first post
    for announcement in first.announcements.poll(front="slack"):
        announcers[0].post(announcement)
    assert slack_api.messages(ANNOUNCE) == []
    # still owed: another bot posts it once the first one's hold lapsed, and only then
    assert not announcers[1].post_owed()
    first.outbox.repo.let_lapse(first.outbox.owner)
    assert announcers[1].post_owed()
    (message,) = slack_api.messages(ANNOUNCE)
    assert message.text == "churn v1 tagged stage=ready — accuracy 0.911"
    assert not announcers[0].post_owed() and not announcers[1].post_owed()
    assert len(slack_api.messages(ANNOUNCE)) == 1
