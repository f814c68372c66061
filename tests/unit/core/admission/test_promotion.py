"""The promotion order as admins meet it: prod takes a version only after it served healthy
in dev for the minutes prod requires. The refusal says where it must serve, how long it has,
how long is left and how an admin overrides; the minutes add up over stretches, only since
the last failure, and not while it is down. Developers cannot override; an override is
audited once the deploy is under way."""

from __future__ import annotations

import pytest

from core.admission.roles import Actor
from core.config import PromotionOrder
from core.events import Outcome, Refusal
from core.marks import plain
from core.runtime import Core
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.recording import RecordingTarget
from tests.unit.core.admission.conftest import (
    ADMIN_PROD,
    DEVELOPER,
    deployed,
    last_audit,
    refused,
    state,
)

OVERRIDE_HINT = (
    'an admin may override it with a reason: `/deploy iris v2 to prod --override "<reason>"`'
)
MIN = 60.0


def to_prod(
    core: Core,
    *,
    version: int | None = 2,
    alias: str | None = None,
    actor: Actor = ADMIN_PROD,
    override: str | None = None,
) -> Outcome | Refusal:
    return core.deployer.deploy(
        model="iris",
        version=version,
        alias=alias,
        env="prod",
        actor=actor,
        command="/deploy iris v2 to prod",
        reporter=Recorder(),
        override=override,
    )


def overrides(core: Core) -> list[str]:
    return [plain(e.detail) for e in core.repos.audit.entries(limit=50) if e.action == "override"]


@pytest.fixture(autouse=True)
def _ordered(promotion_order: PromotionOrder) -> None:
    """Every test here: prod after 30 minutes in dev."""


def test_a_version_that_never_served_first_is_told_where_to_go(core: Core) -> None:
    before = state(core)
    text = plain(refused(to_prod(core)))
    assert text == (
        "iris v2 has not served in dev yet — deploy it there first: `/deploy iris v2 to dev` "
        "(prod takes a version only after 30 min of healthy serving in dev); " + OVERRIDE_HINT
    )
    assert state(core) == before
    entry = last_audit(core)
    assert (entry.action, entry.outcome, entry.env) == ("deploy", "refused", "prod")


@pytest.mark.parametrize(
    ("served_s", "said"),
    [
        (12 * MIN, "for 12 min of the 30 min prod requires (18 min to go)"),
        (28 * MIN + 50, "for 28 min of the 30 min prod requires (2 min to go)"),
        (29 * MIN + 30, "for 29 min of the 30 min prod requires (less than a minute to go)"),
    ],
)
def test_the_refusal_says_how_long_it_served_and_how_long_is_left(
    core: Core, clock: FakeClock, served_s: float, said: str
) -> None:
    deployed(core, 2)
    clock.advance(served_s)
    assert plain(refused(to_prod(core))) == f"iris v2 has served in dev {said}; {OVERRIDE_HINT}"


def test_once_it_served_long_enough_it_deploys(core: Core, clock: FakeClock) -> None:
    deployed(core, 2)
    clock.advance(30 * MIN)
    done = to_prod(core)
    assert isinstance(done, Outcome) and done.ok, done
    assert overrides(core) == []


def test_the_minutes_add_up_over_stretches_but_another_versions_do_not_count(
    core: Core, clock: FakeClock
) -> None:
    deployed(core, 2)
    clock.advance(20 * MIN)
    deployed(core, 1)  # v2's stretch ends; v1's minutes are not v2's
    clock.advance(15 * MIN)
    deployed(core, 2)
    clock.advance(5 * MIN)
    assert "for 25 min of the 30 min prod requires (5 min to go)" in refused(to_prod(core))
    clock.advance(5 * MIN)
    assert to_prod(core).ok


def test_a_failure_wipes_what_came_before_it(
    core: Core, clock: FakeClock, targets: dict[str, RecordingTarget]
) -> None:
    deployed(core, 2)
    clock.advance(25 * MIN)
    targets["dev"].serving = None  # found down, as on-call records it
    assert core.repos.served.failed("dev", "iris", "found down by its watch")
    text = plain(refused(to_prod(core)))
    assert text.startswith("iris v2 failed in dev at ")
    assert text.endswith(
        "UTC (found down by its watch) and has not served healthy there since — deploy it "
        "there again: `/deploy iris v2 to dev` (30 min prod requires to go); " + OVERRIDE_HINT
    )
    deployed(core, 2)
    clock.advance(10 * MIN)
    text = plain(refused(to_prod(core)))
    assert "(found down by its watch); since then it has served healthy there for 10 min of " in (
        text
    )
    assert "the 30 min prod requires (20 min to go)" in text


def test_a_stretch_that_is_down_now_does_not_count(
    core: Core, clock: FakeClock, targets: dict[str, RecordingTarget]
) -> None:
    deployed(core, 2)
    clock.advance(40 * MIN)
    targets["dev"].serving = None  # it no longer answers its health check
    text = plain(refused(to_prod(core)))
    assert text == (
        "iris v2 has served in dev for 0 min of the 30 min prod requires (30 min to go); it is "
        "down in dev now, so its current stretch does not count until it answers again; "
        + OVERRIDE_HINT
    )


def test_an_alias_is_refused_even_to_an_override(core: Core) -> None:
    for override in (None, "hotfix"):
        text = plain(refused(to_prod(core, version=None, alias="champion", override=override)))
        assert text == (
            "prod takes only versions that served in dev first: name the version, not an "
            "alias (`/deploy iris v<N> to prod`)"
        )
    assert core.repos.endpoints.every("prod") == [] and overrides(core) == []


def test_a_developer_cannot_override_and_is_told_to_ask(core: Core) -> None:
    before = state(core)
    text = plain(refused(to_prod(core, actor=DEVELOPER, override="I am sure")))
    assert text == (
        "only admins of prod can override its promotion order; ask for the deploy with "
        "`/promote iris v<N> to prod`"
    )
    assert state(core) == before


def test_an_override_needs_a_reason(core: Core) -> None:
    assert refused(to_prod(core, override=" ")) == (
        'an override needs a reason: `--override "<reason>"`'
    )
    assert core.repos.endpoints.every("prod") == []


def test_an_admins_override_deploys_and_is_audited_with_what_it_overrode(core: Core) -> None:
    done = to_prod(core, override="hotfix for incident 42")
    assert isinstance(done, Outcome) and done.ok, done
    (said,) = overrides(core)
    assert said == (
        "pat overrode the promotion order of prod (iris v2 has not served in dev yet — deploy "
        "it there first: `/deploy iris v2 to dev` (prod takes a version only after 30 min of "
        "healthy serving in dev)): hotfix for incident 42"
    )


def test_an_override_of_a_deploy_refused_for_another_reason_overrode_nothing(
    core: Core,
) -> None:
    frozen = core.deployer.freeze(
        endpoint="iris", env="prod", reason="quarter close", actor=ADMIN_PROD, command="/lock"
    )
    assert frozen.ok
    assert "is frozen by" in refused(to_prod(core, override="hotfix for incident 42"))
    assert overrides(core) == []


def test_a_fraction_of_a_minute_is_said_as_configured(
    core: Core, promotion_order: PromotionOrder
) -> None:
    promotion_order.minutes = 0.5
    assert "(prod takes a version only after 0.5 min of healthy serving in dev)" in refused(
        to_prod(core)
    )


def test_with_no_minutes_to_wait_a_version_must_still_have_served_first(
    core: Core, promotion_order: PromotionOrder, clock: FakeClock
) -> None:
    promotion_order.minutes = 0
    assert "iris v2 has not served in dev yet — deploy it there first" in refused(to_prod(core))
    deployed(core, 2)
    clock.advance(1)
    assert to_prod(core).ok


def test_with_no_minutes_to_wait_a_version_that_failed_first_is_refused(
    core: Core,
    promotion_order: PromotionOrder,
    clock: FakeClock,
    targets: dict[str, RecordingTarget],
) -> None:
    promotion_order.minutes = 0
    deployed(core, 2)
    clock.advance(10 * MIN)
    targets["dev"].serving = None
    assert core.repos.served.failed("dev", "iris", "found down by its watch")
    assert "and has not served healthy there since — deploy it there again" in refused(
        to_prod(core)
    )
