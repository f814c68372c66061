"""From an experiment's runs to a registered model version, for `/register`.

The run chosen is the newest FINISHED one by end time that logged a model; the new version is
polled until READY. MLflow's exceptions become `RegistryError` (or `NotFound`) here.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.errors import NotFound, RegistryError
from core.marks import command
from core.mlflow_imports import mlflow_imports
from core.registry.mlflow import REGISTRY_WAIT_S, bound_http_waits, translated
from core.versions import listed_metrics

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
SHOWN_EXPERIMENTS = 10
SHOWN_SKIPS = 5
# enough for any sane experiment; a bound so one bad experiment cannot stall the bot
SCANNED_RUNS = 100
COUNTED_RUNS = 10_000


@dataclass(frozen=True)
class FinishedRun:
    """A finished run that logged a model: `source` is what a model version is created from."""

    run_id: str
    experiment: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime
    metrics: dict[str, float]
    source: str
    model_id: str | None


@dataclass(frozen=True)
class Registered:
    model: str
    version: int
    run_id: str
    experiment: str
    metrics: dict[str, float]
    ended_at: datetime
    waited_s: float

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"

    @property
    def ok(self) -> bool:
        return True

    @property
    def text(self) -> str:
        metrics = listed_metrics(self.metrics, digits=4)
        return (
            f"Registered {self.label} from run {self.run_id[:8]} of {self.experiment} (ended "
            f"{self.ended_at:%Y-%m-%d %H:%M} UTC; {metrics or 'no metrics logged'}). "
            f"Next: `{command(f'promote {self.model} v{self.version} to <env>')}`"
        )


def model_name_for(experiment: str) -> str:
    """The model name an experiment registers under by default: its last path segment, with
    anything but letters, digits, `.`, `_` and `-` turned into `-`."""
    last = experiment.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", last).strip("-._")[:128]
    if not MODEL_NAME.match(name):
        raise RegistryError(f"`{experiment}` makes no valid model name: say one with `as <model>`")
    return name


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class RunRegistrar:
    """Registers the model of an experiment's run as a new version and waits until READY."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        registry_uri: str | None = None,
        poll_initial_s: float = 0.2,
        poll_max_s: float = 2.0,
        timeout_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        wait_s: float = REGISTRY_WAIT_S,
    ) -> None:
        if poll_initial_s <= 0 or poll_max_s < poll_initial_s or timeout_s < 0:
            raise ValueError("poll intervals must grow from poll_initial_s > 0 to poll_max_s")
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self.wait_s = wait_s
        bound_http_waits(wait_s)
        self._client: MlflowClient | None = None

    def _translated(self, doing: str) -> AbstractContextManager[None]:
        """MLflow's exceptions as `RegistryError`; an unreachable server named without its
        credentials."""
        return translated(self.tracking_uri, doing, budget_s=self.wait_s)

    @property
    def client(self) -> MlflowClient:
        # Creating the client opens (and on first use migrates) the database: do it once.
        if self._client is None:
            # MLflow takes a second or more to import; opening the store imports more of it
            with self._translated("opening the tracking store"), mlflow_imports():
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(
                    tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
                )
        return self._client

    def latest_run(self, experiment: str) -> FinishedRun:
        """The newest FINISHED run by end time that logged a model; `NotFound` says why there
        is none (unknown experiment, no runs, which states they are in, which lacked a model)."""
        experiment_id = self._experiment_id(experiment)
        skipped: list[str] = []
        with self._translated(f"listing the runs of `{experiment}`"):
            for run in self._finished_runs(experiment_id):
                found = self._finished(experiment, run)
                if isinstance(found, FinishedRun):
                    return found
                skipped.append(f"{run.info.run_id[:8]} {found}")
        raise NotFound(self._no_run_text(experiment, experiment_id, skipped))

    def register(
        self, experiment: str, *, run_id: str | None = None, model: str | None = None
    ) -> Registered:
        """Registers the model of `run_id` (default: `latest_run`) as a new version of `model`
        (default: `model_name_for(experiment)`) and returns once MLflow says it is READY."""
        if model is not None and not MODEL_NAME.match(model):
            raise RegistryError(
                f"`{model}` is not a valid model name: use letters, digits, `.`, `_` or `-`, "
                "starting with a letter or digit"
            )
        run = self.latest_run(experiment) if run_id is None else self._run(experiment, run_id)
        name = model_name_for(experiment) if model is None else model
        with mlflow_imports():
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        with self._translated(f"registering run {run.run_id} as `{name}`"):
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
            # MLflow's own wait sleeps a fixed interval; ours backs off and reports the time
            created = self.client.create_model_version(
                name, run.source, run_id=run.run_id, model_id=run.model_id, await_creation_for=0
            )
        version = int(created.version)
        return Registered(
            model=name,
            version=version,
            run_id=run.run_id,
            experiment=experiment,
            metrics=run.metrics,
            ended_at=run.ended_at,
            waited_s=self._await_ready(name, version),
        )

    def _await_ready(self, name: str, version: int) -> float:
        """Seconds until the version is READY, reading at once and then with backoff."""
        begun, slept, delay = time.monotonic(), 0.0, self.poll_initial_s
        while True:
            with self._translated(f"reading the status of {name} v{version}"):
                mv = self.client.get_model_version(name, str(version))
            # an injected sleep need not pass real time: count whichever is longer
            waited = max(time.monotonic() - begun, slept)
            if mv.status == "READY":
                return waited
            if mv.status == "FAILED_REGISTRATION":
                reason = mv.status_message or "MLflow gave no reason"
                raise RegistryError(f"MLflow could not register {name} v{version}: {reason}")
            if waited >= self.timeout_s:
                raise RegistryError(
                    f"{name} v{version} was still {mv.status} after waiting {waited:.1f} s "
                    f"(the limit is {self.timeout_s:g} s)"
                )
            pause = min(delay, self.timeout_s - waited)
            self._sleep(pause)
            slept += pause
            delay = min(self.poll_max_s, delay * 2)

    def _experiment_id(self, experiment: str) -> str:
        with self._translated(f"looking up experiment `{experiment}`"):
            found = self.client.get_experiment_by_name(experiment)
            if found is not None and found.lifecycle_stage == "active":
                return str(found.experiment_id)
            page = self.client.search_experiments(max_results=1000)
        names = sorted((e.name for e in page), key=str.casefold)
        shown = ", ".join(f"`{n}`" for n in names[:SHOWN_EXPERIMENTS]) or "none"
        if len(names) > SHOWN_EXPERIMENTS:
            shown += f" and {len(names) - SHOWN_EXPERIMENTS}{'+' if page.token else ''} more"
        state = "was deleted" if found is not None else "does not exist"
        raise NotFound(f"experiment `{experiment}` {state} (experiments: {shown})")

    def _finished_runs(self, experiment_id: str) -> list[Run]:
        """FINISHED runs, newest end time first (start time breaks ties), at most SCANNED_RUNS."""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            max_results=SCANNED_RUNS,
            order_by=["attributes.end_time DESC", "attributes.start_time DESC"],
        )
        # sorted again here so the choice never rests on the server's list order
        return sorted(runs, key=lambda r: (r.info.end_time or 0, r.info.start_time), reverse=True)

    def _run(self, experiment: str, run_id: str) -> FinishedRun:
        with mlflow_imports():
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

        experiment_id = self._experiment_id(experiment)
        with self._translated(f"reading run {run_id}"):
            try:
                run = self.client.get_run(run_id)
            except MlflowException as exc:
                if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                    raise
                raise NotFound(f"there is no run `{run_id}`") from None
            if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
                raise NotFound(f"experiment `{experiment}` has no run `{run_id}`")
            if run.info.status != "FINISHED":
                raise RegistryError(
                    f"run `{run_id}` is {run.info.status}: only FINISHED runs can be registered"
                )
            found = self._finished(experiment, run)
        if isinstance(found, str):
            raise NotFound(f"run `{run_id}` of `{experiment}` cannot be registered: {found}")
        return found

    def _finished(self, experiment: str, run: Run) -> FinishedRun | str:
        """The run with its model, or why it has none that can be registered."""
        info = run.info
        if info.end_time is None:
            return "has no end time"
        models = self.client.search_logged_models(
            experiment_ids=[info.experiment_id],
            filter_string=f"source_run_id = '{info.run_id}'",
        )
        ready = [m for m in models if m.status == "READY"]
        source, model_id = "", None
        if ready:
            # a run that logged several models registers the one logged last; the SQL registry
            # resolves a `models:/` source through the process-wide tracking URI, not this
            # client's, so the version is created from the artifact location itself
            newest = max(ready, key=lambda m: m.creation_timestamp)
            source, model_id = newest.artifact_location, newest.model_id
        elif self._has_run_model(info.artifact_uri):
            # a model saved as plain run artifacts (MLflow 2 style) at runs:/<id>/model
            source = f"{info.artifact_uri.rstrip('/')}/model"
        elif models:
            states = ", ".join(sorted({f"{m.name} is {m.status}" for m in models}))
            return f"has no ready model ({states})"
        else:
            return "logged no model"
        return FinishedRun(
            run_id=info.run_id,
            experiment=experiment,
            name=info.run_name or "",
            status=info.status,
            started_at=_utc(info.start_time),
            ended_at=_utc(info.end_time),
            metrics=dict(run.data.metrics),
            source=source,
            model_id=model_id,
        )

    def _has_run_model(self, artifact_uri: str) -> bool:
        # the run's own store: `list_artifacts(run_id)` also lists logged models, again through
        # the process-wide tracking URI
        with mlflow_imports():
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri)
        return any(f.path == "model/MLmodel" for f in repo.list_artifacts("model"))

    def _no_run_text(self, experiment: str, experiment_id: str, skipped: list[str]) -> str:
        states: Counter[str] = Counter()
        token: str | None = None
        with self._translated(f"counting the runs of `{experiment}`"):
            while sum(states.values()) < COUNTED_RUNS:
                page = self.client.search_runs([experiment_id], max_results=1000, page_token=token)
                states.update(r.info.status for r in page)
                token = page.token
                if not token:
                    break
        total = sum(states.values())
        if total == 0:
            return f"experiment `{experiment}` has no runs yet"
        more = "+" if token else ""
        counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        text = (
            f"experiment `{experiment}` has no FINISHED run with a model to register "
            f"({total}{more} run{'s' if total != 1 else ''}: {counts})"
        )
        if skipped:
            shown = "; ".join(skipped[:SHOWN_SKIPS])
            if len(skipped) > SHOWN_SKIPS:
                shown += f"; and {len(skipped) - SHOWN_SKIPS} more"
            text += f"; finished runs skipped: {shown}"
        return text
