"""A target that serves nothing and notes every call: the core's decisions tested without
model-server processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.registry.mlflow import ModelVersion
from core.resources import Resources
from core.targets.base import Built, EndpointRef, Health, SmokeTested, Started, Step, Traffic


class RecordingTarget:
    """Serves nothing; notes every call, and runs `during[name]` inside the call `name`."""

    kind = "recording"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.during: dict[str, Callable[[], None]] = {}
        self.serving: str | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.during:
            self.during[name]()

    def build(self, ep: EndpointRef, mv: ModelVersion, source: Any, step: Step) -> Built:
        self._call("build")
        return Built(ref=f"{mv.model}/{mv.version}", example=None)

    def built(self, ep: EndpointRef, mv: ModelVersion) -> str | None:
        return None

    def traffic(self, ep: EndpointRef, window_s: float = 300.0) -> Traffic:
        return Traffic()

    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        self._call("start")
        return Started(deployment=deployment, url="http://127.0.0.1:9/invocations")

    def smoke_test(
        self, ep: EndpointRef, started: Started, built: Built, step: Step
    ) -> SmokeTested:
        self._call("smoke_test")
        return SmokeTested(latency_ms=1.0, prediction=[0])

    def switch(self, ep: EndpointRef, new: str, step: Step) -> str:
        self._call("switch")
        self.serving = new
        return "http://127.0.0.1:9/invocations"

    def discard(self, ep: EndpointRef, deployment: str, step: Step) -> None:
        self._call(f"discard {deployment}")

    def stop(self, ep: EndpointRef, step: Step) -> None:
        self._call("stop")
        self.serving = None

    def endpoints(self) -> list[EndpointRef]:
        return []

    def health(self, ep: EndpointRef) -> Health:
        return Health(up=self.serving is not None, deployment=self.serving or "")

    def close(self) -> None:
        pass
