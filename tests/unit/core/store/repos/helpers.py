"""Small builders shared by the repository tests."""

from __future__ import annotations

from core.resources import Resources
from core.store.models import Hold
from core.store.repos import Repositories, Serving


def serving(**overrides: object) -> Serving:
    fields: dict[str, object] = {
        "env": "dev",
        "name": "iris",
        "target": "local",
        "model": "iris",
        "version": 1,
        "resources": Resources(cpu=1.0, memory_mb=1024, replicas=1),
        "url": "http://127.0.0.1:9000",
        "deployment": "d-1",
    }
    return Serving(**{**fields, **overrides})  # type: ignore[arg-type]


def queue(repos: Repositories, n: int, *, owner: str = "", lease_s: float = 0.0) -> list[str]:
    """`n` deploys, queued (or held by `owner` for `lease_s`); their ids, oldest first."""
    return [
        repos.operations.enqueue(
            kind="deploy",
            env="dev",
            endpoint=f"m{i:02d}",
            requested_by="U1",
            command=f"/deploy m{i:02d} v1",
            owner=owner,
            lease_s=lease_s,
        ).id
        for i in range(n)
    ]


def taken(repos: Repositories, owner: str) -> tuple[str, Hold]:
    """A queued operation now held by `owner`: its id and the hold."""
    (op_id,) = queue(repos, 1)
    op = repos.operations.claim(owner, lease_s=30)
    assert op is not None and op.id == op_id
    return op_id, Hold.of(op)
