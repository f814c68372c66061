"""Promotion requests and the decisions on them, as requester and admins meet them: a
request carries its evidence; only an admin of its environment who did not ask decides it,
once, before it expires; approval deploys exactly the requested version on the approver's
authority; a frozen endpoint or the promotion order leaves it pending, saying what to do.
Every refusal is audited and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.admission.approvals import (
    ApprovalRequested,
    Approvals,
    Decided,
    Held,
    Undecided,
)
from core.admission.roles import Actor
from core.config import PromotionOrder, Settings
from core.events import Outcome, Refusal, Reporter
from core.marks import plain
from core.registry.mlflow import Registry
from core.runtime import Core, wire
from core.store.repos import Repositories
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.db import postgres_schema
from tests.recording import RecordingTarget
from tests.unit.core.admission.conftest import (
    ADMIN_DEV,
    ADMIN_PROD,
    ADMIN_PROD_2,
    DEVELOPER,
    VIEWER,
    deployed,
    last_audit,
    refused,
    state,
)


def request(
    approvals: Approvals,
    *,
    actor: Actor = DEVELOPER,
    version: int = 2,
    env: str | None = "prod",
    reason: str = "accuracy is up",
) -> ApprovalRequested | Refusal:
    return approvals.request(
        model="iris",
        version=version,
        env=env,
        actor=actor,
        reason=reason,
        command=f"/promote iris v{version} to {env}",
    )


def opened(approvals: Approvals, **kwargs: object) -> str:
    asked = request(approvals, **kwargs)  # type: ignore[arg-type]
    assert isinstance(asked, ApprovalRequested), asked
    return asked.approval.id


def settle(
    approvals: Approvals,
    approval_id: str,
    actor: Actor,
    *,
    approve: bool = True,
    reason: str = "",
    override: str | None = None,
    resume: bool = False,
) -> Decided | Refusal:
    verb = "approve" if approve else "reject"
    return approvals.settle(
        approval_id,
        actor=actor,
        approve=approve,
        reason=reason,
        command=f"/{verb} {approval_id}",
        shown=lambda _decided: Recorder(),
        override=override,
        resume=resume,
    )


def state_of(core: Core, approval_id: str) -> str:
    row = core.repos.approvals.get(approval_id)
    assert row is not None
    return row.state


# -- asking -------------------------------------------------------------------------------
def test_a_request_shows_its_evidence_and_how_to_decide_it(
    core: Core, approvals: Approvals
) -> None:
    asked = request(approvals)
    assert isinstance(asked, ApprovalRequested) and asked.production
    row = asked.approval
    assert (row.model, row.version, row.env, row.state) == ("iris", 2, "prod", "pending")
    text = plain(asked.text)
    assert text.startswith("dev asks to deploy iris v2 to prod\nWhy: accuracy is up\n")
    assert "Candidate v2: accuracy " in text
    assert "Nothing of iris serves in prod yet." in text
    assert f"An admin of prod decides with `/approve {row.id}` or `/reject {row.id}`" in text
    entry = last_audit(core)
    assert (entry.action, entry.outcome, entry.actor_id, entry.detail) == (
        "promote",
        "requested",
        DEVELOPER.id,
        f"request {row.id}",
    )


def test_a_request_shows_the_version_live_beside_the_candidate(
    core: Core, approvals: Approvals
) -> None:
    deployed(core, 1, "prod")
    asked = request(approvals)
    assert isinstance(asked, ApprovalRequested)
    assert asked.live is not None and asked.live.version == 1
    assert "Live now v1: accuracy " in plain(asked.text)


@pytest.mark.parametrize(
    ("version", "env", "said"),
    [
        (9, "prod", "iris has no version 9 (versions: v1, v2, v3)"),
        (2, "staging", "there is no environment called `staging` (environments: dev, prod)"),
    ],
)
def test_a_request_for_what_does_not_exist_says_what_does(
    core: Core, approvals: Approvals, version: int, env: str, said: str
) -> None:
    before = state(core)
    assert refused(request(approvals, version=version, env=env)) == said
    assert state(core) == before
    assert (last_audit(core).action, last_audit(core).outcome) == ("promote", "refused")


def test_a_viewer_cannot_ask(core: Core, approvals: Approvals) -> None:
    assert refused(request(approvals, actor=VIEWER)) == (
        "only developers and admins of prod can promote"
    )
    assert core.repos.approvals.listed() == []


def test_nobody_asks_an_environment_with_no_admins_to_approve(
    core: Core, approvals: Approvals
) -> None:
    prod = core.settings.environment("prod")
    assert prod is not None
    prod.admins = []
    assert refused(request(approvals)) == (
        "prod has no admins, so nobody could approve this request: ask whoever runs the bot "
        "to name admins of prod"
    )
    assert core.repos.approvals.listed() == []


# -- who decides --------------------------------------------------------------------------
@pytest.mark.parametrize("approve", [True, False])
def test_the_requester_cannot_decide_their_own_request_even_as_an_admin(
    core: Core, approvals: Approvals, approve: bool
) -> None:
    request_id = opened(approvals, actor=ADMIN_PROD)
    before = state(core)
    answer = settle(approvals, request_id, ADMIN_PROD, approve=approve)
    verb = "approve" if approve else "reject"
    assert isinstance(answer, Undecided)
    assert answer.text == (
        f"you asked for this deploy yourself: another admin of prod must {verb} it"
    )
    assert answer.approval is not None and answer.approval.state == "pending"
    assert state(core) == before
    entry = last_audit(core)
    assert (entry.action, entry.outcome, entry.actor_id) == (verb, "refused", ADMIN_PROD.id)


@pytest.mark.parametrize("who", [DEVELOPER, ADMIN_DEV, VIEWER])
def test_only_an_admin_of_the_requests_environment_decides(
    core: Core, approvals: Approvals, who: Actor
) -> None:
    request_id = opened(approvals)
    before = state(core)
    assert refused(settle(approvals, request_id, who)) == "only admins of prod can approve"
    assert state(core) == before


def test_no_such_request(core: Core, approvals: Approvals) -> None:
    answer = settle(approvals, "apr-0000000000", ADMIN_PROD)
    assert isinstance(answer, Undecided) and answer.approval is None
    assert answer.text == "there is no approval request `apr-0000000000`"


# -- approving ----------------------------------------------------------------------------
def test_approval_is_shown_before_it_deploys_exactly_the_requested_version(
    core: Core, approvals: Approvals
) -> None:
    request_id = opened(approvals)
    seen: list[tuple[Decided, object]] = []

    def shown(decided: Decided) -> Reporter:
        seen.append((decided, core.repos.endpoints.get("prod", "iris")))
        return Recorder()

    answer = approvals.settle(
        request_id,
        actor=ADMIN_PROD_2,
        approve=True,
        command=f"/approve {request_id}",
        shown=shown,
    )
    assert isinstance(answer, Decided) and answer.approved and answer.ok
    ((verdict, serving_then),) = seen
    assert serving_then is None  # the verdict is shown first; the deploy reports follow it
    assert plain(verdict.text) == "quinn approved deploying iris v2 to prod"
    assert isinstance(answer.outcome, Outcome)
    assert plain(answer.outcome.text).startswith("iris v2 is live")
    endpoint = core.repos.endpoints.get("prod", "iris")
    assert endpoint is not None and endpoint.version == 2
    assert state_of(core, request_id) == "approved"
    deploy, approve = core.repos.audit.entries(limit=2)
    assert (deploy.action, deploy.actor_id, deploy.approver, deploy.outcome) == (
        "deploy",
        DEVELOPER.id,
        "quinn",
        "succeeded",
    )
    assert (approve.action, approve.actor_id, approve.outcome) == (
        "approve",
        ADMIN_PROD_2.id,
        "approved",
    )


def test_a_rejection_keeps_its_reason_and_a_decided_request_is_not_decided_again(
    core: Core, approvals: Approvals
) -> None:
    request_id = opened(approvals)
    rejected = settle(approvals, request_id, ADMIN_PROD, approve=False, reason="recall dropped")
    assert isinstance(rejected, Decided) and not rejected.approved
    assert plain(rejected.text) == "pat rejected deploying iris v2 to prod: recall dropped"
    before = state(core)
    again = settle(approvals, request_id, ADMIN_PROD_2)
    assert isinstance(again, Undecided)
    assert plain(again.text).startswith("this request was already rejected by pat at ")
    assert again.approval is not None and again.approval.decision_reason == "recall dropped"
    assert state(core) == before
    assert core.repos.endpoints.every("prod") == []


def test_an_expired_request_is_refused_and_says_how_to_ask_again(
    core: Core, approvals: Approvals, clock: FakeClock
) -> None:
    request_id = opened(approvals)
    clock.advance(core.settings.approval_ttl_s + 1)
    for _ in range(2):  # found expired, then already marked so: the same answer
        answer = settle(approvals, request_id, ADMIN_PROD)
        assert isinstance(answer, Undecided)
        assert plain(answer.text).startswith("this request expired at ")
        assert plain(answer.text).endswith(
            "UTC, undecided: ask again with `/promote iris v2 to prod`"
        )
        assert state_of(core, request_id) == "expired"
    assert core.repos.endpoints.every("prod") == []
    assert approvals.decidable(ADMIN_PROD_2) == []


def test_a_request_just_before_it_expires_is_decided(
    core: Core, approvals: Approvals, clock: FakeClock
) -> None:
    request_id = opened(approvals)
    clock.advance(core.settings.approval_ttl_s - 1)
    assert isinstance(settle(approvals, request_id, ADMIN_PROD, approve=False), Decided)


def test_an_approval_on_a_frozen_endpoint_leaves_the_request_pending(
    core: Core, approvals: Approvals
) -> None:
    frozen = core.deployer.freeze(
        endpoint="iris", env="prod", reason="quarter close", actor=ADMIN_PROD, command="/lock"
    )
    assert frozen.ok
    request_id = opened(approvals)
    before = state(core)
    held = settle(approvals, request_id, ADMIN_PROD_2)
    assert isinstance(held, Held)
    text = plain(held.text)
    assert text.startswith("iris in prod is frozen by pat since ")
    assert ": quarter close. Once an admin lifts it with `/unlock iris in prod`, approve again" in (
        text
    )
    assert f"request {request_id} stays pending (until " in text
    assert plain(held.requester_text).startswith(
        "dev quinn approved deploying iris v2 to prod, but it cannot be deployed now: "
    )
    assert state_of(core, request_id) == "pending"
    assert state(core) == before
    assert (last_audit(core).action, last_audit(core).outcome) == ("approve", "refused")


def test_an_approval_the_promotion_order_does_not_let_in_stays_pending_unless_overridden(
    core: Core, approvals: Approvals, promotion_order: PromotionOrder
) -> None:
    request_id = opened(approvals)
    held = settle(approvals, request_id, ADMIN_PROD)
    assert isinstance(held, Held)
    assert plain(held.text) == (
        "iris v2 has not served in dev yet — deploy it there first: `/deploy iris v2 to dev` "
        "(prod takes a version only after 30 min of healthy serving in dev): "
        f"request {request_id} stays pending; an admin may override it with a reason: "
        f'`/approve {request_id} --override "<reason>"`'
    )
    assert state_of(core, request_id) == "pending"

    answer = settle(approvals, request_id, ADMIN_PROD, override="hotfix for incident 42")
    assert isinstance(answer, Decided) and answer.ok, answer
    endpoint = core.repos.endpoints.get("prod", "iris")
    assert endpoint is not None and endpoint.version == 2
    overrides = [e for e in core.repos.audit.entries(limit=10) if e.action == "override"]
    assert [(e.actor_id, e.outcome) for e in overrides] == [(ADMIN_PROD.id, "overridden")]
    assert plain(overrides[0].detail).startswith(
        "pat overrode the promotion order of prod (iris v2 has not served in dev yet"
    )
    assert overrides[0].detail.endswith("): hotfix for incident 42")


def test_an_override_with_no_reason_approves_nothing(
    core: Core, approvals: Approvals, promotion_order: PromotionOrder
) -> None:
    request_id = opened(approvals)
    before = state(core)
    answer = settle(approvals, request_id, ADMIN_PROD, override="  ")
    assert refused(answer) == 'an override needs a reason: `--override "<reason>"`'
    assert state_of(core, request_id) == "pending"
    assert state(core) == before


def test_an_approval_recorded_by_a_process_that_stopped_is_carried_out_by_its_approver_only(
    core: Core, approvals: Approvals
) -> None:
    request_id = opened(approvals)
    # the approval was recorded, and its bot process stopped before it deployed
    recorded = approvals.decide(
        request_id, actor=ADMIN_PROD, approve=True, command=f"/approve {request_id}"
    )
    assert isinstance(recorded, Decided) and core.repos.endpoints.every("prod") == []
    other = settle(approvals, request_id, ADMIN_PROD_2, resume=True)
    assert plain(refused(other)).startswith("this request was already approved by pat")
    resumed = settle(approvals, request_id, ADMIN_PROD, resume=True)
    assert isinstance(resumed, Decided) and resumed.ok
    endpoint = core.repos.endpoints.get("prod", "iris")
    assert endpoint is not None and endpoint.version == 2


# -- what each admin is shown -------------------------------------------------------------
def test_an_admin_is_shown_the_open_requests_they_may_decide(
    core: Core, approvals: Approvals
) -> None:
    by_pat = opened(approvals, actor=ADMIN_PROD)
    by_dev = opened(approvals, version=1)
    opened(approvals, env="dev")
    assert [r.id for r in approvals.decidable(ADMIN_PROD)] == [by_dev]
    assert {r.id for r in approvals.decidable(ADMIN_PROD_2)} == {by_pat, by_dev}
    assert all(r.env == "dev" for r in approvals.decidable(ADMIN_DEV))
    assert approvals.decidable(DEVELOPER) == []


def test_a_withdrawn_request_cannot_be_approved(core: Core, approvals: Approvals) -> None:
    request_id = opened(approvals)
    assert approvals.withdraw(request_id, reason="its message could not be posted")
    answer = settle(approvals, request_id, ADMIN_PROD)
    assert plain(refused(answer)).startswith("this request was already withdrawn")
    assert core.repos.endpoints.every("prod") == []


def test_times_are_said_in_utc_whatever_the_time_zone_of_the_database_session(
    settings: Settings, registry_uri: str, targets: dict[str, RecordingTarget]
) -> None:
    """A PostgreSQL server in India (its sessions' time zone) must not move "… UTC"."""
    clock = FakeClock(start=datetime(2026, 11, 1, 9, 0, 30, tzinfo=UTC))
    with postgres_schema(settings={"timezone": "Asia/Kolkata"}) as url:
        core = wire(
            settings=settings,
            repos=Repositories.open(url, clock=clock),
            registry=Registry(tracking_uri=registry_uri),
            targets=targets,  # type: ignore[arg-type]
        )
        try:
            approvals = Approvals(
                settings=settings, repos=core.repos, registry=core.registry, deployer=core.deployer
            )
            assert core.deployer.freeze(
                endpoint="iris", env="prod", reason="audit", actor=ADMIN_PROD, command="/lock"
            ).ok
            request_id = opened(approvals)
            held = settle(approvals, request_id, ADMIN_PROD_2)
            assert isinstance(held, Held)
            assert "frozen by pat since 09:00 UTC: audit." in plain(held.text)

            clock.advance(settings.approval_ttl_s + 60)
            expired = settle(approvals, request_id, ADMIN_PROD_2)
            assert plain(expired.text).startswith("this request expired at 2026-11-02 09:00 UTC")
        finally:
            core.close()
            core.repos.close()
