"""What the watch decides, on a real SQLite store, the real MLflow registry, a recording target
whose answers the test sets, and a clock the test moves: it judges only the watched
deployment's own answers; an admin's operation ends it; it never goes back to a version that
failed its own watch or that an admin's rollback left; its rollback is the Deployer's, asked
by the bot's own actor and audited as automatic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.admission.gates import Automatic
from core.config import Environment, Settings
from core.events import Outcome, Refusal
from core.execution.run import Brief
from core.marks import plain
from core.oncall.alerts import Alert, LogAlerts
from core.oncall.watching import CHECK_S, Watcher
from core.outbox import Outbox
from core.registry.mlflow import Registry
from core.resources import Resources
from core.runtime import Core, wire
from core.store.models import WatchState
from core.store.repos import Repositories
from core.targets.base import Answered, EndpointRef, Health, Traffic
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.unit.core.execution.test_runner import ADMIN, RecordingTarget


class CountingTarget(RecordingTarget):
    """A recording target that says what each deployment answered, and may be down."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: dict[str, Answered] = {}
        self.down = False

    def health(self, ep: EndpointRef) -> Health:
        if self.down:
            return Health(up=False, detail="connection refused")
        return super().health(ep)

    def traffic(self, ep: EndpointRef, window_s: float = 300.0) -> Traffic:
        return Traffic(window_s=window_s, known=True, by_deployment=dict(self.answered))


@pytest.fixture
def target() -> CountingTarget:
    return CountingTarget()


@pytest.fixture
def core(
    tmp_path: Path, registry_uri: str, target: CountingTarget, clock: FakeClock
) -> Iterator[Core]:
    settings = Settings(
        state_dir=tmp_path,
        mlflow_tracking_uri=registry_uri,
        environments=[Environment(name="dev", default=Resources(cpu=1, memory_mb=512))],
    )
    wired = wire(
        settings=settings,
        repos=Repositories.open(f"sqlite:///{tmp_path / 'state.db'}", clock=clock),
        registry=Registry(tracking_uri=registry_uri),
        targets={"dev": target},  # type: ignore[dict-item]
    )
    yield wired
    wired.close()


@pytest.fixture
def told() -> list[str]:
    return []


@pytest.fixture
def watcher(core: Core, told: list[str]) -> Iterator[Watcher]:
    watching = Watcher(
        settings=core.settings,
        repos=core.repos,
        targets=core.targets,
        deployer=core.deployer,
        runner=core.runner,
        alerts=LogAlerts(say=told.append),
        outbox=core.outbox,
    )
    yield watching
    watching.stop()


def deploy(core: Core, version: int) -> str:
    """An admin's deploy of iris `version`; the deployment that serves it."""
    done = core.deployer.deploy(
        model="iris",
        version=version,
        actor=ADMIN,
        command=f"/deploy iris v{version}",
        reporter=Recorder(),
    )
    assert isinstance(done, Outcome) and done.ok, done
    return serving(core)


def serving(core: Core) -> str:
    endpoint = core.repos.endpoints.get("dev", "iris")
    assert endpoint is not None
    return endpoint.deployment


def version(core: Core) -> int:
    endpoint = core.repos.endpoints.get("dev", "iris")
    assert endpoint is not None
    return endpoint.version


def rounds(watcher: Watcher, clock: FakeClock, n: int = 1) -> None:
    for _ in range(n):
        clock.advance(CHECK_S)
        watcher.tick()
    assert watcher.settle(30)


def audited(core: Core, action: str) -> list[tuple[str, str]]:
    return [(e.actor_name, e.outcome) for e in core.repos.audit.entries() if e.action == action]


def test_only_the_watched_deployments_own_answers_are_judged(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    v1 = deploy(core, 1)
    v2 = deploy(core, 2)
    watcher.tick()
    # v1 failed all it answered before the switch; v2 answered well since
    target.answered = {v1: Answered(1, 100, 100), v2: Answered(2, 40, 2)}
    rounds(watcher, clock, 2)
    assert (version(core), told) == (2, [])

    target.answered[v2] = Answered(2, 19, 19)  # failing, but too few answers to judge
    rounds(watcher, clock)
    assert (version(core), told) == (2, [])

    target.answered[v2] = Answered(2, 40, 3)  # 7.5% of its own answers: more than 5%
    rounds(watcher, clock)
    assert version(core) == 1
    (op,) = [op for op in core.repos.operations.recent(10) if op.kind == "rollback"]
    assert told[0] == (
        ":rotating_light: iris in dev: iris v2 answered 3 of 40 requests with a server error "
        f"(7.5%, more than max_error_rate 5.0%). Rolling back to v1 by itself ({op.id})."
    )
    assert told[1].startswith("iris in dev is rolled back: iris v1 is live at http://")
    (watch, *_) = core.repos.watches.of("dev", "iris")
    assert (watch.version, watch.state) == (2, WatchState.ROLLED_BACK)


def test_the_rollback_is_the_deployers_asked_by_the_bot_and_audited_as_automatic(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock
) -> None:
    deploy(core, 1)
    deploy(core, 2)
    watcher.tick()
    target.down = True
    rounds(watcher, clock, 2)
    target.down = False

    assert version(core) == 1
    assert audited(core, "auto-rollback") == [("chatops", "succeeded")]
    (op,) = [op for op in core.repos.operations.recent(10) if op.kind == "rollback"]
    brief = Brief.of(op)
    assert brief.automatic.startswith("was down at 2 checks in a row")
    assert plain(brief.headline).startswith(
        "chatops is rolling iris in dev back from v2 to v1 by itself: v2 was down at 2 checks"
    )
    assert (op.requested_by, op.state) == ("chatops", "succeeded")
    assert core.repos.locks.get("dev", "iris") is None
    assert core.repos.watches.watching() == []  # the bot's own rollback is not watched


def test_an_admins_operation_during_the_window_ends_the_watch(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    deploy(core, 1)
    v2 = deploy(core, 2)
    watcher.tick()
    queued = core.deployer.scale(
        endpoint="iris",
        env="dev",
        replicas=2,
        actor=ADMIN,
        command="/scale iris 2 replicas",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.ok  # admitted, not yet run
    (watch, *_) = core.repos.watches.of("dev", "iris")
    assert (watch.version, watch.state) == (2, WatchState.SUPERSEDED)
    assert watch.detail == f"alice's scale ({queued.operation}) ended it"

    target.answered = {v2: Answered(2, 40, 40)}
    rounds(watcher, clock, 3)
    assert (version(core), told) == (2, [])
    assert audited(core, "auto-rollback") == []


def test_no_rollback_to_a_version_that_failed_its_own_watch(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    deploy(core, 1)
    watcher.tick()
    target.down = True
    rounds(watcher, clock, 2)  # v1 fails its watch, with nothing to go back to
    assert told[0].endswith(
        "so there is nothing to roll back to: deploy another version, or `/stop iris in dev`."
    )
    target.down = False
    v2 = deploy(core, 2)
    watcher.tick()
    target.answered = {v2: Answered(2, 40, 40)}
    rounds(watcher, clock)

    assert version(core) == 2
    assert told[1].startswith(":rotating_light: iris in dev: iris v2 answered 40 of 40 requests")
    assert (
        "It was not rolled back by itself: v1, which served before it, failed its own " in told[1]
    )
    assert audited(core, "auto-rollback") == [("chatops", "refused"), ("chatops", "refused")]
    assert [op.kind for op in core.repos.operations.recent(10)] == ["deploy", "deploy"]
    (watch, *_) = core.repos.watches.of("dev", "iris")
    assert (watch.version, watch.state) == (2, WatchState.FAILED)


def test_no_rollback_to_the_version_an_admin_rolled_back_from(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    deploy(core, 1)
    deploy(core, 2)
    back = core.deployer.rollback(
        endpoint="iris", env="dev", actor=ADMIN, command="/rollback iris", reporter=Recorder()
    )
    assert isinstance(back, Outcome) and back.ok
    watcher.tick()
    target.down = True
    rounds(watcher, clock, 2)

    assert version(core) == 1
    (text,) = told
    assert text.startswith(":rotating_light: iris in dev: iris v1 was down at 2 checks")
    assert (
        f"It was not rolled back by itself: v2, which served before it, is what alice rolled "
        f"back from ({back.operation})."
    ) in text
    assert audited(core, "auto-rollback") == [("chatops", "refused")]


def test_a_frozen_endpoint_is_not_rolled_back_and_the_watch_says_why(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    deploy(core, 1)
    deploy(core, 2)
    watcher.tick()
    frozen = core.deployer.freeze(
        endpoint="iris", env="dev", reason="migrating", actor=ADMIN, command="/lock iris"
    )
    assert frozen.ok
    target.down = True
    rounds(watcher, clock, 2)

    assert version(core) == 2
    (text,) = told
    assert "It was not rolled back by itself, because iris in dev is frozen by alice" in text
    (watch, *_) = core.repos.watches.of("dev", "iris")
    assert watch.state == WatchState.HELD
    assert audited(core, "auto-rollback") == [("chatops", "refused")]


def test_the_bot_may_only_roll_back_by_itself(core: Core) -> None:
    deploy(core, 1)
    bot = Automatic(id="chatops", name="chatops", why="its watch failed")
    refused = core.deployer.deploy(
        model="iris", version=2, env="dev", actor=bot, command="deploy", reporter=Recorder()
    )
    assert refused == Refusal("the bot does not deploy by itself, only an admin does")
    assert audited(core, "auto-deploy") == [("chatops", "refused")]
    assert version(core) == 1


def test_a_rollback_offered_for_a_version_is_refused_once_another_serves(core: Core) -> None:
    deploy(core, 1)
    deploy(core, 2)
    late = core.deployer.rollback(
        endpoint="iris",
        env="dev",
        actor=ADMIN,
        command="/rollback iris",
        reporter=Recorder(),
        serving=1,
    )
    assert isinstance(late, Refusal)
    assert late.text == (
        "iris in dev no longer serves v1 (it serves v2 now): nothing was rolled back"
    )
    assert version(core) == 2
    assert audited(core, "rollback") == [("alice", "refused")]


def test_the_bots_rollback_goes_only_to_the_version_its_watch_chose(core: Core) -> None:
    deploy(core, 1)
    deploy(core, 2)
    bot = Automatic(id="chatops", name="chatops", why="was down at 2 checks in a row")
    refused = core.deployer.rollback(
        endpoint="iris", env="dev", actor=bot, command="automatic", reporter=Recorder(), to=3
    )
    assert refused == Refusal("iris in dev served v1 before, not v3: nothing was rolled back")
    assert audited(core, "auto-rollback") == [("chatops", "refused")]
    assert version(core) == 2


def test_a_rollback_handed_over_on_the_way_is_not_told_as_failed(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    deploy(core, 1)
    deploy(core, 2)
    watcher.tick()
    target.down = True
    target.during["start"] = core.leases.hand_over  # this bot process is told to stop
    rounds(watcher, clock, 2)

    (op,) = [op for op in core.repos.operations.recent(10) if op.kind == "rollback"]
    assert op.state != "failed"  # left at its step for the process that takes it over
    assert [t for t in told if "failed" in t.lower() and "rollback" in t.lower()] == []
    assert len(told) == 1 and "Rolling back to v1 by itself" in told[0]


class DyingAlerts(LogAlerts):
    """A front whose process dies as it is about to tell (the verdict is recorded)."""

    def tell(self, alert: Alert) -> dict[str, Any]:
        raise SystemExit("the bot process died")


def dying_watcher(core: Core) -> Watcher:
    """The watcher of another bot process, which dies as it is about to tell anything."""
    dying = Watcher(
        settings=core.settings,
        repos=core.repos,
        targets=core.targets,
        deployer=core.deployer,
        runner=core.runner,
        alerts=DyingAlerts(),
        outbox=Outbox(core.repos.outbox, owner="gone", lease_s=30, max_attempts=3),
    )
    dying.owner = "gone"
    return dying


def test_a_verdict_its_process_died_before_telling_is_told_once_by_the_next_watcher(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    dying = dying_watcher(core)
    deploy(core, 1)
    dying.tick()
    target.down = True
    with pytest.raises(SystemExit):
        rounds(dying, clock, 2)  # v1 fails its watch with nothing to go back to; it dies
    (watch, *_) = core.repos.watches.of("dev", "iris")
    assert watch.state == WatchState.FAILED and told == []
    assert audited(core, "auto-rollback") == [("chatops", "refused")]
    clock.advance(31)  # the dead process's hold on what it owed lapsed
    watcher.tick()
    watcher.tick()
    assert len(told) == 1 and "nothing to roll back to" in told[0]


def test_an_outage_whose_teller_died_is_told_once_by_the_next_watcher(
    core: Core, watcher: Watcher, target: CountingTarget, clock: FakeClock, told: list[str]
) -> None:
    dying = dying_watcher(core)
    deploy(core, 1)
    watcher.tick()
    clock.advance(core.settings.environments[0].watch_s + CHECK_S)
    watcher.tick()  # its window ended clean: from now on only the watch between rollouts
    told.clear()
    target.down = True
    with pytest.raises(SystemExit):
        for _ in range(10):  # down at enough scans in a row: announced, and it dies telling
            clock.advance(3 * CHECK_S)
            dying.tick()
    assert told == [] and [d.endpoint for d in core.repos.watches.downs("")] == ["iris"]
    clock.advance(31)  # what the dead process owed is free to take
    watcher.tick()
    watcher.tick()
    assert len(told) == 1 and "iris in dev is down" in told[0]
    target.down = False
    clock.advance(3 * CHECK_S)
    watcher.tick()
    assert len(told) == 2 and "iris in dev is up again" in told[1]
    assert core.repos.outbox.unsent() == []
