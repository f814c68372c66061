"""Plans before changes: `/plan` and `--dry-run` say what a command would do and every refusal
it would meet, and change nothing: the endpoint serves on, no lock, no operation, one audit
row saying it was a plan."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from bot.console.app import ConsoleApp
from commands.base import Context, HistoryReport
from commands.registry import execute
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.config import Settings
from core.events import Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from tests.conftest import Recorder, make_settings
from tests.scenarios.test_deploy_scale_status import ROWS, run

DEV = Actor(id="U0DEV", name="dana")
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri)
    for env in base.environments:
        env.developers = [DEV.id]
    return base


def plan(runtime: Runtime, line: str, actor: Actor | None = None) -> PlanReport:
    if actor is None:
        reply = run(runtime, line)
    else:
        reply = execute(line, Context(core=runtime, actor=actor, reporter=Recorder(), text=line))
    assert isinstance(reply, PlanReport), reply
    return reply


def requirement(report: PlanReport, name: str) -> str:
    (found,) = [c for c in report.requirements if c.name == name]
    return plain(found.text)


def served_version(url: str) -> str:
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    return httpx.post(url, json=body, timeout=10).headers["x-model"]


def test_a_plan_shows_the_deploy_and_changes_nothing_but_the_audit(runtime: Runtime) -> None:
    first = run(runtime, "/deploy iris v1")
    assert isinstance(first, Outcome) and first.ok
    v1 = runtime.registry.resolve("iris", version=1)
    v2 = runtime.registry.resolve("iris", version=2)
    audited = len(runtime.repos.audit.entries(limit=100))

    report = plan(runtime, "/plan deploy iris v2")

    assert report.ok and report.verdict == "it would go ahead"
    assert report.summary == "deploy iris v2 to dev, in place of v1"
    assert report.version.startswith(f"iris v2, run {v2.run_id[:8]} ({v2.run_name}), registered")
    assert v2.run_name  # the demo names its runs
    (delta,) = report.metrics
    assert (delta.name, delta.candidate, delta.serving) == (
        "accuracy",
        v2.metrics["accuracy"],
        v1.metrics["accuracy"],
    )
    gained = v2.metrics["accuracy"] - v1.metrics["accuracy"]
    assert delta.describe() == (
        f"accuracy {v2.metrics['accuracy']:.3f} vs {v1.metrics['accuracy']:.3f}, {gained:+.3f}"
    )
    assert report.resources == "1 cpu, 1 GB, 1 replica (unchanged)"
    assert report.build == "new: iris v2 would be built on local"
    assert plain(report.route) == "alice may deploy in dev: no approval is needed"
    assert [c.name for c in report.requirements] == ["permission", "model", "limits", "lock"]

    # nothing changed: v1 serves on, nobody holds the endpoint, no operation was recorded
    endpoint = runtime.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 1
    assert served_version(first.url) == "iris/1"
    assert runtime.repos.locks.get("dev", "iris") is None
    assert len(runtime.repos.operations.recent()) == 1
    (row, *_) = runtime.repos.audit.entries(limit=100)
    assert len(runtime.repos.audit.entries(limit=100)) == audited + 1
    assert (row.action, row.outcome, row.command, row.operation_id) == (
        "deploy",
        "planned",
        "/plan deploy iris v2",
        "",
    )
    assert row.detail == "deploy iris v2 to dev, in place of v1: it would go ahead"
    history = run(runtime, "/history iris 1")
    assert isinstance(history, HistoryReport)
    assert "`/plan deploy iris v2` in dev -> planned — deploy iris v2" in plain(history.text)
    assert '"outcome": "planned"' in runtime.core.deployer.audit.export(fmt="json")

    # --dry-run is the same plan
    dry = plan(runtime, "/deploy iris v2 --dry-run")
    assert (dry.summary, dry.requirements, dry.rows()) == (
        report.summary,
        report.requirements,
        report.rows(),
    )


def test_a_build_made_before_is_planned_as_reused(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    assert plan(runtime, "/plan deploy iris v2").build.startswith("new: ")
    assert run(runtime, "/deploy iris v2").ok

    back = plan(runtime, "/rollback iris --dry-run")
    assert back.summary == "roll iris in dev back from v2 to v1"
    assert back.build == "reused: the artifacts of iris v1 fetched before for iris"
    (delta,) = back.metrics
    assert delta.delta < 0  # v1 is the less accurate
    assert plan(runtime, "/plan deploy iris v2").summary == (
        "deploy iris v2 to dev: it serves so already, the deploy would change nothing"
    )
    scaled = plan(runtime, "/plan scale iris 2cpu 2 replicas")
    assert scaled.resources == "1 cpu, 1 GB, 1 replica -> 2 cpu, 1 GB, 2 replicas"
    assert scaled.metrics == () and scaled.build.startswith("reused: ")


def test_a_plan_names_who_holds_the_endpoint_and_what_is_under_way(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    # an operation admitted and queued, not yet taken by any bot process: it holds the lock
    queued = runtime.deployer.deploy(
        model="iris",
        version=2,
        env="dev",
        actor=Actor(id="console", name="carol"),
        command="/deploy iris v2",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.operation

    report = plan(runtime, "/plan scale iris 2 replicas")

    assert not report.ok
    assert requirement(report, "lock").startswith("iris in dev is locked by carol since ")
    assert "for: carol is deploying iris v2 to dev" in requirement(report, "lock")
    assert report.underway == (f"deploy by carol, queued ({queued.operation})",)
    assert plain(report.verdict).startswith("it would be refused: iris in dev is locked by carol")
    # the real command meets the same refusal, word for word
    real = run(runtime, "/scale iris 2 replicas")
    assert isinstance(real, Refusal) and plain(real.text) == requirement(report, "lock")
    lock = runtime.repos.locks.get("dev", "iris")
    assert lock is not None and lock.holder == "carol"
    assert [op.id for op in runtime.repos.operations.running()] == [queued.operation]


def test_a_frozen_endpoint_and_limits_are_refusals_in_the_plan(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    report = plan(runtime, "/plan scale iris 64cpu")
    assert (
        requirement(report, "limits")
        == "64 cpu is over the limit of dev: at most 4 cpu per endpoint"
    )
    real = run(runtime, "/scale iris 64cpu")
    assert isinstance(real, Refusal) and plain(real.text) == requirement(report, "limits")

    frozen = Actor(id="console", name="bob")
    execute(
        "/lock iris quarter-end",
        Context(core=runtime, actor=frozen, reporter=Recorder(), text="/lock iris quarter-end"),
    )
    stopped = plan(runtime, "/stop iris --dry-run")
    assert "iris in dev is frozen by bob" in requirement(stopped, "lock")
    assert stopped.stops.startswith("every deployment of iris: iris v1, up, at http://")
    assert not stopped.ok and runtime.repos.endpoints.get("dev", "iris") is not None


def test_a_developer_is_told_it_needs_a_promotion_request(runtime: Runtime) -> None:
    report = plan(runtime, "/plan deploy iris @champion to prod", actor=DEV)
    assert not report.ok
    assert report.summary == "deploy iris @champion (now v2) to prod"
    assert requirement(report, "permission") == (
        "only admins of prod can deploy — ask for it with `/promote iris v2 to prod`"
    )
    assert plain(report.route) == (
        "dana would need a promotion request, approved by an admin of prod: ask for it with "
        "`/promote iris v2 to prod`"
    )
    assert report.approvers == ("console",)
    assert report.resources == "none -> 1 cpu, 1 GB, 1 replica (the defaults of prod)"
    assert runtime.repos.endpoints.get("prod", "iris") is None


def test_what_the_rollout_would_fail_on_and_what_cannot_be_planned(runtime: Runtime) -> None:
    missing = plan(runtime, "/plan deploy iris v9")
    assert requirement(missing, "version") == (
        "the rollout would fail at its first step: iris has no version 9 (versions: v1, v2, v3)"
    )
    unknown = plan(runtime, "/plan deploy irsi v1")
    assert (
        requirement(unknown, "model")
        == "there is no model called `irsi` in the registry (did you mean `iris`?)"
    )
    nothing = plan(runtime, "/plan rollback iris")
    assert requirement(nothing, "endpoint").startswith("iris in dev is not deployed")
    nowhere = run(runtime, "/plan stop iris in moon")
    assert isinstance(nowhere, Refusal) and "no environment called `moon`" in plain(nowhere.text)
    assert runtime.repos.operations.recent() == []
    assert {r.outcome for r in runtime.repos.audit.entries(limit=10)} == {"planned"}


def test_the_console_shows_the_plan_and_exits_by_its_verdict(runtime: Runtime) -> None:
    out = io.StringIO()
    app = ConsoleApp(runtime, actor="alice", console=Console(file=out, width=200))
    assert app.run_line("/plan deploy iris v1") is True
    assert app.run_line("/plan scale iris 2cpu") is False  # nothing to scale yet
    shown = out.getvalue()
    assert "Plan: deploy iris v1 to dev" in shown and "It would go ahead." in shown
    assert "✗ endpoint" in shown and "there is no endpoint `iris` in dev" in shown
