"""A front that registers only the namespace command (`CHATOPS_SLACK_DIRECT_COMMANDS=false`,
as in an Enterprise Grid org where another app owns `/deploy`): everything it tells people to
type is typed through `/mlops`. Over signed requests to the running front and the Slack Web
API emulator."""

from __future__ import annotations

import re

import pytest

from bot.slack.settings import SlackSettings
from tests.scenarios.slack.conftest import RunningFront


@pytest.fixture
def slack_settings(slack_settings: SlackSettings, monkeypatch: pytest.MonkeyPatch) -> SlackSettings:
    monkeypatch.setenv("CHATOPS_SLACK_DIRECT_COMMANDS", "false")
    return SlackSettings()


def test_every_hint_goes_through_the_namespace(running_front: RunningFront) -> None:
    for line in ("lock iris in dev audit", "deploy iris v1"):
        running_front.post("/mlops", line)
        running_front.drain()
    locked, refused = (r.body["text"] for r in running_front.api.responses)
    usage = running_front.post("/mlops", "scale iris 4").json()["text"]
    helped = running_front.post("/mlops", "help").json()["text"]
    assert "`/mlops unlock iris in dev`" in locked
    assert "`/mlops unlock iris in dev`" in refused
    assert "Usage: `/mlops scale &lt;endpoint&gt;" in usage
    assert "/mlops deploy &lt;model&gt;" in helped
    shown = "\n".join((locked, refused, usage, helped))
    assert set(re.findall(r"(?<![\w/.:<>@-])/[a-z]+", shown)) == {"/mlops"}
    unregistered = running_front.post("/unlock", "iris in dev")  # acked, never run
    assert (unregistered.status_code, unregistered.content) == (200, b"")
