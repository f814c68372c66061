"""A plan tells what its command would do: for every role and every refusal the admission
knows (permission, unknown model or version, no endpoint, nothing to roll back, promotion
order, limits, a lock), `--dry-run` is refused exactly when the command is, in the same words,
and changes nothing. The real core (registry, store, admission) on recording targets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.base import Context, Reply
from commands.registry import execute
from core.admission.plans import PlanReport
from core.admission.roles import Actor
from core.config import PromotionOrder, Settings
from core.events import Refusal
from core.runtime import Runtime
from tests.conftest import Recorder, make_settings
from tests.recording import RecordingTarget

ADMIN = Actor(id="U0ADMIN", name="ada")
DEVELOPER = Actor(id="U0DEV", name="dev")
VIEWER = Actor(id="U0VIEW", name="vic")


@pytest.fixture
def core(tmp_path: Path, registry_uri: str) -> Iterator[Runtime]:
    base = make_settings(tmp_path / "state", registry_uri)
    dev, prod = base.environments
    dev = dev.model_copy(update={"admins": [ADMIN.id], "developers": [DEVELOPER.id]})
    prod = prod.model_copy(
        update={
            "admins": [ADMIN.id],
            "developers": [DEVELOPER.id],
            "promotion": PromotionOrder(after="dev", minutes=30),
        }
    )
    settings: Settings = base.model_copy(update={"environments": [dev, prod]})
    rt = Runtime(settings, targets={"dev": RecordingTarget(), "prod": RecordingTarget()})
    yield rt
    rt.close()


def run(core: Runtime, line: str, who: Actor = ADMIN) -> Reply:
    return execute(line, Context(core=core, actor=who, reporter=Recorder(), text=line))


def state(core: Runtime) -> tuple[object, ...]:
    endpoints = [(e.env, e.name, e.version, e.replicas) for e in core.repos.endpoints.every()]
    lock = core.repos.locks.get("dev", "iris")
    locks = (lock.holder, lock.token) if lock else None
    return tuple(endpoints), locks, len(core.repos.operations.recent())


CASES = [
    # (what is done first, by the admin; who asks; the command)
    ([], ADMIN, "/deploy iris v1 to dev"),
    ([], DEVELOPER, "/deploy iris v1 to dev"),
    ([], VIEWER, "/deploy iris v1 to dev"),
    ([], ADMIN, "/deploy nosuchmodel v1 to dev"),
    ([], ADMIN, "/deploy iris v99 to dev"),
    ([], ADMIN, "/deploy iris v1 to prod"),
    ([], ADMIN, '/deploy iris v1 to prod --override "customer demo"'),
    ([], DEVELOPER, '/deploy iris v1 to prod --override "customer demo"'),
    ([], ADMIN, "/scale iris 2 replicas in dev"),
    (["/deploy iris v1 to dev"], ADMIN, "/scale iris 2 replicas in dev"),
    (["/deploy iris v1 to dev"], ADMIN, "/scale iris 9 replicas in dev"),
    (["/deploy iris v1 to dev"], DEVELOPER, "/scale iris 2 replicas in dev"),
    (["/deploy iris v1 to dev"], ADMIN, "/rollback iris in dev"),
    (["/deploy iris v1 to dev", "/deploy iris v2 to dev"], ADMIN, "/rollback iris in dev"),
    (["/deploy iris v1 to dev", "/deploy iris v2 to dev"], VIEWER, "/rollback iris in dev"),
    ([], ADMIN, "/stop iris in dev"),
    (["/deploy iris v1 to dev"], ADMIN, "/stop iris in dev"),
    (["/deploy iris v1 to dev", "/lock iris in dev freeze"], ADMIN, "/deploy iris v2 to dev"),
    (["/deploy iris v1 to dev", "/lock iris in dev freeze"], ADMIN, "/stop iris in dev"),
]


@pytest.mark.parametrize(("before", "who", "line"), CASES)
def test_a_plan_is_refused_exactly_when_its_command_is(
    core: Runtime, before: list[str], who: Actor, line: str
) -> None:
    for setup in before:
        assert run(core, setup).ok, setup
    unchanged = state(core)

    plan = run(core, f"{line} --dry-run", who)
    assert isinstance(plan, PlanReport), plan
    assert state(core) == unchanged  # a plan changes nothing

    reply = run(core, line, who)
    assert plan.ok == reply.ok, (plan.verdict, reply.text)
    if isinstance(reply, Refusal):
        assert plan.verdict == f"it would be refused: {reply.text}"
