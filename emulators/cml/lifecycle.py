"""Builds and deployments: their state machines and the real work behind them.

A build moves pending -> queued -> pushing -> built, or ends "build failed" / "timedout".
Building fetches the registered version's artifacts from MLflow and loads them with
``mlflow.pyfunc.load_model`` on a worker thread; a load failure fails the build. A deployment
moves pending -> deploying -> deployed (or failed), and stopping -> stopped when stopped; it
serves the model its build loaded.
"""

from __future__ import annotations

import logging
import tempfile
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from emulators.cml.registry import MlflowRegistry, iso
from emulators.cml.switches import Faults, Timings
from emulators.cml.timeline import Timeline, stages

logger = logging.getLogger("emulators.cml")

BUILD_TERMINAL = ("built", "build failed", "timedout")


@dataclass
class BuildRecord:
    project_id: str
    fields: dict[str, Any]
    timeline: Timeline
    queued_until: float
    model: Any = None
    log: str = ""
    deadline: float = float("inf")

    @property
    def id(self) -> str:
        return str(self.fields["id"])

    def status(self, now: float) -> str:
        current = self.timeline.status(now)
        if current not in BUILD_TERMINAL and now >= self.deadline:
            self.timeline.add([(self.deadline, "timedout")])
            self.log = self.log or "build did not finish before its deadline"
            current = self.timeline.status(now)
        return current

    def view(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        view = {
            **self.fields,
            "status": status,
            "updated_at": iso(self.timeline.last_change(now), millis=False),
        }
        built_at = self.timeline.reached_at("built", now)
        if built_at is not None:
            view["built_at"] = iso(built_at, millis=False)
        return view


@dataclass
class DeploymentRecord:
    fields: dict[str, Any]
    timeline: Timeline
    build: BuildRecord
    served: int = 0

    @property
    def id(self) -> str:
        return str(self.fields["id"])

    def view(self, now: float) -> dict[str, Any]:
        status = self.timeline.status(now)
        view = {
            **self.fields,
            "status": status,
            "updated_at": iso(self.timeline.last_change(now), millis=False),
        }
        stopped_at = self.timeline.reached_at("stopped", now)
        if status == "stopped" and stopped_at is not None:
            view["stopped_at"] = iso(stopped_at, millis=False)
        return view


class Lifecycle:
    """Plans state machines from the current timings and faults, and runs the builds."""

    def __init__(
        self,
        *,
        registry: MlflowRegistry,
        timings: Timings,
        faults: Faults,
        clock: Callable[[], float],
        workers: int = 2,
    ) -> None:
        self._registry = registry
        self._timings = timings
        self._faults = faults
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cml-build")
        self._workdir = tempfile.TemporaryDirectory(prefix="cml-emulator-")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._workdir.cleanup()

    def start_build(
        self, *, project_id: str, fields: dict[str, Any], mlflow_name: str, mlflow_version: str
    ) -> BuildRecord:
        t = self._timings
        now = self._clock()
        queued_until = now + t.build_pending + t.build_queued
        head = stages(now, ("pending", t.build_pending), ("queued", t.build_queued))
        record = BuildRecord(project_id, fields, Timeline(head), queued_until)
        if self._faults.fail_builds:
            record.log = "build failed (injected by the emulator's fail_builds switch)"
            record.timeline.add([(queued_until, "build failed")])
        elif self._faults.timeout_builds:
            record.log = "build timed out (injected by the emulator's timeout_builds switch)"
            record.timeline.add([(queued_until, "timedout")])
        else:
            record.deadline = queued_until + t.build_timeout
            what = f"{mlflow_name} version {mlflow_version}"
            future = self._executor.submit(self._load, record.id, mlflow_name, mlflow_version)
            future.add_done_callback(lambda f: self._finish_build(record, f, what))
        return record

    def _load(self, build_id: str, name: str, version: str) -> Any:
        uri = self._registry.download_uri(name, version)
        target = Path(self._workdir.name) / build_id
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(target), tracking_uri=self._registry.tracking_uri
        )
        return mlflow.pyfunc.load_model(local)

    def _finish_build(self, record: BuildRecord, future: Future[Any], what: str) -> None:
        now = self._clock()
        if record.status(now) in BUILD_TERMINAL:
            return
        start = max(now, record.queued_until)
        error = future.exception() if not future.cancelled() else None
        if future.cancelled() or error is not None:
            detail = "".join(traceback.format_exception(error)) if error else "cancelled\n"
            headline = f"could not load {what}: {type(error).__name__}: {error}\n"
            record.log = headline + detail[-4000:]
            logger.info("build %s failed: %s", record.id, str(error)[:200])
            record.timeline.add([(start, "build failed")])
            return
        record.model = future.result()
        record.timeline.add(stages(start, ("pushing", self._timings.build_pushing), ("built", 0)))

    def start_deployment(self, fields: dict[str, Any], build: BuildRecord) -> DeploymentRecord:
        now = self._clock()
        return DeploymentRecord(fields, Timeline(self._rollout(now)), build)

    def stop(self, deployment: DeploymentRecord) -> None:
        now = self._clock()
        if deployment.timeline.status(now) in ("stopping", "stopped"):
            return
        deployment.timeline.replan(
            now, stages(now, ("stopping", self._timings.stopping), ("stopped", 0))
        )

    def restart(self, deployment: DeploymentRecord) -> None:
        now = self._clock()
        deployment.timeline.replan(now, self._rollout(now))

    def _rollout(self, now: float) -> list[tuple[float, str]]:
        t = self._timings
        end = "failed" if self._faults.fail_deployments else "deployed"
        return stages(now, ("pending", t.deploy_pending), ("deploying", t.deploying), (end, 0))
