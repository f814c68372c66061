"""What every serving target offers the Deployer, whichever platform it drives.

A rollout is: `build` (make the version runnable) -> `start` (a new deployment, not yet taking
the endpoint's traffic) -> `check` (health and smoke test of that deployment) -> `switch`
(it takes the traffic, the old one stops). Each call is keyed by ids the Deployer recorded
first, so calling it again after a crash picks up the same remote objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.resources import Resources

if TYPE_CHECKING:  # the registry imports MLflow: seconds a bot can spend warming up instead
    from core.registry.mlflow import ModelVersion, Registry

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EndpointRef:
    env: str
    name: str
    port: int | None = None  # local target: the endpoint's fixed port


@dataclass(frozen=True)
class Built:
    """A version made runnable on a target: `ref` is what `start` needs (path, build id)."""

    ref: str
    example: dict[str, Any] | None
    detail: str = ""


@dataclass(frozen=True)
class Started:
    deployment: str
    url: str
    detail: str = ""


@dataclass(frozen=True)
class Checked:
    latency_ms: float
    prediction: Any


@dataclass
class Health:
    """What a target sees of one endpoint right now."""

    up: bool
    url: str = ""
    deployment: str = ""
    model: str = ""
    version: int | None = None
    detail: str = ""
    processes: list[int] = field(default_factory=list)


class Target(Protocol):
    kind: str

    def build(self, ep: EndpointRef, mv: ModelVersion, registry: Registry) -> Built: ...

    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        progress: Progress,
    ) -> Started: ...

    def check(self, ep: EndpointRef, started: Started, built: Built) -> Checked: ...

    def switch(self, ep: EndpointRef, new: str, old: str | None) -> str: ...

    def stop(self, ep: EndpointRef, deployment: str) -> None: ...

    def health(self, ep: EndpointRef) -> Health: ...

    def close(self) -> None: ...
