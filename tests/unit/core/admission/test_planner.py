"""Plans (`--dry-run`) as people read them: every check the command would meet, in the
order it meets them, with what it found or why it would be refused; what would serve and
what serves now; who could do it or how to ask. A plan changes nothing (no lock, no
operation, no request, no call that changes a target) and is audited as "planned"."""

from __future__ import annotations

import pytest

from core.admission.planner import Planner
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.config import PromotionOrder
from core.marks import plain
from core.runtime import Core
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.recording import RecordingTarget
from tests.unit.core.admission.conftest import (
    ADMIN_DEV,
    ADMIN_PROD,
    DEVELOPER,
    deployed,
    last_audit,
    refused,
    state,
)


def plan(result: object) -> PlanReport:
    assert isinstance(result, PlanReport), result
    return result


def checks(report: PlanReport) -> list[tuple[str, bool, str]]:
    """(name, passed, what it found or why it refuses) of each check, as the plan shows it."""
    shown = []
    for line in plain(report.text).splitlines():
        mark, _, rest = line.partition(" ")
        if mark in ("ok", "REFUSED"):
            name, _, text = rest.partition(": ")
            shown.append((name, mark == "ok", text))
    return shown


def deploy_plan(
    planner: Planner,
    *,
    version: int | None = 2,
    alias: str | None = None,
    env: str = "dev",
    actor: Actor = ADMIN_DEV,
    override: str | None = None,
    model: str = "iris",
) -> PlanReport:
    return plan(
        planner.deploy(
            model=model,
            version=version,
            alias=alias,
            env=env,
            actor=actor,
            command=f"/deploy {model} v{version} to {env} --dry-run",
            override=override,
        )
    )


def test_a_plan_changes_nothing_and_is_audited_as_planned(
    core: Core, planner: Planner, targets: dict[str, RecordingTarget]
) -> None:
    before = state(core)
    report = deploy_plan(planner)
    assert report.ok and report.summary == "deploy iris v2 to dev"
    assert checks(report) == [
        ("permission", True, "ada is an admin of dev"),
        ("model", True, "iris is a registered model"),
        (
            "limits",
            True,
            "1 cpu, 512 MB, 1 replica is within the limits of dev (at most 4 cpu, 4 GB, 3 "
            "replicas)",
        ),
        ("lock", True, "iris in dev is free: no freeze, no operation holds it"),
    ]
    assert plain(report.route) == "ada may deploy in dev: no approval is needed"
    assert report.resources == "none -> 1 cpu, 512 MB, 1 replica (the defaults of dev)"
    assert report.build == "new: iris v2 would be built on recording"
    assert report.serving == "nothing serves iris in dev"
    assert plain(report.text).endswith("\nIt would go ahead.")
    assert state(core) == before
    assert targets["dev"].calls == [] and targets["prod"].calls == []
    entry = last_audit(core)
    assert (entry.action, entry.outcome, entry.actor_id, plain(entry.detail)) == (
        "deploy",
        "planned",
        ADMIN_DEV.id,
        "deploy iris v2 to dev: it would go ahead",
    )


def test_a_refused_plan_shows_every_check_and_how_to_ask(
    core: Core, planner: Planner, promotion_order: PromotionOrder, clock: FakeClock
) -> None:
    deployed(core, 2)
    clock.advance(12 * 60)
    before = state(core)
    report = deploy_plan(planner, env="prod", actor=DEVELOPER)
    assert not report.ok
    found = checks(report)
    assert [name for name, _, _ in found] == ["permission", "model", "promotion", "limits", "lock"]
    assert found[0] == (
        "permission",
        False,
        "only admins of prod can deploy — ask for it with `/promote iris v2 to prod`",
    )
    assert found[2][1:] == (
        False,
        "iris v2 has served in dev for 12 min of the 30 min prod requires (18 min to go); an "
        'admin may override it with a reason: `/deploy iris v2 to prod --override "<reason>"`',
    )
    assert plain(report.route) == (
        "dev would need a promotion request, approved by an admin of prod: ask for it with "
        "`/promote iris v2 to prod`"
    )
    assert report.approvers == (ADMIN_PROD.id, "@prod-oncall")
    # the verdict is the first refusal the command would meet
    assert plain(report.verdict) == (
        "it would be refused: only admins of prod can deploy — ask for it with "
        "`/promote iris v2 to prod`"
    )
    assert state(core) == before
    assert (last_audit(core).outcome, last_audit(core).action) == ("planned", "deploy")


def test_the_plan_of_an_override_shows_it_overridden_and_audits_no_override(
    core: Core, planner: Planner, promotion_order: PromotionOrder
) -> None:
    report = deploy_plan(planner, env="prod", actor=ADMIN_PROD, override="hotfix 42")
    assert report.ok
    ((_, passed, said),) = [c for c in checks(report) if c[0] == "promotion"]
    assert passed and said.startswith(
        "pat overrode the promotion order of prod (iris v2 has not served in dev yet"
    )
    assert said.endswith("): hotfix 42")
    assert [e.action for e in core.repos.audit.entries(limit=10)] == ["deploy"]
    assert core.repos.endpoints.every("prod") == []


def test_the_plan_of_a_developers_override_refuses_it_first(
    planner: Planner, promotion_order: PromotionOrder
) -> None:
    report = deploy_plan(planner, env="prod", actor=DEVELOPER, override="trust me")
    assert checks(report)[0] == (
        "promotion",
        False,
        "only admins of prod can override its promotion order; ask for the deploy with "
        "`/promote iris v<N> to prod`",
    )


def test_the_plan_of_an_alias_names_the_version_it_points_at(planner: Planner) -> None:
    report = deploy_plan(planner, version=None, alias="champion")
    assert report.ok and report.summary == "deploy iris @champion (now v2) to dev"
    assert report.version.startswith("iris v2, run ")


@pytest.mark.parametrize(
    ("model", "version", "check", "said"),
    [
        (
            "iris",
            9,
            "version",
            "the rollout would fail at its first step: iris has no version 9 (versions: v1, "
            "v2, v3)",
        ),
        (
            "irsi",
            1,
            "model",
            "there is no model called `irsi` in the registry (did you mean `iris`?)",
        ),
    ],
)
def test_a_plan_of_what_the_registry_lacks_says_so(
    core: Core, planner: Planner, model: str, version: int, check: str, said: str
) -> None:
    report = deploy_plan(planner, model=model, version=version)
    assert not report.ok
    name, _, text = next(c for c in checks(report) if not c[1])
    assert (name, text) == (check, said)
    assert report.verdict == f"it would be refused: {said}"


def test_the_plan_of_what_serves_already_says_it_would_change_nothing(
    core: Core, planner: Planner
) -> None:
    deployed(core, 1)
    report = deploy_plan(planner, version=1)
    assert (
        report.summary
        == "deploy iris v1 to dev: it serves so already, the deploy would change nothing"
    )
    assert report.serving == "iris v1, up, at http://127.0.0.1:9/invocations"


def test_the_plan_of_a_new_version_compares_its_metrics_with_what_serves(
    core: Core, planner: Planner
) -> None:
    deployed(core, 1)
    report = deploy_plan(planner)
    assert report.summary == "deploy iris v2 to dev, in place of v1"
    (accuracy,) = report.metrics
    assert accuracy.name == "accuracy"
    assert accuracy.describe().startswith("accuracy ") and " vs " in accuracy.describe()


def test_the_plan_of_a_held_endpoint_says_who_holds_it_and_what_is_under_way(
    core: Core, planner: Planner
) -> None:
    queued = core.deployer.deploy(
        model="iris",
        version=1,
        env="dev",
        actor=ADMIN_DEV,
        command="/deploy iris v1 to dev",
        reporter=Recorder(),
        wait=False,
    )
    assert queued.ok
    report = deploy_plan(planner)
    ((_, free, said),) = [c for c in checks(report) if c[0] == "lock"]
    assert not free and said.startswith("iris in dev is locked by ada since ")
    assert report.underway == (f"deploy by ada, queued ({queued.operation})",)


def test_the_plans_of_a_rollback_a_scale_and_a_stop_change_nothing(
    core: Core, planner: Planner, targets: dict[str, RecordingTarget]
) -> None:
    deployed(core, 1)
    deployed(core, 2)
    calls = list(targets["dev"].calls)
    before = state(core)

    back = plan(planner.rollback(endpoint="iris", env="dev", actor=ADMIN_DEV, command="/r"))
    assert back.ok and back.summary == "roll iris in dev back from v2 to v1"
    assert ("endpoint", True, "iris served v1 before v2") in checks(back)

    bigger = plan(planner.scale(endpoint="iris", cpu=8, env="dev", actor=ADMIN_DEV, command="/s"))
    assert bigger.resources == "1 cpu, 512 MB, 1 replica -> 8 cpu, 512 MB, 1 replica"
    assert plain(bigger.verdict) == (
        "it would be refused: 8 cpu is over the limit of dev: at most 4 cpu per endpoint"
    )

    stop = plan(planner.stop(endpoint="iris", env="dev", actor=ADMIN_DEV, command="/st"))
    assert stop.ok and stop.summary == "stop iris in dev"
    assert stop.stops == "every deployment of iris: iris v2, up, at http://127.0.0.1:9/invocations"
    assert stop.resources == "1 cpu, 512 MB, 1 replica -> nothing"

    assert state(core) == before
    assert targets["dev"].calls == calls
    assert [e.outcome for e in core.repos.audit.entries(limit=3)] == ["planned"] * 3


def test_a_plan_for_an_unknown_environment_is_refused_and_audited_as_planned(
    core: Core, planner: Planner
) -> None:
    text = refused(
        planner.stop(endpoint="iris", env="staging", actor=ADMIN_DEV, command="/stop --dry-run")
    )
    assert text == "there is no environment called `staging` (environments: dev, prod)"
    entry = last_audit(core)
    assert (entry.outcome, entry.env, entry.detail) == ("planned", "staging", f"no plan: {text}")
