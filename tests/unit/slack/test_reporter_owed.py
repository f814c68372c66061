"""A failure's broadcast reply is posted once even when its end is told twice (a bot process
died after posting it, before marking it sent): the reply carries its outbox id in Slack's
message metadata, and the process that tells it again looks for that id in the thread.
A real ThreadReporter and Poster against the Slack emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.slack.posting.poster import Poster, web_client
from bot.slack.posting.reporter import OWED_EVENT, ThreadReporter
from core import scrub
from core.events import OWED, RETOLD, Event, EventKind
from core.scrub import Scrubber
from tests.slack_api.emulator import SlackEmulator, start_emulator

TOKEN = "xoxb-test-token"
CHANNEL = "C0001"
FAILED = "iris v3 could not be loaded"


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with start_emulator(bot_token=TOKEN) as emulator:
        emulator.add_channel(CHANNEL, name="ops")
        emulator.add_user("U0001", name="alice")
        yield emulator


@pytest.fixture
def poster(slack: SlackEmulator) -> Poster:
    return Poster(web_client(token=TOKEN, base_url=slack.api_url), attempts=1)


def live(poster: Poster, told: list[dict[str, Any]]) -> ThreadReporter:
    return ThreadReporter(
        poster=poster,
        channel=CHANNEL,
        user="U0001",
        command="deploy iris v3 to dev",
        respond=lambda **message: told.append(message),
        min_interval=0,
    )


def retold(poster: Poster, where: dict[str, Any]) -> ThreadReporter:
    return ThreadReporter.resuming(where, poster=poster, bot_name="chatops", min_interval=0)


def end(reporter: ThreadReporter, owed: str, *, again: bool = False) -> None:
    """What an operation tells: the start, then its failure, owed as outbox row `owed`;
    told `again` as the Runner tells an end a dead process left unmarked."""
    reporter.report(Event("op-1", EventKind.STARTED, "", "alice is deploying iris v3", 0.0))
    data: dict[str, Any] = {"serving": "nothing", OWED: owed}
    if again:
        data[RETOLD] = True
    reporter.report(Event("op-1", EventKind.FAILED, "start", FAILED, 1.0, data))


def failure_replies(slack: SlackEmulator) -> list[Any]:
    return [
        m for m in slack.messages(CHANNEL) if m.thread_ts and m.text.startswith(f":x: {FAILED}")
    ]


def test_the_failure_reply_carries_its_outbox_id(slack: SlackEmulator, poster: Poster) -> None:
    end(live(poster, []), "owed-1")
    [reply] = failure_replies(slack)
    assert reply.reply_broadcast is True
    assert reply.metadata == {"event_type": OWED_EVENT, "event_payload": {"owed": "owed-1"}}


def test_an_end_told_again_after_its_reply_was_posted_is_not_posted_twice(
    slack: SlackEmulator, poster: Poster
) -> None:
    first = live(poster, [])
    end(first, "owed-1")
    end(retold(poster, first.where), "owed-1", again=True)
    assert len(failure_replies(slack)) == 1
    # the parent says how it ended, edited in place, once
    [parent] = [m for m in slack.messages(CHANNEL) if m.thread_ts is None]
    assert ":x: failed" in parent.text
    assert slack.calls_to("conversations.replies")[0].args["include_all_metadata"] == "1"


def test_an_end_told_again_that_never_reached_the_thread_is_posted_once(
    slack: SlackEmulator, poster: Poster
) -> None:
    # the first process opened the thread and died before telling how it ended
    first = live(poster, [])
    first.report(Event("op-1", EventKind.STARTED, "", "alice is deploying iris v3", 0.0))
    # another end of the same thread, owed as another row, does not count for this one
    end(first, "owed-0")
    end(retold(poster, first.where), "owed-1", again=True)
    owed = [r.metadata["event_payload"]["owed"] for r in failure_replies(slack) if r.metadata]
    assert owed == ["owed-0", "owed-1"]


def test_a_thread_that_cannot_be_read_gets_the_reply_rather_than_none(
    slack: SlackEmulator, poster: Poster
) -> None:
    first = live(poster, [])
    end(first, "owed-1")
    slack.scopes = [s for s in slack.scopes if s != "channels:history"]
    end(retold(poster, first.where), "owed-1", again=True)
    assert [c.error for c in slack.calls_to("conversations.replies")] == ["missing_scope"]
    assert len(failure_replies(slack)) == 2


def test_the_outbox_id_survives_a_secret_that_is_a_word_of_it(
    slack: SlackEmulator, poster: Poster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database password `chatops` (as CI's is) is masked in every text, but the message's
    metadata is the bot's own ids: kept whole, or Slack refuses the reply."""
    secrets = Scrubber()
    secrets.register_secret("chatops")
    monkeypatch.setattr(scrub, "_default", secrets)
    end(live(poster, []), "owed-1")
    [reply] = failure_replies(slack)
    assert reply.metadata == {"event_type": OWED_EVENT, "event_payload": {"owed": "owed-1"}}
