"""What serves: one row per (environment, endpoint), written when a rollout switches traffic."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from core.resources import Resources
from core.store.db import Database
from core.store.models import Endpoint, Hold
from core.store.repos import served
from core.store.repos.fence import still_held


@dataclass(frozen=True)
class Serving:
    """What an endpoint serves after a rollout: the values of its row."""

    env: str
    name: str
    target: str
    model: str
    version: int
    resources: Resources
    url: str
    deployment: str


class EndpointRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, env: str, name: str) -> Endpoint | None:
        with self.db.session() as s:
            return s.scalar(select(Endpoint).where(Endpoint.env == env, Endpoint.name == name))

    def every(self, env: str | None = None) -> list[Endpoint]:
        """Every endpoint (of `env`, when given), by environment and name."""
        query = select(Endpoint).order_by(Endpoint.env, Endpoint.name)
        if env:
            query = query.where(Endpoint.env == env)
        with self.db.session() as s:
            return list(s.scalars(query))

    def save(
        self,
        serving: Serving,
        *,
        op_id: str | None = None,
        hold: Hold | None = None,
        previous_failed: str = "",
    ) -> bool:
        """Insert or update the endpoint (env, name), serving since now, and record it in
        the served history (what served before ends: as failed, `previous_failed` saying
        why, when given). With `op_id` and `hold` (a run's write), only while that hold
        still holds that operation, in the same transaction: False, and nothing written,
        when it does not."""
        if (op_id is None) != (hold is None):
            raise ValueError("a fenced save needs both the operation and its hold")
        with self.db.session() as s:
            if op_id is not None and hold is not None and not still_held(s, op_id, hold):
                return False
            row = s.scalar(
                select(Endpoint).where(Endpoint.env == serving.env, Endpoint.name == serving.name)
            )
            if row is None:
                row = Endpoint(env=serving.env, name=serving.name)
                s.add(row)
            row.target = serving.target
            row.model = serving.model
            row.version = serving.version
            row.cpu = serving.resources.cpu
            row.memory_mb = serving.resources.memory_mb
            row.replicas = serving.resources.replicas
            row.gpus = serving.resources.gpus
            row.url = serving.url
            row.deployment = serving.deployment
            row.since = row.updated_at = now = self.db.now()
            served.began(
                s,
                now=now,
                env=serving.env,
                endpoint=serving.name,
                model=serving.model,
                version=serving.version,
                deployment=serving.deployment,
                op_id=op_id or "",
                previous_failed=previous_failed,
            )
            return True

    def delete(
        self, env: str, name: str, *, op_id: str | None = None, hold: Hold | None = None
    ) -> bool:
        """Forget the endpoint (it no longer serves); fenced like `save` when `op_id` and
        `hold` are given. False when nothing was deleted."""
        if (op_id is None) != (hold is None):
            raise ValueError("a fenced delete needs both the operation and its hold")
        with self.db.session() as s:
            if op_id is not None and hold is not None and not still_held(s, op_id, hold):
                return False
            row = s.scalar(select(Endpoint).where(Endpoint.env == env, Endpoint.name == name))
            if row is None:
                return False
            s.delete(row)
            served.ended(s, now=self.db.now(), env=env, endpoint=name, end=served.End.STOPPED)
            return True
