"""`/mlops token`: a personal API token shown once to its owner alone, kept only as a hash,
listed without its secret, revocable."""

from __future__ import annotations

import re

from commands.base import Context
from commands.registry import execute
from core.admission.roles import Actor
from core.events import NullReporter
from core.runtime import Runtime
from tests.clock import FakeClock
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront, texts
from tests.scenarios.slack.test_namespace_mentions_home import DM, direct, mention, post_event

SECRET = re.compile(r"chatops_[A-Za-z0-9_-]{44,}")


def test_a_token_is_shown_once_to_its_owner_and_never_kept(running_front: RunningFront) -> None:
    api = running_front.api
    assert running_front.post("/mlops", "token").status_code == 200
    api.wait_for(lambda a: len(a.responses) == 1, timeout=30)
    answer = api.responses[0].body
    assert answer["response_type"] == "ephemeral"
    (secret,) = SECRET.findall(answer["text"])
    (token_id,) = re.findall(r"API token (tok-[0-9a-f]+)", answer["text"])
    assert f"/token revoke {token_id}" in answer["text"]
    running_front.drain()

    # nothing the bot keeps holds the secret: not the database, not its answers owed
    state = running_front.runtime.settings.state_dir
    for path in state.glob("chatops.db*"):
        assert secret.encode() not in path.read_bytes()
    assert all(m.text.find(secret) < 0 for m in api.messages("C0OPS"))

    running_front.post("/mlops", "token list")
    api.wait_for(lambda a: len(a.responses) == 2, timeout=30)
    listed = api.responses[1].body["text"]
    assert token_id in listed and "never used" in listed and "chatops_" not in listed

    running_front.post("/mlops", f"token revoke {token_id}")
    api.wait_for(lambda a: len(a.responses) == 3, timeout=30)
    assert f"API token {token_id} is revoked" in api.responses[2].body["text"]
    assert running_front.runtime.tokens.holder(secret) is None


def test_the_console_gives_no_tokens(runtime: Runtime) -> None:
    ctx = Context(
        core=runtime,
        actor=Actor(id="console", name="console"),
        reporter=NullReporter(),
        text="/token",
    )
    reply = execute("/token", ctx)
    assert not reply.ok and "only where the bot can show one to you alone" in reply.text
    assert runtime.tokens.listed(ctx.actor).tokens == []


def test_a_token_asked_for_in_a_dm_or_a_mention_is_shown_to_its_owner_alone(
    running_front: RunningFront,
) -> None:
    api = running_front.api
    api.add_channel(DM, name="alice-dm", member=True, is_im=True)
    post_event(running_front, direct("token"), event_id="Ev1")
    api.wait_for(lambda a: SECRET.search(texts(a.messages(DM))) is not None, timeout=30)
    post_event(running_front, mention("token"), event_id="Ev2")
    api.wait_for(lambda a: any(SECRET.search(e.text) for e in a.ephemerals), timeout=30)
    (ephemeral,) = api.ephemerals
    assert ephemeral.user == ALICE and ephemeral.channel == OPS
    # nothing of it in the channel itself
    assert SECRET.search(texts(api.messages(OPS))) is None
    assert len(running_front.runtime.tokens.listed(Actor(id=ALICE, name=ALICE)).tokens) == 2


def test_an_expired_token_is_listed_as_expired(
    running_front: RunningFront, clock: FakeClock
) -> None:
    """`/mlops token list` after a token's expiry says it expired, not that it expires on a
    day already past."""
    api, runtime = running_front.api, running_front.runtime
    issued = runtime.tokens.issue(Actor(id=ALICE, name="alice"))
    clock.advance(runtime.settings.api_token_ttl_s + 60)
    assert runtime.tokens.holder(issued.secret) is None
    running_front.post("/mlops", "token list")
    api.wait_for(lambda a: len(a.responses) == 1, timeout=30)
    listed = api.responses[0].body["text"]
    assert f"expired {issued.expires_at:%Y-%m-%d}" in listed, listed
    assert "expires" not in listed, listed


def test_a_working_token_is_listed_however_many_were_revoked(
    running_front: RunningFront, clock: FakeClock
) -> None:
    """`/mlops token list` shows the tokens that still work before revoked ones, and says how
    many it left out, rather than silently cutting the list at its newest twenty."""
    api, tokens = running_front.api, running_front.runtime.tokens
    alice = Actor(id=ALICE, name="alice")
    kept = tokens.issue(alice)
    for _ in range(21):
        clock.advance(60)
        tokens.revoke(alice, tokens.issue(alice).id)
    running_front.post("/mlops", "token list")
    api.wait_for(lambda a: len(a.responses) == 1, timeout=30)
    listed = api.responses[0].body["text"]
    lines = listed.splitlines()
    assert kept.id in lines[1], listed
    assert "2 more not shown" in listed, listed
