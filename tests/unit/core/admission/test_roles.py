"""Who may do what, decided in the core whatever the front: the whole role x command x
environment matrix, both outcomes asserted, state unchanged after every refusal. The core is
the real one (registry, store, admission, rollouts) driving recording targets: no model
server starts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.base import Context
from commands.registry import execute
from core.admission.approvals import ApprovalRequested, Decided
from core.admission.roles import Actor
from core.config import Settings
from core.events import Outcome, Refusal
from core.marks import plain
from core.runtime import Runtime
from tests.conftest import Recorder, make_settings
from tests.recording import RecordingTarget

ADMIN_DEV = Actor(id="U0ADEV", name="ada")
ADMIN_PROD = Actor(id="U0APROD", name="pat")
ADMIN_PROD_2 = Actor(id="U0APROD2", name="quinn", groups=frozenset({"prod-oncall"}))
DEVELOPER = Actor(id="U0DEV", name="dev")
VIEWER = Actor(id="U0VIEW", name="vic")
ROLES = {"admin": {"dev": ADMIN_DEV, "prod": ADMIN_PROD}, "developer": DEVELOPER, "viewer": VIEWER}


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri)
    dev, prod = base.environments
    dev.admins, dev.developers = [ADMIN_DEV.id], [DEVELOPER.id]
    prod.admins, prod.developers = [ADMIN_PROD.id, "@prod-oncall"], [DEVELOPER.id]
    return base


@pytest.fixture
def core(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings, targets={"dev": RecordingTarget(), "prod": RecordingTarget()})
    yield rt
    rt.close()


def run(core: Runtime, actor: Actor, line: str):  # type: ignore[no-untyped-def]
    return execute(line, Context(core=core, actor=actor, reporter=Recorder(), text=line))


def state(core: Runtime) -> tuple[object, ...]:
    endpoints = [
        (e.env, e.name, e.version, e.cpu, e.memory_mb, e.deployment)
        for e in core.repos.endpoints.every()
    ]
    return tuple(endpoints), len(core.repos.operations.recent())


ADMIN_ONLY = [
    "/deploy iris v1 to {env}",
    "/scale iris 2 replicas in {env}",
    "/rollback iris in {env}",
    "/stop iris in {env}",
    "/lock iris in {env} freeze",
    "/unlock iris in {env}",
]


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("role", ["developer", "viewer"])
@pytest.mark.parametrize("line", ADMIN_ONLY)
def test_only_admins_change_what_serves(core: Runtime, env: str, role: str, line: str) -> None:
    admin = ROLES["admin"][env]  # type: ignore[index]
    assert run(core, admin, f"/deploy iris v1 to {env}").ok
    before = state(core)
    who = ROLES[role]
    assert isinstance(who, Actor)

    reply = run(core, who, line.format(env=env))

    assert isinstance(reply, Refusal)
    action = line.split()[0].lstrip("/")
    assert plain(reply.text).startswith(f"only admins of {env} can {action}")
    if action == "deploy":
        assert f"ask for it with `/promote iris v1 to {env}`" in plain(reply.text)
    assert state(core) == before
    (entry, *_) = core.repos.audit.entries(limit=1)
    assert (entry.actor_id, entry.outcome, entry.env) == (who.id, "refused", env)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_an_admin_of_one_environment_is_not_an_admin_of_the_other(core: Runtime, env: str) -> None:
    other = ADMIN_PROD if env == "dev" else ADMIN_DEV
    before = state(core)
    reply = run(core, other, f"/deploy iris v1 to {env}")
    assert isinstance(reply, Refusal) and f"only admins of {env}" in plain(reply.text)
    assert state(core) == before


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("line", ADMIN_ONLY[:2])
def test_admins_change_what_serves(core: Runtime, env: str, line: str) -> None:
    admin = ROLES["admin"][env]  # type: ignore[index]
    if line.startswith("/scale"):
        assert run(core, admin, f"/deploy iris v1 to {env}").ok
    reply = run(core, admin, line.format(env=env))
    assert isinstance(reply, Outcome) and reply.ok, reply
    (entry, *_) = core.repos.audit.entries(limit=1)
    assert (entry.actor_id, entry.outcome, entry.operation_id) == (
        admin.id,
        "succeeded",
        reply.operation,
    )


def test_group_membership_makes_an_admin(core: Runtime) -> None:
    reply = run(core, ADMIN_PROD_2, "/deploy iris v1 to prod")
    assert isinstance(reply, Outcome) and reply.ok


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("role", ["admin", "developer", "viewer"])
def test_promote_is_for_developers_and_admins(core: Runtime, env: str, role: str) -> None:
    who = ROLES[role] if role != "admin" else ROLES["admin"][env]  # type: ignore[index]
    assert isinstance(who, Actor)
    reply = run(core, who, f"/promote iris v2 to {env} because accuracy is up")
    if role == "viewer":
        assert isinstance(reply, Refusal)
        assert plain(reply.text) == f"only developers and admins of {env} can promote"
    else:
        assert isinstance(reply, ApprovalRequested)
        assert reply.candidate.version == 2 and reply.approval.reason == "accuracy is up"
        assert f"/approve {reply.approval.id}" in plain(reply.text)


@pytest.mark.parametrize("role", ["admin", "developer", "viewer"])
@pytest.mark.parametrize("line", ["/status", "/history", "/help"])
def test_everyone_reads(core: Runtime, role: str, line: str) -> None:
    who = ROLES[role] if role != "admin" else ADMIN_DEV  # type: ignore[assignment]
    assert isinstance(who, Actor)
    assert run(core, who, line).ok


def promoted(core: Runtime, env: str = "prod") -> str:
    reply = run(core, DEVELOPER, f"/promote iris v2 to {env}")
    assert isinstance(reply, ApprovalRequested)
    return reply.approval.id


def test_approval_deploys_exactly_the_requested_version(core: Runtime) -> None:
    request = promoted(core)
    reply = run(core, ADMIN_PROD, f"/approve {request}")
    assert isinstance(reply, Decided) and reply.approved and reply.ok
    assert isinstance(reply.outcome, Outcome) and plain(reply.outcome.text).startswith(
        "iris v2 is live"
    )
    (endpoint,) = core.repos.endpoints.every("prod")
    assert endpoint.version == 2
    deploy_entry, approve_entry = core.repos.audit.entries(limit=2)
    assert (deploy_entry.actor_id, deploy_entry.approver) == (DEVELOPER.id, "pat")
    assert deploy_entry.command == "/promote iris v2 to prod"
    assert (approve_entry.action, approve_entry.outcome) == ("approve", "approved")


def test_the_requester_cannot_approve_their_own_request(core: Runtime) -> None:
    reply = run(core, ADMIN_PROD, "/promote iris v2 to prod")
    assert isinstance(reply, ApprovalRequested)
    before = state(core)
    refused = run(core, ADMIN_PROD, f"/approve {reply.approval.id}")
    assert isinstance(refused, Refusal)
    assert "you asked for this deploy yourself: another admin of prod must approve it" in (
        refused.text
    )
    assert state(core) == before
    assert core.repos.approvals.get(reply.approval.id).state == "pending"  # type: ignore[union-attr]


def test_developers_and_other_admins_cannot_decide(core: Runtime) -> None:
    request = promoted(core)
    for who in (DEVELOPER, ADMIN_DEV, VIEWER):
        refused = run(core, who, f"/approve {request}")
        assert isinstance(refused, Refusal) and "only admins of prod can approve" in plain(
            refused.text
        )
    assert core.repos.endpoints.every("prod") == []


def test_simultaneous_approvals_deploy_once(core: Runtime) -> None:
    request = promoted(core)
    replies: list[object] = []
    barrier = threading.Barrier(2)

    def approve(who: Actor) -> None:
        barrier.wait()
        replies.append(run(core, who, f"/approve {request}"))

    threads = [threading.Thread(target=approve, args=(a,)) for a in (ADMIN_PROD, ADMIN_PROD_2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decided = [r for r in replies if isinstance(r, Decided)]
    refused = [r for r in replies if isinstance(r, Refusal)]
    assert len(decided) == 1 and len(refused) == 1
    assert "this request was already approved by" in plain(refused[0].text)
    deploys = [op for op in core.repos.operations.recent() if op.kind == "deploy"]
    assert len(deploys) == 1


def test_a_rejection_records_its_reason_and_deploys_nothing(core: Runtime) -> None:
    request = promoted(core)
    reply = run(core, ADMIN_PROD, f"/reject {request} recall dropped on the holdout set")
    assert isinstance(reply, Decided) and not reply.approved
    row = core.repos.approvals.get(request)
    assert row is not None and (row.state, row.decision_reason) == (
        "rejected",
        "recall dropped on the holdout set",
    )
    assert core.repos.endpoints.every("prod") == []
    again = run(core, ADMIN_PROD_2, f"/approve {request}")
    assert isinstance(again, Refusal) and "already rejected by pat" in plain(again.text)


def test_an_expired_request_is_refused(core: Runtime) -> None:
    core.settings.approval_ttl_s = -1  # requests made now are already past their time
    request = promoted(core)
    refused = run(core, ADMIN_PROD, f"/approve {request}")
    assert isinstance(refused, Refusal) and "this request expired at" in plain(refused.text)
    assert "ask again with `/promote iris v2 to prod`" in plain(refused.text)
    assert core.repos.endpoints.every("prod") == []


def test_register_is_for_developers_and_admins(core: Runtime) -> None:
    line = "/register iris-demo as iris-candidate"
    refused = run(core, VIEWER, line)
    assert isinstance(refused, Refusal)
    assert plain(refused.text) == "only developers and admins can register models"
    registered = run(core, DEVELOPER, line)
    assert registered.ok and plain(registered.text).startswith("Registered iris-candidate v")
    assert "Next: `/promote iris-candidate v" in plain(registered.text)
    entries = core.repos.audit.entries(limit=2)
    assert [(e.actor_id, e.outcome) for e in entries] == [
        (DEVELOPER.id, "succeeded"),
        (VIEWER.id, "refused"),
    ]


def test_rollback_serves_the_previous_version_again(core: Runtime) -> None:
    assert run(core, ADMIN_PROD, "/deploy iris v1 to prod").ok
    nothing = run(core, ADMIN_PROD, "/rollback iris in prod")
    assert isinstance(nothing, Refusal)
    assert plain(nothing.text).startswith(
        "iris in prod has served only v1: there is nothing to roll"
    )
    assert run(core, ADMIN_PROD, "/deploy iris v2 to prod").ok
    back = run(core, ADMIN_PROD, "/rollback iris in prod")
    assert isinstance(back, Outcome) and back.ok and plain(back.text).startswith("iris v1 is live")
    (endpoint,) = core.repos.endpoints.every("prod")
    assert endpoint.version == 1
    assert core.repos.audit.entries(limit=1)[0].action == "rollback"


def test_stop_takes_an_endpoint_out_of_service(core: Runtime) -> None:
    live = run(core, ADMIN_DEV, "/deploy iris v1 to dev")
    assert isinstance(live, Outcome) and live.ok
    stopped = run(core, ADMIN_DEV, "/stop iris in dev")
    assert stopped.ok and plain(stopped.text).startswith(
        "iris in dev is stopped (it served iris v1"
    )
    assert core.repos.endpoints.every("dev") == []
    health = core.deployer.targets["dev"].health(_ref("dev"))
    assert not health.up
    again = run(core, ADMIN_DEV, "/stop iris in dev")
    assert isinstance(again, Refusal) and plain(again.text) == "there is no endpoint `iris` in dev"


def _ref(env: str):  # type: ignore[no-untyped-def]
    from core.targets.base import EndpointRef

    return EndpointRef(env, "iris")
