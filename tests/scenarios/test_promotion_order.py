"""The promotion order on the local target: prod takes a version only after it served healthy
in dev for 30 minutes (summed over its stretches there, since its last failure); an admin may
override it with a reason, audited and said in the operation's thread.

Real registry, real model servers; minutes pass on the runtime's FakeClock."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from bot.console.render import ConsoleReporter
from commands.base import Context, Reply, UsageError
from commands.registry import execute
from core.admission.approvals import ApprovalRequested, Decided, Held
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.config import PromotionOrder
from core.errors import ChatOpsError
from core.events import EventKind, Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from core.targets.base import EndpointRef
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder, make_settings

ADMIN = Actor(id="console", name="alice")
DEVELOPER = Actor(id="U0DEV", name="dave")
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
MINUTE = 60.0


@pytest.fixture
def ordered(
    tmp_path: Path, registry_uri: str, zygote: Zygote, clock: FakeClock
) -> Iterator[Runtime]:
    """dev, and prod that takes only what served healthy in dev for 30 minutes."""
    base = make_settings(tmp_path / "state", registry_uri)
    dev, prod = base.environments
    prod = prod.model_copy(
        update={"promotion": PromotionOrder(after="dev", minutes=30), "developers": ["U0DEV"]}
    )
    settings = base.model_copy(update={"environments": [dev, prod]})
    rt = Runtime(settings, zygote=zygote, clock=clock)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


def run(rt: Runtime, line: str, who: Actor = ADMIN, recorder: Recorder | None = None) -> Reply:
    return execute(line, Context(core=rt, actor=who, reporter=recorder or Recorder(), text=line))


def serving(rt: Runtime, env: str) -> tuple[str, int] | None:
    row = rt.repos.endpoints.get(env, "iris")
    return (row.model, row.version) if row else None


def predicts(url: str) -> bool:
    body = {"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
    return httpx.post(url, json=body, timeout=10).status_code == 200


def test_prod_refuses_until_dev_served_long_enough_saying_where_and_how_long(
    ordered: Runtime, clock: FakeClock
) -> None:
    first = run(ordered, "/deploy iris v1 to prod")
    assert isinstance(first, Refusal)
    assert plain(first.text).startswith(
        "iris v1 has not served in dev yet — deploy it there first: `/deploy iris v1 to dev`"
    )
    assert serving(ordered, "prod") is None

    assert run(ordered, "/deploy iris v1 to dev").ok
    clock.advance(12 * MINUTE + 5)
    early = run(ordered, "/deploy iris v1 to prod")
    assert isinstance(early, Refusal)
    assert plain(early.text).startswith(
        "iris v1 has served in dev for 12 min of the 30 min prod requires (18 min to go)"
    )
    assert 'an admin may override it with a reason: `/deploy iris v1 to prod --override "' in (
        plain(early.text)
    )
    assert serving(ordered, "prod") is None
    (entry, *_) = ordered.repos.audit.entries(endpoint="iris", limit=1)
    assert (entry.env, entry.outcome, entry.detail) == ("prod", "refused", early.text)

    clock.advance(18 * MINUTE)
    done = run(ordered, "/deploy iris v1 to prod")
    assert isinstance(done, Outcome) and done.ok, plain(done.text)
    assert serving(ordered, "prod") == ("iris", 1)
    assert predicts(done.url)


def test_minutes_in_dev_add_up_across_redeploys(ordered: Runtime, clock: FakeClock) -> None:
    assert run(ordered, "/deploy iris v1 to dev").ok
    clock.advance(20 * MINUTE)
    assert run(ordered, "/deploy iris v2 to dev").ok  # v1's stretch ends, healthy
    clock.advance(5 * MINUTE)  # v2's minutes are not v1's
    assert run(ordered, "/deploy iris v1 to dev").ok
    clock.advance(4 * MINUTE)

    short = run(ordered, "/deploy iris v1 to prod")
    assert isinstance(short, Refusal)
    assert plain(short.text).startswith(
        "iris v1 has served in dev for 24 min of the 30 min prod requires"
    )
    assert "(6 min to go)" in plain(short.text)

    clock.advance(6 * MINUTE)
    assert run(ordered, "/deploy iris v1 to prod").ok
    assert serving(ordered, "prod") == ("iris", 1)


def _kill_host(rt: Runtime, env: str) -> None:
    target = rt.targets[env]
    pid = target._call(EndpointRef(env, "iris"), {"op": "status"})["pid"]  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)

    def down() -> bool:
        try:
            return not target.health(EndpointRef(env, "iris")).up
        except ChatOpsError:  # the host is going away
            return False

    _until(down)


def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    # a killed process goes away in its own time: poll for it, briefly
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_dev_stretch_that_went_down_counts_for_nothing(
    ordered: Runtime, clock: FakeClock
) -> None:
    assert run(ordered, "/deploy iris v1 to dev").ok
    clock.advance(40 * MINUTE)
    _kill_host(ordered, "dev")

    down = run(ordered, "/deploy iris v1 to prod")
    assert isinstance(down, Refusal)
    assert plain(down.text).startswith(
        "iris v1 has served in dev for 0 min of the 30 min prod requires"
    )
    assert "it is down in dev now, so its current stretch does not count" in plain(down.text)

    # what replaces it finds it down: its stretch ended in a failure, for good
    assert run(ordered, "/deploy iris v2 to dev").ok
    clock.advance(40 * MINUTE)
    failed = run(ordered, "/deploy iris v1 to prod")
    assert isinstance(failed, Refusal)
    assert plain(failed.text).startswith("iris v1 failed in dev at ")
    assert "(v1 was down when v2 replaced it) and has not served healthy there since" in (
        failed.text
    )
    assert "deploy it there again: `/deploy iris v1 to dev`" in plain(failed.text)
    assert serving(ordered, "prod") is None

    # v2 went through none of it
    assert run(ordered, "/deploy iris v2 to prod").ok
    assert serving(ordered, "prod") == ("iris", 2)


def test_an_admin_overrides_with_a_reason_audited_and_said_in_the_thread(
    ordered: Runtime,
) -> None:
    recorder = Recorder()
    line = '/deploy iris v1 to prod --override "hotfix for incident 42"'
    outcome = run(ordered, line, recorder=recorder)

    assert isinstance(outcome, Outcome) and outcome.ok, plain(recorder.text)
    assert serving(ordered, "prod") == ("iris", 1)
    said = [e for e in recorder.events if e.kind is EventKind.INFO and e.step == "order"]
    assert [plain(e.message) for e in said] == [
        "promotion order overridden: alice overrode the promotion order of prod (iris v1 has "
        "not served in dev yet — deploy it there first: `/deploy iris v1 to dev` (prod takes "
        "a version only after 30 min of healthy serving in dev)): hotfix for incident 42"
    ]
    assert recorder.events.index(said[0]) == 1  # right under the headline

    trail = [(a.action, a.outcome, a.actor_name) for a in ordered.repos.audit.entries()]
    assert trail == [("deploy", "succeeded", "alice"), ("override", "overridden", "alice")]
    override = ordered.repos.audit.entries()[1]
    assert override.command == line
    assert override.detail.endswith(": hotfix for incident 42")

    # the console shows the same line in the operation's output
    console = Console(record=True, width=400)
    ConsoleReporter(console).report(said[0])
    assert "overrode the promotion order of prod" in console.export_text()


def test_a_developer_cannot_override(ordered: Runtime) -> None:
    reply = run(ordered, '/deploy iris v1 to prod --override "trust me"', DEVELOPER)

    assert isinstance(reply, Refusal)
    assert plain(reply.text).startswith("only admins of prod can override its promotion order")
    assert serving(ordered, "prod") is None
    (entry, *_) = ordered.repos.audit.entries(limit=1)
    assert (entry.actor_id, entry.action, entry.outcome) == ("U0DEV", "deploy", "refused")


@pytest.mark.parametrize(
    "line", ["/deploy iris v1 to prod --override", '/deploy iris v1 to prod --override ""']
)
def test_an_override_without_a_reason_is_a_usage_error(ordered: Runtime, line: str) -> None:
    reply = run(ordered, line)

    assert isinstance(reply, UsageError)
    assert reply.problem == 'Say why you override the promotion order: `--override "<reason>"`.'
    assert serving(ordered, "prod") is None
    assert ordered.repos.audit.entries() == []  # nothing was attempted


def test_an_approval_waits_for_the_order_unless_overridden(
    ordered: Runtime, clock: FakeClock
) -> None:
    asked = run(ordered, "/promote iris v1 to prod", DEVELOPER)
    assert isinstance(asked, ApprovalRequested)
    request = asked.approval.id

    held = run(ordered, f"/approve {request}")
    assert isinstance(held, Held)
    assert plain(held.text).startswith("iris v1 has not served in dev yet")
    assert f"request {request} stays pending" in plain(held.text)
    assert f'`/approve {request} --override "<reason>"`' in plain(held.text)
    assert ordered.approvals.lookup(request).state == "pending"  # type: ignore[union-attr]
    assert serving(ordered, "prod") is None

    recorder = Recorder()
    line = f'/approve {request} --override "customer demo at 3pm"'
    decided = run(ordered, line, recorder=recorder)
    assert isinstance(decided, Decided) and decided.ok, plain(decided.text)
    assert serving(ordered, "prod") == ("iris", 1)
    assert any(
        e.step == "order" and e.message.endswith(": customer demo at 3pm") for e in recorder.events
    )
    override = next(a for a in ordered.repos.audit.entries() if a.action == "override")
    assert (override.actor_name, override.outcome) == ("alice", "overridden")


def test_a_plan_shows_the_promotion_order_as_its_own_line(
    ordered: Runtime, clock: FakeClock
) -> None:
    assert run(ordered, "/deploy iris v1 to dev").ok
    clock.advance(10 * MINUTE + 5)
    early = run(ordered, "/plan deploy iris v1 to prod")
    assert isinstance(early, PlanReport)
    line = {c.name: c for c in early.requirements}["promotion"]
    assert not line.ok and not early.ok
    assert plain(line.text).startswith(
        "iris v1 has served in dev for 10 min of the 30 min prod requires (20 min to go)"
    )
    assert plain(early.verdict) == f"it would be refused: {plain(line.text)}"
    assert serving(ordered, "prod") is None  # a plan changes nothing

    clock.advance(20 * MINUTE)
    late = run(ordered, "/deploy iris v1 to prod --dry-run")
    assert isinstance(late, PlanReport)
    line = {c.name: c for c in late.requirements}["promotion"]
    assert line.ok and late.ok
    assert plain(line.text) == "iris v1 served healthy in dev for 30 min (prod requires 30)"
    assert serving(ordered, "prod") is None


def test_an_override_is_audited_only_when_the_deploy_it_overrides_goes_ahead(
    ordered: Runtime,
) -> None:
    """A frozen endpoint refuses the deploy: its override overrode nothing, and /history
    must not say it did."""
    assert run(ordered, "/lock iris in prod change freeze").ok
    line = '/deploy iris v1 to prod --override "hotfix for incident 42"'
    refused = run(ordered, line)

    assert isinstance(refused, Refusal) and "frozen" in refused.text, refused.text
    assert serving(ordered, "prod") is None
    trail = [(a.action, a.outcome) for a in ordered.repos.audit.entries()]
    assert trail == [("deploy", "refused"), ("lock", "succeeded")]


def test_a_plan_honours_the_override_its_command_honours(ordered: Runtime) -> None:
    """The admin's plan with `--override` says what the deploy then does: it goes ahead."""
    line = '/deploy iris v1 to prod --override "hotfix for incident 42"'
    planned = run(ordered, line + " --dry-run")

    assert isinstance(planned, PlanReport)
    order = {c.name: c for c in planned.requirements}["promotion"]
    assert order.ok and planned.ok, planned.verdict
    assert plain(order.text).startswith(
        "alice overrode the promotion order of prod (iris v1 has not"
    )
    assert order.text.endswith(": hotfix for incident 42")
    assert [a.action for a in ordered.repos.audit.entries()] == ["deploy"]  # planned only

    done = run(ordered, line)
    assert isinstance(done, Outcome) and done.ok, done.text
    assert serving(ordered, "prod") == ("iris", 1)

    # a developer's override is refused by the plan as by the deploy, in the same words
    line = '/deploy iris v2 to prod --override "trust me"'
    theirs = run(ordered, line + " --dry-run", DEVELOPER)
    assert isinstance(theirs, PlanReport) and not theirs.ok
    refused = run(ordered, line, DEVELOPER)
    assert isinstance(refused, Refusal)
    assert refused.text.startswith("only admins of prod can override its promotion order")
    assert theirs.verdict == f"it would be refused: {refused.text}"
