"""Canary deploys through the bot, with real model-server processes and real traffic: a
version promoted step by step by an admin, aborted by an admin, aborted by itself on errors
and on disagreement, promoted by itself after its bake time; and what /status and the audit
trail say meanwhile. Decisions are typed commands of another admin, as a click would be."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from commands.base import Context, StatusReport
from commands.registry import execute
from core.admission.roles import Actor
from core.config import Rollout, Thresholds
from core.events import Event, EventKind, Notice, Outcome, Refusal
from core.marks import plain
from core.outbox import ALERT
from core.runtime import Runtime
from core.targets.base import EndpointRef
from core.targets.local.target import LocalTarget, Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.local.twin import (
    FAILING,
    FAILS_ON_V5,
    OFF_BY_HALF,
    ROW,
    SAME,
    SAME_AGAIN,
    TWIN,
)
from tests.scenarios.conftest import canary_runtime
from tests.scenarios.test_deploy_scale_status import run

BOB = Actor(id="console", name="bob")  # another admin: the console's user id is one
REF = EndpointRef("dev", TWIN)


class Cards(Recorder):
    """Keeps every event; lets a test wait for a canary's card at a given step."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def report(self, event: Event) -> None:
        with self.changed:
            super().report(event)
            self.changed.notify_all()

    def card(
        self, *, share: int, when: Callable[[dict[str, object]], bool] = lambda _c: True
    ) -> dict[str, object]:
        """The newest card at `share` that `when` accepts, waiting for it (60 s at most)."""

        def found() -> dict[str, object] | None:
            cards = [e.data for e in self.events if e.kind is EventKind.CARD]
            return next((c for c in reversed(cards) if c["share"] == share and when(c)), None)

        with self.changed:
            assert self.changed.wait_for(lambda: found() is not None or self.ended, 60), self.text
        card = found()
        assert card is not None, plain(self.text)
        return card

    @property
    def ended(self) -> bool:
        return any(e.kind in (EventKind.SUCCEEDED, EventKind.FAILED) for e in self.events)


def _deploy(rt: Runtime, line: str) -> tuple[Cards, threading.Thread, list[object]]:
    cards, result = Cards(), []
    worker = threading.Thread(target=lambda: result.append(run(rt, line, cards)), daemon=True)
    worker.start()
    return cards, worker, result


def _as_bob(rt: Runtime, line: str) -> object:
    return execute(line, Context(core=rt, actor=BOB, reporter=Recorder(), text=line))


def _send(rt: Runtime, n: int, body: object = ROW) -> Counter[str]:
    target = rt.deployer.targets["dev"]
    assert isinstance(target, LocalTarget)
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            answer = client.post(target.url(REF), json=body)
            seen[f"{answer.headers.get('x-model')} {answer.status_code}"] += 1
    return seen


def _finished(worker: threading.Thread, result: list[object]) -> Outcome:
    worker.join(60)
    assert not worker.is_alive()
    (outcome,) = result
    assert isinstance(outcome, Outcome)
    return outcome


def test_an_admin_promotes_a_canary_step_by_step_and_the_new_version_then_serves_alone(
    make: Callable[[Rollout], Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10,50 --shadow 20")

    first = cards.card(share=10)
    assert (first["step"], first["steps"], first["next"], first["shadow"]) == (1, 2, 50, 20)
    seen = _send(rt, 1000)
    new = seen[f"{TWIN}/{SAME_AGAIN} 200"]
    assert seen[f"{TWIN}/{SAME} 200"] + new == 1000 and abs(new / 10 - 10) <= 3, seen

    shown = cards.card(share=10, when=lambda c: (c["sides"][1] or {}).get("requests") == new)  # type: ignore[index,union-attr]
    serving, candidate = shown["sides"]  # type: ignore[misc]
    assert (serving["version"], candidate["version"]) == (SAME, SAME_AGAIN)
    assert serving["requests"] == 1000 - new and candidate["errors"] == 0
    copied = cards.card(share=10, when=lambda c: (c["shadowed"] or {}).get("compared", 0) >= 20)  # type: ignore[union-attr]
    assert copied["shadowed"]["agreement"] == 1.0  # type: ignore[index]

    status = run(rt, f"/status {TWIN}")
    assert isinstance(status, StatusReport)
    (ep,) = status.endpoints
    assert "in its canary: v2 answers 10% of requests, 20% of the rest copied to it" in plain(
        ep.underway
    )
    assert "agreement 100.0% of" in ep.underway

    promoted = _as_bob(rt, f"/canary {TWIN} promote")
    assert isinstance(promoted, Notice), promoted
    assert plain(promoted.text).startswith(f"the canary of {TWIN} in dev at 10% (op-")
    cards.card(share=50)
    late = _as_bob(rt, f"/canary {TWIN} promote at 10%")  # a click on the first step's card
    assert isinstance(late, Refusal)
    assert "is at 50% now, no longer at 10%: nothing was done" in plain(late.text)
    seen = _send(rt, 1000)
    assert abs(seen[f"{TWIN}/{SAME_AGAIN} 200"] / 10 - 50) <= 3, seen

    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote at 50%"), Notice)
    outcome = _finished(worker, result)
    assert outcome.ok, outcome.text
    assert _send(rt, 50) == Counter({f"{TWIN}/{SAME_AGAIN} 200": 50})
    (checked,) = [e.message for e in cards.events if e.kind is EventKind.DONE and e.step == "check"]
    assert f"; it predicts as v{SAME} on all 2 rows of the example" in checked
    done = [e.message for e in cards.events if e.kind is EventKind.DONE and e.step == "canary"]
    assert [d.split(" after ")[0] for d in done] == ["10% promoted by bob", "50% promoted by bob"]
    audited = [(a.action, a.outcome) for a in rt.repos.audit.entries(endpoint=TWIN)]
    assert audited[:4] == [
        ("deploy", "succeeded"),
        ("canary", "succeeded"),
        ("canary", "refused"),
        ("canary", "succeeded"),
    ]


def test_an_admin_aborts_a_canary_and_what_served_serves_alone_again(
    make: Callable[[Rollout], Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 25")
    cards.card(share=25)
    assert isinstance(_as_bob(rt, f"/canary {TWIN} abort in dev"), Notice)
    outcome = _finished(worker, result)
    assert not outcome.ok
    assert plain(outcome.text).startswith("aborted by bob at 25%")
    assert f"{TWIN} v{SAME} still serves" in plain(outcome.text)
    told = [e.message for e in cards.events if e.step == "discard"]
    assert told == ["the new deployment was stopped: every request goes to what served before"]
    assert _send(rt, 100) == Counter({f"{TWIN}/{SAME} 200": 100})
    endpoint = rt.repos.endpoints.get("dev", TWIN)
    assert endpoint is not None and endpoint.version == SAME
    assert rt.repos.locks.get("dev", TWIN) is None  # the endpoint is free again
    assert rt.outbox.take(ALERT, frozenset({""})) is None  # on-call hears only automatic aborts


def test_a_failing_new_version_is_aborted_by_itself_and_never_takes_all_traffic(
    make: Callable[[Rollout], Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600, abort=Thresholds(error_rate=0.05, min_requests=20)))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{FAILING} --canary 50")
    cards.card(share=50)
    _send(rt, 100, FAILS_ON_V5)  # v5 fails these; v1 answers them
    outcome = _finished(worker, result)
    assert not outcome.ok
    text = plain(outcome.text)
    assert text.startswith(f"aborted by itself at 50%: v{FAILING} failed ")
    assert "more than the 5% allowed" in text
    assert _send(rt, 50, FAILS_ON_V5) == Counter({f"{TWIN}/{SAME} 200": 50})
    # the abort is the bot's own command, audited as such
    (row,) = [a for a in rt.repos.audit.entries(endpoint=TWIN) if a.action == "auto-canary"]
    assert (row.actor_name, row.outcome) == ("chatops", "succeeded")
    assert row.command.startswith(
        f"canary {TWIN} abort in dev at 50% (by itself: v{FAILING} failed "
    )
    # on-call is owed it, in the transaction that ended the deploy; an admin's abort is not
    owed = rt.outbox.take(ALERT, frozenset({""}))
    assert owed is not None and owed.payload["kind"] == "aborted"
    said = plain(owed.payload["text"])
    assert said.startswith(f"{TWIN} in dev: the canary of alice's deploy was aborted by itself")
    assert said.endswith(f"; {TWIN} v{SAME} still serves at {rt.deployer.targets['dev'].url(REF)}")


def test_a_shadow_that_disagrees_is_aborted_by_itself_and_callers_only_saw_what_serves(
    make: Callable[[Rollout], Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600, abort=Thresholds(disagreement=0.1, min_requests=20)))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{OFF_BY_HALF} --shadow 50")
    cards.card(share=0)
    seen = _send(rt, 200)
    assert seen == Counter({f"{TWIN}/{SAME} 200": 200})  # a shadow answers no caller
    outcome = _finished(worker, result)
    assert not outcome.ok
    assert (
        f"aborted by itself at 0%: v{OFF_BY_HALF} predicted otherwise than what serves for 100% of"
        in plain(outcome.text)
    )


def test_a_step_is_promoted_by_itself_after_its_bake_time_unless_held(
    make: Callable[[Rollout], Runtime], clock: FakeClock
) -> None:
    rt = make(Rollout(bake_s=60, auto_promote=True))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10")
    cards.card(share=10)
    assert isinstance(_as_bob(rt, f"/canary {TWIN} hold"), Notice)
    cards.card(share=10, when=lambda c: c["held_by"] == "bob")
    clock.advance(61)
    held = cards.card(share=10, when=lambda c: c["baked_s"] >= 60)  # type: ignore[operator]
    assert held["held_by"] == "bob" and worker.is_alive()  # held: still at 10%
    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote"), Notice)
    assert _finished(worker, result).ok

    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME} --canary 10")
    cards.card(share=10)
    clock.advance(61)
    outcome = _finished(worker, result)
    assert outcome.ok
    done = [e.message for e in cards.events if e.kind is EventKind.DONE and e.step == "canary"]
    assert done and done[0].startswith("10% baked 61 s: promoted by itself")


def test_a_canary_handed_over_bakes_only_what_is_left_of_its_step_in_the_next_process(
    make: Callable[[Rollout], Runtime],
    tmp_path: Path,
    twin_uri: str,
    zygote: Zygote,
    clock: FakeClock,
) -> None:
    policy = Rollout(bake_s=60, auto_promote=True)
    rt = make(policy)
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10")
    cards.card(share=10)
    seen = _send(rt, 200)
    clock.advance(40)
    cards.card(share=10, when=lambda c: c["baked_s"] >= 40)  # type: ignore[operator]
    rt.leases.hand_over()  # this process stops: it leaves the canary where it is
    assert _finished(worker, result).elsewhere

    # the next process takes it over, on the same endpoint, from what was recorded
    after = canary_runtime(tmp_path / "state0", twin_uri, zygote, clock, policy)
    try:
        op = after.runner.take()
        assert op is not None and op.attempts == 2 and op.canary_share == 10
        more = Cards()
        resumed: list[object] = []
        taken = threading.Thread(
            target=lambda: resumed.append(after.runner.run(op, more)), daemon=True
        )
        taken.start()
        counted = sum(seen.values())

        def all_counted(card: dict[str, Any]) -> bool:  # the counts go on from the first life
            return sum(side["requests"] for side in card["sides"]) == counted

        card = more.card(share=10, when=all_counted)
        assert 40 <= card["baked_s"] < 60, card  # type: ignore[operator]
        clock.advance(21)  # 61 s since the step began, 21 s since the takeover
        outcome = _finished(taken, resumed)
        assert outcome.ok, more.text
        done = [e.message for e in more.events if e.kind is EventKind.DONE and e.step == "canary"]
        # promoted 21 s (and the real seconds the test took) after the takeover, not 60
        baked = [int(n) for n in re.findall(r"^10% baked (\d+) s: promoted by itself", done[0])]
        assert baked and 61 <= baked[0] < 90, done
        assert _send(after, 50) == Counter({f"{TWIN}/{SAME_AGAIN} 200": 50})
    finally:
        after.close()
