"""What every serving target offers the rollouts, whichever platform it drives.

A rollout is: `build` (make the version runnable) -> `start` (a new deployment, not yet taking
the endpoint's traffic) -> `smoke_test` (health and a sample answer of that deployment) -> `switch`
(it takes the traffic, every other deployment of the endpoint stops). Each call is keyed by
ids the rollout recorded first, so calling it again after a crash picks up the same remote
objects. A target gets model artifacts from a `ModelSource`, never from the registry adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.resources import Resources
from core.versions import ModelVersion

Progress = Callable[[str], None]


def _nothing(_key: str) -> object:
    return None


@dataclass(frozen=True)
class Step:
    """What a target may do while a step runs: `say` progress for people, `remember` the
    remote ids it creates (before waiting on them), so a restarted bot can resume, and
    `recall` what an earlier run of the operation remembered (None: nothing)."""

    say: Progress
    remember: Callable[..., None]
    recall: Callable[[str], object] = _nothing


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
class SmokeTested:
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


@dataclass(frozen=True)
class Answered:
    """What one deployment answered since it took the endpoint's traffic (its switch)."""

    version: int
    requests: int = 0
    errors: int = 0  # answers with status 5xx

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Traffic:
    """Requests one endpoint answered over the last `window_s` seconds, as its target counts
    them. `known` is False where the target cannot count (`detail` then says what the
    platform offers instead); `version` is the version that answered the most of them."""

    window_s: float
    known: bool = False
    requests: int = 0
    errors: int = 0  # answers with status 5xx (the model or the server failed)
    p50_ms: float | None = None
    p99_ms: float | None = None
    version: int | None = None
    by_version: dict[int, int] = field(default_factory=dict)  # version -> requests
    detail: str = ""
    # how much of the window was counted: less when the endpoint began serving within it
    span_s: float | None = None
    # deployment -> what it answered since its switch, whatever the window (where counted)
    by_deployment: dict[str, Answered] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def per_minute(self) -> float | None:
        """Requests a minute over the part of the window that was counted."""
        if not self.known:
            return None
        span = self.window_s if self.span_s is None else self.span_s
        return self.requests * 60 / max(span, 1.0)


@dataclass(frozen=True)
class Side:
    """What one version answered the endpoint's callers since its requests were last split."""

    version: int
    deployment: str
    requests: int = 0
    errors: int = 0  # answers with status 5xx
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Shadowed:
    """The candidate's answers to copies of callers' requests (callers never see them),
    compared with what the callers were answered."""

    requests: int = 0  # copies sent to the candidate
    errors: int = 0  # copies it failed: 5xx, refused, or no answer in time
    compared: int = 0  # copies both versions answered with a prediction
    agreed: int = 0  # of those, identical predictions (numbers within the tolerance)
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Comparison:
    """The serving version and a candidate side by side, since the endpoint's requests were
    last split between them (`Target.split`). `known` is False where the target cannot split
    or count (`detail` says why)."""

    known: bool
    canary: int = 0  # percent of callers' requests the candidate answers
    shadow: int = 0  # percent of the others copied to the candidate
    serving: Side | None = None
    candidate: Side | None = None
    shadowed: Shadowed = field(default_factory=Shadowed)
    since_s: float = 0.0  # seconds since the split was last set
    detail: str = ""


class ModelSource(Protocol):
    """Where a target gets a version's artifacts (the registry, seen through what targets
    need of it)."""

    @property
    def tracking_uri(self) -> str:
        """The tracking URI as configured; it may carry credentials: never show it."""
        ...

    def download(self, mv: ModelVersion, dest: Path) -> Path:
        """A verified local copy of `mv`'s model artifacts at `dest` (reused when complete);
        `RegistryError` when they cannot be fetched or are no MLflow model."""
        ...

    def download_uri(self, mv: ModelVersion) -> str:
        """Where `mv`'s artifacts live, for fetching single files of them."""
        ...

    def run_experiment(self, mv: ModelVersion) -> str:
        """The experiment id of the run `mv` was logged by; "" when it has no run."""
        ...


class Target(Protocol):
    kind: str

    def build(self, ep: EndpointRef, mv: ModelVersion, source: ModelSource, step: Step) -> Built:
        """Makes `mv` runnable on this target (or finds it already made); its artifacts and
        input example come from `source`."""
        ...

    def built(self, ep: EndpointRef, mv: ModelVersion) -> str | None:
        """What `build` would reuse for `mv` on the endpoint, said for people; None when it
        would make it anew. Only reads: a plan asks it."""
        ...

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
        is the bot's id for it; `Started.deployment` is the target's (what `switch`,
        `discard` and later rollouts use)."""
        ...

    def smoke_test(
        self, ep: EndpointRef, started: Started, built: Built, step: Step
    ) -> SmokeTested:
        """Health check and smoke test (the built input example) of the started deployment;
        `DeployFailed` when it does not answer as it should."""
        ...

    def switch(self, ep: EndpointRef, new: str, step: Step) -> str:
        """`new` takes the traffic; then every other active deployment of the endpoint is
        retired, whatever the bot's records say. Returns the endpoint URL; raises when
        another deployment could not be retired."""
        ...

    def score(
        self, ep: EndpointRef, body: dict[str, Any], started: Started | None = None
    ) -> Any | None:
        """What serves the endpoint predicts for `body` (a request body, as the input example
        is sent), or with `started` what that new deployment predicts, for the diff of the
        two; None when it cannot say (nothing serves, it failed). Never raises."""
        ...

    def split(
        self,
        ep: EndpointRef,
        candidate: str,
        *,
        canary: int,
        shadow: int,
        tolerance: float,
        step: Step,
    ) -> None:
        """`candidate` (started and smoke-tested, not serving) answers `canary` percent of
        the endpoint's requests, and gets a copy of `shadow` percent of the others, its
        answers discarded and compared (numbers agree within `tolerance`). Counts start again
        from zero; asked again with what is set already, it changes nothing (counts go on).
        `canary=0, shadow=0` gives every request back to what serves. `switch` and `discard`
        end any split. A `ChatOpsError` says why a target cannot split."""
        ...

    def compare(self, ep: EndpointRef, candidate: str) -> Comparison:
        """The serving version and `candidate` since the split was last set (never raises)."""
        ...

    def discard(self, ep: EndpointRef, deployment: str, step: Step) -> None:
        """Stops one deployment that never took traffic (a failed check); after a failed
        first deploy nothing of the endpoint is left listening."""
        ...

    def stop(self, ep: EndpointRef, step: Step) -> None:
        """Stops every deployment of the endpoint; returns only when nothing of it serves,
        and raises a `ChatOpsError` when the platform refused or did not confirm."""
        ...

    def health(self, ep: EndpointRef) -> Health:
        """What serves the endpoint right now, as the target sees it (never raises)."""
        ...

    def endpoints(self) -> list[EndpointRef]:
        """The endpoints this target itself knows to run (it may know none)."""
        ...

    def traffic(self, ep: EndpointRef, window_s: float = 300.0) -> Traffic:
        """What the endpoint answered over the last `window_s` seconds (never raises)."""
        ...

    def close(self) -> None: ...
