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
    from pathlib import Path

    from core.registry.mlflow import ModelVersion

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    """What a target may do while a step runs: `say` progress for people, `remember` the
    remote ids it creates (before waiting on them), so a restarted bot can resume."""

    say: Progress
    remember: Callable[..., None]


def quiet_step() -> Step:
    return Step(say=lambda _text: None, remember=lambda **_ids: None)


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


class ModelSource(Protocol):
    """Where a target gets a version's artifacts and facts, without knowing the registry."""

    tracking_uri: str  # as configured (may carry credentials: never show it)

    def download(self, mv: ModelVersion, dest: Path) -> Path: ...

    def download_uri(self, mv: ModelVersion) -> str: ...

    def run_experiment(self, mv: ModelVersion) -> str: ...


class Target(Protocol):
    kind: str

    def build(
        self, ep: EndpointRef, mv: ModelVersion, source: ModelSource, step: Step
    ) -> Built: ...

    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        """A new deployment, healthy but not yet taking the endpoint's traffic. `deployment`
        is the bot's id for it; `Started.deployment` is the target's (what `switch`, `stop`
        and later rollouts use)."""
        ...

    def check(self, ep: EndpointRef, started: Started, built: Built, step: Step) -> Checked: ...

    def switch(self, ep: EndpointRef, new: str, step: Step) -> str:
        """`new` takes the traffic; then every other active deployment of the endpoint is
        retired, whatever the bot's database remembers; returns the endpoint URL."""
        ...

    def discard(self, ep: EndpointRef, deployment: str, step: Step) -> None:
        """Stop one deployment that never took traffic; for a first deploy that failed,
        nothing of the endpoint is left listening."""
        ...

    def stop(self, ep: EndpointRef, step: Step) -> None:
        """Stop every deployment of the endpoint; returns only when nothing of it serves,
        raises a ChatOpsError when the platform refused or did not confirm."""
        ...

    def health(self, ep: EndpointRef) -> Health: ...

    def endpoints(self) -> list[EndpointRef]:
        """What this target itself runs (may be empty where the platform cannot tell)."""
        ...

    def close(self) -> None: ...
