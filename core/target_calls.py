"""The one place an operation calls its target, in the words of the `Target` interface.

Rollouts and `chatops down` speak only through `TargetCalls`; each method here is the
interface's method of the same name. While the targets still offer their earlier signatures
(`build(ep, mv, registry, step)`, `check` without a step, `switch(ep, new, old)`,
`stop(ep, deployment)`, `shutdown(ep)` on the local target), the translation happens here
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from core.errors import TargetUnavailable
from core.resources import Resources
from core.targets.base import Built, Checked, EndpointRef, Health, Started, Step, Target

if TYPE_CHECKING:
    from core.registry.mlflow import ModelVersion, Registry


class TargetCalls:
    def __init__(self, target: Target, registry: Registry) -> None:
        self.target = target
        self.registry = registry  # what the target fetches artifacts and examples from

    @property
    def kind(self) -> str:
        return self.target.kind

    def build(self, ep: EndpointRef, mv: ModelVersion, step: Step) -> Built:
        return self.target.build(ep, mv, self.registry, step)

    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        return self.target.start(ep, mv, built, resources, deployment, step)

    def check(self, ep: EndpointRef, started: Started, built: Built, step: Step) -> Checked:
        return self.target.check(ep, started, built)

    def switch(self, ep: EndpointRef, new: str, step: Step, *, previous: str | None) -> str:
        """`new` takes the traffic and every other deployment of the endpoint is retired;
        `previous` is what the database remembers serving (the interface needs none)."""
        return self.target.switch(ep, new, previous)

    def discard(self, ep: EndpointRef, deployment: str, step: Step) -> None:
        """Stop a deployment that never took traffic (its check failed, or it was cancelled)."""
        self.target.stop(ep, deployment)

    def stop(self, ep: EndpointRef, step: Step, *, serving: str) -> None:
        """Stop every deployment of the endpoint; raises unless the target confirms nothing
        of it serves (`serving`: the deployment the database remembers)."""
        self.target.stop(ep, serving)
        health = self.target.health(ep)
        if health.up:
            raise TargetUnavailable(
                f"{ep.name} in {ep.env} still answers at {health.url} after the stop "
                f"({health.detail or 'the target did not confirm it stopped'})"
            )

    def health(self, ep: EndpointRef) -> Health:
        return self.target.health(ep)


def running_endpoints(target: Target) -> list[EndpointRef]:
    """What `target` itself runs, recorded in the database or not (a target that cannot
    list them answers [])."""
    listed: Callable[[], list[EndpointRef]] | None = getattr(target, "endpoints", None)
    return listed() if listed is not None else []


def shut_down(target: Target, ep: EndpointRef) -> bool:
    """Stop every process of `ep` on `target`; False when none was running."""
    shutdown: Callable[[EndpointRef], bool] | None = getattr(target, "shutdown", None)
    return shutdown(ep) if shutdown is not None else False
