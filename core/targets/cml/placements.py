"""Where deployments live. CML addresses a deployment by model, build and its own id; the bot
keeps only the deployment id. What this process learns, from its own rollouts or found once
through the API after a restart, spares every later look-up those calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from core.targets.cml.models import Model, ModelDeployment
from core.targets.cml.progress import parse_build_comment
from core.targets.cml.workspace import Workspace


@dataclass(frozen=True)
class Placed:
    """A deployment's address, and the MLflow version it serves."""

    id: str
    model_id: str
    build_id: str
    crn: str
    model: str
    version: int | None

    @classmethod
    def of(
        cls, model: Model, build_id: str, dep: ModelDeployment, name: str, version: int | None
    ) -> Placed:
        return cls(dep.id or "", model.id or "", build_id, dep.crn or "", name, version)


class Placements:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        self._placed: dict[str, Placed] = {}  # by CML deployment id
        self._serving: dict[str, str] = {}  # CML model name -> the deployment it serves from

    def add(self, placed: Placed) -> None:
        with self._lock:
            self._placed[placed.id] = placed

    def switch(self, name: str, deployment: str) -> None:
        """Model `name` serves from `deployment` now."""
        with self._lock:
            self._serving[name] = deployment

    def serving(self, name: str) -> Placed | None:
        """The deployment this process last saw model `name` serve from, if it knows one."""
        with self._lock:
            return self._placed.get(self._serving.get(name, ""))

    def locate(self, name: str, deployment: str) -> Placed | None:
        """Where `deployment` of model `name` lives; None when CML has no such deployment."""
        with self._lock:
            placed = self._placed.get(deployment)
        if placed is not None:
            return placed
        model = self.workspace.model_named(name, required=False)
        found = self.workspace.find_deployment(model, deployment) if model else None
        if model is None or found is None:
            return None
        build, dep = found
        placed = Placed.of(model, build.id or "", dep, *parse_build_comment(build))
        self.add(placed)
        return placed

    def find_serving(self, name: str) -> tuple[Placed, ModelDeployment] | str:
        """The deployment model `name` serves from, found through the API; or why there is
        none."""
        model = self.workspace.model_named(name, required=False)
        if model is None:
            return f"there is no CML model {name} in project {self.workspace.project}"
        found = self.workspace.serving_deployment(model)
        if found is None:
            return f"CML model {name} has no deployed deployment"
        build, dep = found
        placed = Placed.of(model, build.id or "", dep, *parse_build_comment(build))
        self.add(placed)
        self.switch(name, placed.id)
        return placed, dep
