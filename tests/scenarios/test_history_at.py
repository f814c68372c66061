"""`/history <endpoint> --at <moment>`: what served the endpoint in every environment at a
moment, who switched it (and who approved) and by which operation, read from the served
history of real switches (local target, real registry, real SQLite) in the console's zone.

The story, ten minutes apart on the runtime's FakeClock: alice deploys iris v1 to dev, then
v2; dave (a developer of prod) promotes v2 to prod and alice approves; alice rolls dev back
to v1; alice stops prod."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from bot.console.app import ConsoleApp
from commands.base import Context, Reply
from commands.registry import execute
from core.admission.approvals import ApprovalRequested
from core.admission.roles import Actor
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder, make_settings

DEVELOPER = Actor(id="U0DEV", name="dave")
PARIS = ZoneInfo("Europe/Paris")
MINUTE = 60.0


@pytest.fixture
def governed(
    tmp_path: Path, registry_uri: str, zygote: Zygote, clock: FakeClock
) -> Iterator[Runtime]:
    """dev, and prod where dave may ask for a promotion that an admin approves."""
    base = make_settings(tmp_path / "state", registry_uri)
    dev, prod = base.environments
    prod = prod.model_copy(update={"developers": ["U0DEV"]})
    rt = Runtime(base.model_copy(update={"environments": [dev, prod]}), zygote=zygote, clock=clock)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


class Typed:
    """The console front in Paris: lines typed as alice, what it printed read back."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "Europe/Paris")
        self.console = Console(record=True, width=300, highlight=False)
        self.app = ConsoleApp(runtime, actor="alice", console=self.console)

    def __call__(self, line: str) -> tuple[bool, str]:
        self.console.export_text()  # forget what was printed before
        ok = self.app.run_line(line)
        return ok, self.console.export_text()


def run(rt: Runtime, line: str, who: Actor) -> Reply:
    return execute(line, Context(core=rt, actor=who, reporter=Recorder(), text=line))


def paris(moment: datetime) -> str:
    return f"{moment.astimezone(PARIS):%Y-%m-%d %H:%M:%S}"


def shown(moment: datetime) -> str:
    return f"{moment.astimezone(PARIS):%Y-%m-%d %H:%M %Z}"


@pytest.fixture
def story(
    governed: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> tuple[Typed, list[datetime], dict[str, str]]:
    """The history recorded; the instants of its five switches and the operations' ids."""
    typed = Typed(governed, monkeypatch)
    at: list[datetime] = []
    ops: dict[str, str] = {}

    def switched(env: str) -> datetime:
        """When what serves `env` now began serving, as the served history recorded it."""
        now = governed.repos.served.serving(env, "iris")
        assert now is not None
        return now.started

    def switch(name: str, line: str, env: str) -> None:
        ok, out = typed(line)
        assert ok, out
        at.append(switched(env) if "stop" not in line else clock.now())
        ops[name] = governed.repos.operations.recent(1)[0].id
        clock.advance(10 * MINUTE)

    switch("dev v1", "/deploy iris v1 to dev", "dev")
    switch("dev v2", "/deploy iris v2 to dev", "dev")
    asked = run(governed, "/promote iris v2 to prod because it is better", DEVELOPER)
    assert isinstance(asked, ApprovalRequested)
    approved = run(governed, f"/approve {asked.approval.id}", Actor(id="console", name="alice"))
    assert approved.ok, approved
    at.append(switched("prod"))
    ops["prod v2"] = governed.repos.operations.recent(1)[0].id
    clock.advance(10 * MINUTE)
    switch("dev rollback", "/rollback iris in dev", "dev")
    switch("prod stop", "/stop iris in prod", "prod")
    (stretch,) = governed.repos.served.intervals("prod", "iris", 2)
    assert stretch.ended is not None
    at[-1] = stretch.ended
    return typed, at, ops


def test_each_moment_between_the_switches_says_what_served_where_and_who_switched_it(
    story: tuple[Typed, list[datetime], dict[str, str]],
) -> None:
    typed, at, ops = story
    minute = timedelta(minutes=1)

    ok, out = typed(f'/history iris --at "{paris(at[0] + minute)}"')
    assert ok, out
    assert f"What served iris at {shown(at[0] + minute)} (times in Europe/Paris):" in out
    assert f"dev: iris v1 since {shown(at[0])} until {shown(at[1])}, switched by alice in " in out
    assert ops["dev v1"] in out
    assert f"nothing served iris in prod at {shown(at[0] + minute)}." in out

    _, out = typed(f'/history iris --at "{paris(at[2] + minute)}"')
    assert f"dev: iris v2 since {shown(at[1])} until {shown(at[3])}, switched by alice" in out
    assert (
        f"prod: iris v2 since {shown(at[2])} until {shown(at[4])}, switched by dave, "
        f"approved by alice in operation {ops['prod v2']}"
    ) in out

    # after the rollback of dev, before prod stopped; the moment typed with its own zone
    between = (at[3] + minute).astimezone(ZoneInfo("UTC"))
    _, out = typed(f"/history iris --at {between:%Y-%m-%dT%H:%M:%S}Z")
    assert f"dev: iris v1 since {shown(at[3])}, serving still, switched by alice" in out
    assert ops["dev rollback"] in out
    assert f"prod: iris v2 since {shown(at[2])} until {shown(at[4])}" in out

    # prod stopped: said plainly; dev serves still
    _, out = typed("/history iris --at 1 min ago")
    assert "nothing served iris in prod at " in out
    assert f"dev: iris v1 since {shown(at[3])}, serving still" in out


def test_before_the_history_and_in_the_future_are_answers_not_errors(
    story: tuple[Typed, list[datetime], dict[str, str]],
) -> None:
    typed, at, _ = story
    ok, out = typed(f'/history iris --at "{paris(at[0] - timedelta(hours=1))}"')
    assert ok, out
    assert f"The history of what served begins at {shown(at[0])}: nothing is known" in out

    ok, out = typed('/history iris --at "2126-01-01 09:00"')
    assert ok, out
    assert "2126-01-01 09:00 CET is still to come (it is " in out
    assert "`/status iris` shows what serves iris now." in out

    # an endpoint that never served anywhere: nothing, in every environment
    _, out = typed("/history jokes --at now")
    assert "nothing served jokes in dev at " in out and "nothing served jokes in prod at " in out


def test_a_malformed_moment_is_a_usage_error_naming_the_forms_and_changes_nothing(
    governed: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = Typed(governed, monkeypatch)
    audited = governed.repos.audit.entries()
    for line in (
        "/history iris --at teatime",
        '/history iris --at "2026-12-01 25:00"',
        '/history iris --at "2026-12-01 14:00',
        "/history --at 2h ago",
        "/history iris 5 --at 2h ago",
    ):
        ok, out = typed(line)
        assert not ok, line
        assert 'Usage: `/history [endpoint] [N] [--at "<moment>"]`' in out, out
    _, out = typed("/history iris --at teatime")
    assert "`teatime` is not a moment: use an ISO date-time (`2026-12-01 14:00`" in out
    assert "a time ago (`2h ago`, `30 min ago`" in out and "`yesterday 14:00`" in out
    assert governed.repos.audit.entries() == audited
    assert governed.repos.operations.recent() == []


def test_the_console_without_a_zone_reads_and_shows_utc(
    governed: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    console = Console(record=True, width=300, highlight=False)
    app = ConsoleApp(governed, actor="alice", console=console)
    assert app.run_line('/history iris --at "2026-12-01 14:00"')
    out = console.export_text()
    assert "What served iris at 2026-12-01 14:00 UTC (times in UTC):" in out
