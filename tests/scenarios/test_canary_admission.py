"""How a canary is asked for, planned and refused, before any traffic is split: the grammar
of `--canary`/`--shadow` and `/canary`, an environment's rollout policy, Cloudera AI
environments that cannot split, a first deploy with nothing to hold a canary beside, and
`/canary` with no canary under way or from someone who is not an admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.base import Context, UsageError
from commands.registry import execute, parse, split
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.config import Environment, Rollout, Settings, SettingsProblem
from core.events import EventKind, Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder, make_settings
from tests.scenarios.test_deploy_scale_status import run

DEVELOPER = Actor(id="U0DEV", name="dave")


@pytest.mark.parametrize(
    ("line", "canary", "shadow"),
    [
        ("/deploy iris v2 --canary 10,50", [10, 50], None),
        ("/deploy iris v2 --canary 10%,50% to prod", [10, 50], None),
        ("/deploy iris v2 to prod --shadow 20", None, 20),
        ("/deploy iris v2 --canary 5 --shadow 100 --dry-run", [5], 100),
        ("/deploy iris v2 --canary 0", [], None),
    ],
)
def test_canary_and_shadow_flags_are_read_wherever_they_are_typed(
    line: str, canary: list[int] | None, shadow: int | None
) -> None:
    found = parse(*split(line))
    assert not isinstance(found, UsageError), found
    _name, cmd = found
    assert (cmd.canary, cmd.shadow, cmd.model, cmd.version) == (canary, shadow, "iris", 2)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("/deploy iris v2 --canary", "Give the canary's shares in percent, rising"),
        ("/deploy iris v2 --canary ten", "Give the canary's shares in percent, rising"),
        ("/deploy iris v2 --canary 50,10", "canary shares must rise step by step"),
        ("/deploy iris v2 --canary 100", "100% is not a canary share"),
        ("/deploy iris v2 --canary 1,2,3,4,5,6", "at most 5 canary steps"),
        ("/deploy iris v2 --shadow 150", "Give the share of requests to copy"),
        ("/canary iris", "Say what to do with the canary"),
        ("/canary iris promote at ten", "`at ten` is not a share"),
        ("/canary iris promote now", "Unexpected `now`"),
    ],
)
def test_a_malformed_canary_gets_a_specific_answer(line: str, problem: str) -> None:
    found = parse(*split(line))
    assert isinstance(found, UsageError)
    assert problem in found.problem


def test_canary_decisions_are_read_in_either_order() -> None:
    for line in ("/canary iris promote in prod at 10%", "/canary iris in prod promote at 10"):
        found = parse(*split(line))
        assert not isinstance(found, UsageError), found
        _name, cmd = found
        assert (cmd.endpoint, cmd.decision, cmd.env, cmd.at) == ("iris", "promote", "prod", 10)


def test_a_cml_environment_with_a_rollout_policy_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsProblem) as problem:
        Settings(
            state_dir=tmp_path,
            environments=[
                Environment(name="dev"),
                {
                    "name": "prod",
                    "target": "cml",
                    "url": "https://ml.example.com",
                    "project_id": "p1",
                    "rollout": {"steps": [10, 50]},
                },
            ],
        )
    assert "canary and shadow traffic need the local target" in str(problem.value)


def test_a_canary_in_a_cml_environment_is_refused_and_changes_nothing(
    tmp_path: Path, registry_uri: str, zygote: Zygote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CML_API_KEY", "cml-key-never-used")  # nothing reaches the workspace
    cml = Environment(name="prod", target="cml", url="http://127.0.0.1:9", project_id="p1")
    settings = make_settings(
        tmp_path / "state", registry_uri, environments=[Environment(name="dev"), cml]
    )
    rt = Runtime(settings, zygote=zygote, clock=FakeClock())
    try:
        for line in (
            "/deploy iris v2 to prod --canary 10,50",
            "/deploy iris v2 to prod --shadow 5",
        ):
            refused = run(rt, line)
            assert isinstance(refused, Refusal)
            assert "canary and shadow traffic need the local target" in plain(refused.text)
            assert "Deploy without `--canary` and `--shadow`" in plain(refused.text)
        plan = run(rt, "/plan deploy iris v2 to prod --canary 10")
        assert isinstance(plan, PlanReport) and not plan.ok
        assert "need the local target" in plain(plan.text)
        assert rt.repos.endpoints.get("prod", "iris") is None
        assert rt.repos.operations.running() == []
        audited = rt.repos.audit.entries(limit=5)
        assert audited[0].command == "/plan deploy iris v2 to prod --canary 10"
        assert audited[1].outcome == "refused"
    finally:
        rt.close()


def test_the_plan_says_how_traffic_would_move(runtime: Runtime) -> None:
    first = run(runtime, "/plan deploy iris v1 --canary 10,50")
    assert isinstance(first, PlanReport)
    assert "traffic: all at once: nothing serves yet to hold a canary beside" in first.text
    assert run(runtime, "/deploy iris v1").ok
    plan = run(runtime, "/plan deploy iris v2 --canary 10,50 --shadow 20")
    assert isinstance(plan, PlanReport) and plan.ok
    assert (
        "traffic: canary 10% -> 50% -> 100%; 20% of requests copied to it (shadow), answers "
        "compared; each step bakes 5 min, then an admin promotes it; aborted by itself on "
        "errors over 5%"
    ) in plain(plan.text)
    at_once = run(runtime, "/plan deploy iris v2")
    assert isinstance(at_once, PlanReport)
    assert "traffic: all at once at the switch" in at_once.text


def test_an_environment_s_rollout_policy_is_what_a_plain_deploy_plans(
    tmp_path: Path, registry_uri: str, zygote: Zygote
) -> None:
    settings = make_settings(tmp_path / "state", registry_uri)
    policy = Rollout(steps=[25], bake_s=60, auto_promote=True)
    settings.environments[0] = settings.environments[0].model_copy(update={"rollout": policy})
    rt = Runtime(settings, zygote=zygote, clock=FakeClock())
    try:
        assert run(rt, "/deploy iris v1").ok
        plan = run(rt, "/plan deploy iris v2")
        assert isinstance(plan, PlanReport)
        assert "traffic: canary 25% -> 100%; each step promoted by itself after 60 s" in plan.text
        override = run(rt, "/plan deploy iris v2 --canary 0")
        assert isinstance(override, PlanReport)
        assert "traffic: all at once at the switch" in override.text
    finally:
        rt.shut_down_endpoints()
        rt.close()


def test_a_first_deploy_asked_with_a_canary_says_why_it_has_none(runtime: Runtime) -> None:
    recorder = Recorder()
    outcome = run(runtime, "/deploy iris v1 --canary 10", recorder)
    assert isinstance(outcome, Outcome) and outcome.ok
    said = [e.message for e in recorder.events if e.kind is EventKind.INFO]
    assert (
        "no canary: nothing serves iris in dev yet to hold one beside, so v1 takes every "
        "request at the switch"
    ) in said


def test_canary_without_one_under_way_or_from_a_developer_changes_nothing(
    tmp_path: Path, registry_uri: str, zygote: Zygote
) -> None:
    settings = make_settings(tmp_path / "state", registry_uri)
    settings.environments[0] = settings.environments[0].model_copy(
        update={"developers": [DEVELOPER.id]}
    )
    rt = Runtime(settings, zygote=zygote, clock=FakeClock())
    try:
        nothing = run(rt, "/canary iris promote")
        assert isinstance(nothing, Refusal)
        assert plain(nothing.text) == "no canary is under way on iris in dev: nothing to promote"
        line = "/canary iris abort"
        refused = execute(line, Context(core=rt, actor=DEVELOPER, reporter=Recorder(), text=line))
        assert isinstance(refused, Refusal)
        assert "only admins of dev" in plain(refused.text)
        assert [a.outcome for a in rt.repos.audit.entries(limit=2)] == ["refused", "refused"]
    finally:
        rt.close()
