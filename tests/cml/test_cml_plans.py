"""Plans on a CML environment: the build a rollout would reuse is found by listing what the
workspace has, and a plan sends CML nothing but reads."""

from __future__ import annotations

from cml_support import PROJECT_ID
from conftest_target import CMLRig

from core.admission.planner import Planner
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.events import Outcome
from core.targets.base import EndpointRef
from tests.conftest import Recorder

pytest_plugins = ["conftest_target"]  # the fixtures cml, cml_rig, cml_workspace

ADMIN = Actor(id="console", name="ada")


def deploy(rig: CMLRig, version: int) -> Outcome:
    result = rig.deployer.deploy(
        model="iris",
        version=version,
        env="dev",
        actor=ADMIN,
        command=f"/deploy iris v{version}",
        reporter=Recorder(),
    )
    assert isinstance(result, Outcome) and result.ok, result
    return result


def test_a_plan_finds_the_build_to_reuse_and_only_reads(cml: CMLRig) -> None:
    planner = Planner(deployer=cml.deployer, registry=cml.core.registry)
    first = deploy(cml, 1)
    op = cml.repos.operations.get(first.operation or "")
    assert op is not None
    build_id = str(op.remote["build_id"])
    v1 = cml.core.registry.resolve("iris", version=1)
    v2 = cml.core.registry.resolve("iris", version=2)
    sent = len(cml.traffic.exchanges)

    ep = EndpointRef("dev", "iris")
    assert cml.target.built(ep, v1) == f"CML build {build_id[:8]} of iris v1 (built)"
    assert cml.target.built(ep, v2) is None
    plan = planner.deploy(model="iris", version=2, env="dev", actor=ADMIN, command="/plan")
    assert isinstance(plan, PlanReport) and plan.ok
    assert plan.build == "new: iris v2 would be built on cml"
    scaled = planner.scale(endpoint="iris", replicas=2, env="dev", actor=ADMIN, command="/plan")
    assert isinstance(scaled, PlanReport)
    assert scaled.build == f"reused: CML build {build_id[:8]} of iris v1 (built)"

    reads = {e.method for e in cml.traffic.exchanges[sent:]}
    assert reads == {"GET"}  # nothing created, started or stopped
    model_id = str(op.remote["cml_model_id"])
    assert len(cml.admin.list_model_builds(PROJECT_ID, model_id).model_builds) == 1
    assert [o.id for o in cml.repos.operations.recent()] == [op.id]
