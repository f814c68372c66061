"""Jobs taken again after their bot process died: given up, and said so, after too many."""

from __future__ import annotations

from bot.slack.intake.jobs import SlashCommand
from bot.slack.intake.work import Work
from bot.slack.posting.poster import Poster, web_client
from core.runtime import Runtime
from core.store.jobs import JobState
from tests.scenarios.slack.conftest import ALICE, BOT_TOKEN, OPS
from tests.slack_api.emulator import SlackEmulator

FRONTS, KINDS = frozenset({"slack"}), frozenset({"command"})


def test_a_job_whose_bot_process_died_too_often_is_given_up_and_its_requester_told(
    runtime: Runtime, slack_api: SlackEmulator
) -> None:
    queue = runtime.jobs
    asked = SlashCommand(
        command="/deploy",
        text="iris v1",
        user_id=ALICE,
        channel_id=OPS,
        response_url=slack_api.response_url("/deploy"),
    )
    queue.record(key="command:1.1", front="slack", job=asked, kind="command")
    # three bot processes took it in turn and died before it recorded anything
    for n in range(runtime.settings.max_attempts):
        taken = queue.claim(f"dead-{n}", lease_s=-1, fronts=FRONTS, kinds=KINDS)
        assert taken is not None
    row = queue.claim("alive", lease_s=60, fronts=FRONTS, kinds=KINDS)
    assert row is not None and row.attempts == runtime.settings.max_attempts + 1

    work = Work(
        runtime=runtime, poster=Poster(web_client(token=BOT_TOKEN, base_url=slack_api.api_url))
    )
    assert work.run(row) is JobState.ABANDONED

    (told,) = slack_api.responses
    assert told.body["response_type"] == "ephemeral"
    assert told.body["text"] == (
        "I stopped 3 times while running `/deploy iris v1`, so I gave up on it; it was not run "
        "again. `/mlops status` shows what serves now; run it again if it is still wanted."
    )
    assert runtime.repos.operations.recent() == []
    assert slack_api.messages(OPS) == []
