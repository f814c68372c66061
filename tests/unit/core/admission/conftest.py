"""Admission as a user meets it, on the real core without model servers: the real MLflow
registry (the session's demo registry), a fresh SQLite state database per test, recording
targets that serve nothing, and a clock the test moves.

dev and prod, each with its own admins; one developer of both; a viewer of neither. prod has
no promotion order unless a test asks for one (`promotion_order`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core import scrub as scrubbing
from core.admission.approvals import Approvals
from core.admission.planner import Planner
from core.admission.roles import Actor
from core.config import Environment, Limits, PromotionOrder, Settings
from core.events import Outcome, Refusal
from core.registry.mlflow import Registry
from core.resources import Resources
from core.runtime import Core, wire
from core.store.models import AuditRow
from core.store.repos import Repositories
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.recording import RecordingTarget

ADMIN_DEV = Actor(id="U0ADEV", name="ada")
ADMIN_PROD = Actor(id="U0APROD", name="pat")
ADMIN_PROD_2 = Actor(id="U0APROD2", name="quinn", groups=frozenset({"prod-oncall"}))
DEVELOPER = Actor(id="U0DEV", name="dev")
VIEWER = Actor(id="U0VIEW", name="vic")


@pytest.fixture(autouse=True)
def fresh_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide scrubber as a bot starts it: what other tests of this process
    registered (a CI database password `chatops`, the bot's own name) must not mask the
    texts these tests read."""
    monkeypatch.setattr(scrubbing, "_default", scrubbing.Scrubber())
    scrubbing._default_roots()


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    return Settings(
        state_dir=tmp_path,
        mlflow_tracking_uri=registry_uri,
        environments=[
            Environment(
                name="dev",
                default=Resources(cpu=1, memory_mb=512, replicas=1),
                limits=Limits(cpu=4, memory_mb=4096, replicas=3),
                admins=[ADMIN_DEV.id],
                developers=[DEVELOPER.id],
            ),
            Environment(
                name="prod",
                default=Resources(cpu=1, memory_mb=1024, replicas=1),
                limits=Limits(cpu=2, memory_mb=2048, replicas=2),
                admins=[ADMIN_PROD.id, "@prod-oncall"],
                developers=[DEVELOPER.id],
            ),
        ],
    )


@pytest.fixture
def promotion_order(settings: Settings) -> PromotionOrder:
    """prod takes a version only after 30 minutes of healthy serving in dev."""
    order = PromotionOrder(after="dev", minutes=30)
    prod = settings.environment("prod")
    assert prod is not None
    prod.promotion = order
    return order


@pytest.fixture
def targets() -> dict[str, RecordingTarget]:
    return {"dev": RecordingTarget(), "prod": RecordingTarget()}


@pytest.fixture
def core(
    tmp_path: Path,
    settings: Settings,
    registry_uri: str,
    targets: dict[str, RecordingTarget],
    clock: FakeClock,
) -> Iterator[Core]:
    wired = wire(
        settings=settings,
        repos=Repositories.open(f"sqlite:///{tmp_path / 'state.db'}", clock=clock),
        registry=Registry(tracking_uri=registry_uri),
        targets=targets,  # type: ignore[arg-type]
    )
    yield wired
    wired.close()
    wired.repos.close()


@pytest.fixture
def planner(core: Core) -> Planner:
    return Planner(deployer=core.deployer, registry=core.registry)


@pytest.fixture
def approvals(core: Core) -> Approvals:
    return Approvals(
        settings=core.settings, repos=core.repos, registry=core.registry, deployer=core.deployer
    )


def deployed(core: Core, version: int, env: str = "dev", *, model: str = "iris") -> Outcome:
    """An admin of `env` deploys `model` v`version` there, and it goes live."""
    admin = ADMIN_DEV if env == "dev" else ADMIN_PROD
    done = core.deployer.deploy(
        model=model,
        version=version,
        env=env,
        actor=admin,
        command=f"/deploy {model} v{version} to {env}",
        reporter=Recorder(),
    )
    assert isinstance(done, Outcome) and done.ok, done
    return done


def refused(result: object) -> str:
    """The text of `result`, which must be a refusal."""
    assert isinstance(result, Refusal), result
    return result.text


def last_audit(core: Core) -> AuditRow:
    (entry,) = core.repos.audit.entries(limit=1)
    return entry


def state(core: Core) -> tuple[object, ...]:
    """What a refusal must leave as it was: endpoints, operations, locks, requests."""
    endpoints = [(e.env, e.name, e.version, e.resources) for e in core.repos.endpoints.every()]
    operations = [(op.id, op.state) for op in core.repos.operations.recent()]
    locks = [
        (env, name, core.repos.locks.get(env, name) is not None)
        for env in ("dev", "prod")
        for name in ("iris", "crasher")
    ]
    requests = [(a.id, a.state) for a in core.repos.approvals.listed(limit=100)]
    return tuple(endpoints), tuple(operations), tuple(locks), tuple(requests)
