"""Mentions are the bot's own: the people it means (who holds a lock, who asked, who approved)
are mentioned; whatever a user typed (`<@…>`, `<!here>`, `<#…>`) is shown literally and pings
nobody, however many of the people it names the settings know. Over signed requests to the
running front and the Slack Web API emulator."""

from __future__ import annotations

from tests.scenarios.slack.conftest import ALICE, RunningFront
from tests.scenarios.slack.test_namespace_mentions_home import BOB, people, settings

__all__ = ["people", "settings"]  # the fixtures: Alice administers dev, Bob develops

TYPED = f"<@{ALICE}> <@{BOB}> <!here> <#C0OPS|ops> asked for this freeze"
SHOWN = f"&lt;@{ALICE}&gt; &lt;@{BOB}&gt; &lt;!here&gt; &lt;#C0OPS|ops&gt; asked for this freeze"


def test_typed_mentions_ping_nobody_and_the_holder_is_mentioned(
    running_front: RunningFront,
) -> None:
    for line in (f"lock iris in dev {TYPED}", "deploy iris v1", "unlock iris in dev"):
        running_front.post("/mlops", line)
        running_front.drain()
    locked, refused, unlocked = (r.body["text"] for r in running_front.api.responses)

    assert SHOWN in locked and "<@" not in locked and "<!" not in locked
    # the bot means the holder: a mention; what was typed: shown as typed
    assert refused.startswith(f"iris in dev is frozen by <@{ALICE}> since ")
    assert SHOWN in refused
    assert refused.count("<@") == 1
    assert f"it was held by <@{ALICE}> for: {SHOWN}" in unlocked
    assert unlocked.count("<@") == 1
    # and every command these texts name is one this front registers
    assert "`/mlops unlock iris in dev`" in refused or "`/unlock iris in dev`" in refused


def test_a_viewer_is_told_what_they_can_do_not_to_promote(running_front: RunningFront) -> None:
    running_front.post("/deploy", "iris v1", user="U0EVE")
    running_front.drain()
    (answer,) = running_front.api.responses
    text = answer.body["text"]
    assert text.startswith("only admins of dev can deploy — you may look (`/mlops status`, ")
    assert "a developer of dev can ask for it with `/promote iris v1 to dev`" in text
