"""A running rollout is cancelled, never unlocked from under it; /stop is an operation like
the others; a normal operation leaves no false "lease lapsed" alarm in the log."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest

from commands.base import Context, StatusReport
from commands.registry import execute
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.events import Event, EventKind, Notice, Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from core.targets.base import EndpointRef
from tests.conftest import Recorder
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS, run

# a second admin: the embedded settings make the console's user id an admin
BOB = Actor(id="console", name="bob")


def as_bob(runtime: Runtime, line: str) -> object:
    return execute(line, Context(core=runtime, actor=BOB, reporter=Recorder(), text=line))


class Gate(Recorder):
    """Holds the run at the start of `step` until opened: a rollout exactly as slow as the
    test needs."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step
        self.reached = threading.Event()
        self.opened = threading.Event()

    def report(self, event: Event) -> None:
        super().report(event)
        if event.kind is EventKind.STEP and event.step == self.step:
            self.reached.set()
            self.opened.wait(60)


def test_a_running_rollout_is_cancelled_not_unlocked_and_the_next_serves_alone(
    runtime: Runtime,
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    gate = Gate("check")  # v2 is built and started beside v1, not yet checked
    first: list[object] = []
    slow = threading.Thread(target=lambda: first.append(run(runtime, "/deploy iris v2", gate)))
    slow.start()
    try:
        assert gate.reached.wait(60), plain(gate.text)
        unlocked = as_bob(runtime, "/unlock iris")
        second = as_bob(runtime, "/deploy iris v2")
        cancelled = as_bob(runtime, "/cancel iris")
    finally:
        gate.opened.set()
        slow.join(60)

    assert isinstance(unlocked, Refusal)
    assert plain(unlocked.text).startswith("iris in dev is not unlocked: alice holds it since ")
    assert "for: alice is deploying iris v2 to dev (op-" in plain(unlocked.text)
    assert ", at check). That operation is still running in a live bot process" in plain(
        unlocked.text
    )
    assert "(at the latest until " in plain(unlocked.text)
    assert plain(unlocked.text).endswith("an admin can type `/cancel iris in dev`.")
    assert isinstance(second, Refusal) and "is locked by alice" in plain(second.text)
    assert isinstance(cancelled, Notice)
    assert plain(cancelled.text).startswith("asked alice's deploy of iris in dev (op-")

    (outcome,) = first
    assert isinstance(outcome, Outcome) and not outcome.ok
    endpoint = runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 1
    assert plain(outcome.text) == f"cancelled by bob\niris v1 still serves at {endpoint.url}"
    assert "switch" not in [e.step for e in gate.events]  # it never moved traffic
    assert gate.events[-1].kind is EventKind.FAILED
    op = runtime.repos.operations.get(outcome.operation or "")
    assert op is not None and (op.state, op.error) == ("failed", "cancelled by bob")
    assert runtime.repos.locks.get("dev", "iris") is None
    audit = [(a.action, a.outcome) for a in runtime.repos.audit.entries(endpoint="iris")]
    assert audit[:4] == [
        ("deploy", "failed"),
        ("cancel", "succeeded"),
        ("deploy", "refused"),
        ("unlock", "refused"),
    ]

    redeployed = run(runtime, "/deploy iris v2")
    assert isinstance(redeployed, Outcome) and redeployed.ok, plain(redeployed.text)
    live = runtime.repos.endpoints.get("dev", "iris")
    assert live is not None and live.version == 2
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    with httpx.Client(timeout=10) as client:
        answers = [client.post(live.url, json=body) for _ in range(30)]
    assert {(a.status_code, a.headers["X-Model"], a.headers["X-Deployment"]) for a in answers} == {
        (200, "iris/2", live.deployment)
    }


def test_unlock_lifts_the_lock_of_an_operation_whose_bot_died(runtime: Runtime) -> None:
    queued = runtime.deployer.deploy(
        model="iris",
        version=1,
        actor=BOB,
        command="/deploy iris v1",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome)
    assert runtime.repos.operations.claim("a-bot-that-died", lease_s=-1) is not None  # lease lapsed
    unlocked = as_bob(runtime, "/unlock iris")
    assert isinstance(unlocked, Notice)
    assert plain(unlocked.text) == (
        "iris in dev is unlocked (it was held by bob for: bob is deploying iris v1 to dev)."
    )
    assert runtime.repos.locks.get("dev", "iris") is None


def test_cancel_with_nothing_under_way_changes_nothing(runtime: Runtime) -> None:
    refused = as_bob(runtime, "/cancel iris")
    assert isinstance(refused, Refusal)
    assert plain(refused.text) == "nothing is under way on iris in dev: nothing to cancel"


def test_stop_is_an_operation_reported_and_audited(runtime: Runtime) -> None:
    deployed = run(runtime, "/deploy iris v1")
    assert isinstance(deployed, Outcome) and deployed.ok
    seen = Recorder()
    stopped = run(runtime, "/stop iris", seen)

    assert isinstance(stopped, Outcome) and stopped.ok, plain(stopped.text)
    assert plain(stopped.text) == f"iris in dev is stopped (it served iris v1 at {deployed.url})."
    assert [(e.kind, e.step) for e in seen.events if e.kind != EventKind.INFO] == [
        (EventKind.STARTED, ""),
        (EventKind.STEP, "stop"),
        (EventKind.DONE, "stop"),
        (EventKind.SUCCEEDED, ""),
    ]
    op = runtime.repos.operations.get(stopped.operation or "")
    assert op is not None and (op.kind, op.state) == ("stop", "succeeded")
    newest = runtime.repos.audit.entries(endpoint="iris", limit=1)[0]
    assert (newest.action, newest.outcome, newest.operation_id) == ("stop", "succeeded", op.id)
    assert runtime.repos.locks.get("dev", "iris") is None
    assert not runtime.deployer.targets["dev"].health(EndpointRef("dev", "iris")).up
    report = run(runtime, "/status")
    assert isinstance(report, StatusReport) and report.endpoints == []


def test_an_endpoint_over_limits_lowered_since_it_was_deployed_can_still_be_stopped(
    runtime: Runtime,
) -> None:
    assert run(runtime, "/deploy iris v1").ok  # 1 cpu
    dev = runtime.settings.environment("dev")
    assert dev is not None
    dev.limits.cpu = 0.5  # an admin lowered the limits since

    plan = run(runtime, "/plan stop iris")
    assert isinstance(plan, PlanReport) and plan.ok, plan.verdict
    assert "limits" not in [c.name for c in plan.requirements]
    scaled = run(runtime, "/scale iris 1cpu 2gb")
    assert isinstance(scaled, Refusal) and "limit" in plain(
        scaled.text
    )  # starting more still is not
    stopped = run(runtime, "/stop iris")
    assert isinstance(stopped, Outcome) and stopped.ok, plain(stopped.text)
    assert runtime.repos.endpoints.get("dev", "iris") is None
    assert not runtime.deployer.targets["dev"].health(EndpointRef("dev", "iris")).up


def test_a_stop_waits_its_turn_behind_a_running_rollout(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    gate = Gate("build")
    first: list[object] = []
    slow = threading.Thread(target=lambda: first.append(run(runtime, "/deploy iris v2", gate)))
    slow.start()
    try:
        assert gate.reached.wait(60), plain(gate.text)
        refused = as_bob(runtime, "/stop iris")
    finally:
        gate.opened.set()
        slow.join(60)
    assert isinstance(refused, Refusal) and "is locked by alice" in plain(refused.text)
    assert isinstance(first[0], Outcome) and first[0].ok


def test_a_normal_deploy_leaves_no_lease_alarm(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The heartbeat beats while the final word is being sent (a slow Slack post)."""

    class Slow(Recorder):
        def report(self, event: Event) -> None:
            super().report(event)
            if event.kind in (EventKind.SUCCEEDED, EventKind.FAILED):
                runtime.leases.beat()

    caplog.set_level(logging.ERROR, logger="chatops.core")
    assert run(runtime, "/deploy iris v1", Slow()).ok
    assert not run(runtime, "/deploy crasher v1", Slow()).ok
    assert [r.getMessage() for r in caplog.records if "lease" in r.getMessage()] == []
