"""Who may do what, the whole matrix at the core's own entry points (the Deployer and the
Approvals, as every front reaches them): every action an environment guards, asked by an
admin of it, an admin of the other environment, a member of the admins' group, a developer
and a viewer, in each environment. A refusal says who may, is audited and changes nothing;
an allowed action is never refused for its role. README's table is the expectation:

    viewer      reads only
    developer   promote
    admin       deploy, scale, rollback, stop, lock, unlock, cancel, approve, reject
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from core.admission.approvals import ApprovalRequested, Approvals
from core.admission.roles import Actor
from core.events import Refusal
from core.marks import plain
from core.runtime import Core
from tests.conftest import Recorder
from tests.unit.core.admission.conftest import (
    ADMIN_DEV,
    ADMIN_PROD,
    ADMIN_PROD_2,
    DEVELOPER,
    VIEWER,
    deployed,
    last_audit,
    state,
)

ADMIN_OF = {"dev": ADMIN_DEV, "prod": ADMIN_PROD}
RANK = {"viewer": 0, "developer": 1, "admin": 2}


@dataclass
class Asked:
    """What the actor's request meets: the core, and what was set up for it."""

    core: Core
    approvals: Approvals
    env: str
    request: str = ""


def served(asked: Asked) -> None:
    """The endpoint served v1 then v2: a rollback has somewhere to go."""
    deployed(asked.core, 1, asked.env)
    deployed(asked.core, 2, asked.env)


def requested(asked: Asked) -> None:
    opened = asked.approvals.request(
        model="iris", version=2, env=asked.env, actor=DEVELOPER, reason="", command="/promote"
    )
    assert isinstance(opened, ApprovalRequested), opened
    asked.request = opened.approval.id


def frozen(asked: Asked) -> None:
    admin = ADMIN_OF[asked.env]
    assert asked.core.deployer.freeze(
        endpoint="iris", env=asked.env, reason="freeze", actor=admin, command="/lock"
    ).ok


def under_way(asked: Asked) -> None:
    queued = asked.core.deployer.deploy(
        model="iris",
        version=2,
        env=asked.env,
        actor=ADMIN_OF[asked.env],
        command="/deploy",
        reporter=Recorder(),
        wait=False,
    )
    assert queued.ok, queued


def nothing(asked: Asked) -> None:
    pass


def decide(approve: bool) -> Callable[[Asked, Actor], object]:
    def deciding(a: Asked, actor: Actor) -> object:
        return a.approvals.settle(
            a.request, actor=actor, approve=approve, command="/decide", shown=lambda _d: Recorder()
        )

    return deciding


# action: (the role it needs, the setup, the request)
ACTIONS: dict[str, tuple[str, Callable[[Asked], None], Callable[[Asked, Actor], object]]] = {
    "deploy": (
        "admin",
        nothing,
        lambda a, actor: a.core.deployer.deploy(
            model="iris", version=1, env=a.env, actor=actor, command="/deploy", reporter=Recorder()
        ),
    ),
    "scale": (
        "admin",
        served,
        lambda a, actor: a.core.deployer.scale(
            endpoint="iris", replicas=2, env=a.env, actor=actor, command="/s", reporter=Recorder()
        ),
    ),
    "rollback": (
        "admin",
        served,
        lambda a, actor: a.core.deployer.rollback(
            endpoint="iris", env=a.env, actor=actor, command="/r", reporter=Recorder()
        ),
    ),
    "stop": (
        "admin",
        served,
        lambda a, actor: a.core.deployer.stop(
            endpoint="iris", env=a.env, actor=actor, command="/stop", reporter=Recorder()
        ),
    ),
    "lock": (
        "admin",
        nothing,
        lambda a, actor: a.core.deployer.freeze(
            endpoint="iris", env=a.env, reason="quarter close", actor=actor, command="/lock"
        ),
    ),
    "unlock": (
        "admin",
        frozen,
        lambda a, actor: a.core.deployer.unlock(
            endpoint="iris", env=a.env, actor=actor, command="/unlock"
        ),
    ),
    "cancel": (
        "admin",
        under_way,
        lambda a, actor: a.core.deployer.cancel(
            endpoint="iris", env=a.env, actor=actor, command="/cancel"
        ),
    ),
    "approve": ("admin", requested, decide(True)),
    "reject": ("admin", requested, decide(False)),
    "promote": (
        "developer",
        nothing,
        lambda a, actor: a.approvals.request(
            model="iris", version=2, env=a.env, actor=actor, reason="", command="/promote"
        ),
    ),
}

# who: (the actor, their role) in each environment
WHO: dict[str, Callable[[str], tuple[Actor, str]]] = {
    "admin": lambda env: (ADMIN_OF[env], "admin"),
    "admin of the other environment": lambda env: (
        ADMIN_PROD if env == "dev" else ADMIN_DEV,
        "viewer",
    ),
    "member of the admins' group": lambda env: (
        ADMIN_PROD_2,
        "admin" if env == "prod" else "viewer",
    ),
    "developer": lambda env: (DEVELOPER, "developer"),
    "viewer": lambda env: (VIEWER, "viewer"),
}


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_role_matrix(core: Core, approvals: Approvals, action: str, who: str, env: str) -> None:
    needed, setup, ask = ACTIONS[action]
    actor, role = WHO[who](env)
    asked = Asked(core=core, approvals=approvals, env=env)
    setup(asked)
    before = state(core)

    result = ask(asked, actor)

    who_may = "admins" if needed == "admin" else "developers and admins"
    said = f"only {who_may} of {env} can {action}"
    for_the_role = isinstance(result, Refusal) and plain(result.text).startswith(said)
    if RANK[role] >= RANK[needed]:
        assert not for_the_role, result
        assert getattr(result, "ok", False), result  # each setup makes the action possible
    else:
        assert for_the_role, result
        assert state(core) == before
        entry = last_audit(core)
        assert (entry.actor_id, entry.outcome) == (actor.id, "refused")
