"""The workspace model registry, backed by a real MLflow tracking/registry URI.

Ids are derived from MLflow names and version numbers, so models registered straight into
MLflow show up too. A version reports REGISTERING until ``Timings.registration`` seconds
after MLflow created it, then REGISTERED (FAILED if MLflow says so).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from emulators.cml.errors import ApiError
from emulators.cml.switches import Timings

_PRIVATE_TAG = "cml.emulator."


def short_id(*parts: str) -> str:
    """A CML-looking id (``a1b2-c3d4-e5f6-a7b8``), stable for the same parts."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def iso(ms_or_s: float, *, millis: bool = True) -> str:
    seconds = ms_or_s / 1000 if millis else ms_or_s
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MlflowRegistry:
    def __init__(
        self,
        *,
        tracking_uri: str,
        owner: dict[str, str],
        timings: Timings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._owner = owner
        self._timings = timings
        self._clock = clock
        self._lock = threading.RLock()

    # -- reads -------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._model_details(m) for m in self._all_models()]

    def get_model(self, model_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with self._lock:
            model = self._find_model(model_id)
            versions = [self._version(model_id, v) for v in self._versions_of(model.name)]
            return self._model_details(model), versions

    def get_version(self, model_id: str, version_id: str) -> dict[str, Any]:
        with self._lock:
            model = self._find_model(model_id)
            for v in self._versions_of(model.name):
                if short_id(model.name, str(v.version)) == version_id:
                    return self._version(model_id, v)
            raise ApiError.not_found("registered model version", version_id)

    def find_version(self, version_id: str) -> tuple[str, str, str]:
        """(MLflow name, MLflow version, CML status) of a registered model version id."""
        with self._lock:
            for model in self._all_models():
                for v in self._versions_of(model.name):
                    if short_id(model.name, str(v.version)) == version_id:
                        return model.name, str(v.version), self._status(v)
            raise ApiError.not_found("registered model version", version_id)

    def download_uri(self, name: str, version: str) -> str:
        with self._lock:
            return str(self._client.get_model_version_download_uri(name, version))

    # -- writes ------------------------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """CreateRegisteredModel: a new version of ``model_name`` from ``run_id``/``model_path``."""
        name = body.get("model_name") or ""
        run_id = body.get("run_id") or ""
        model_path = body.get("model_path") or "model"
        if not name or not run_id:
            raise ApiError.invalid("model_name and run_id are required")
        tags = {t.get("key", ""): t.get("value", "") for t in body.get("tags") or []}
        if body.get("project_id"):
            tags[_PRIVATE_TAG + "project_id"] = body["project_id"]
        with self._lock:
            run = self._run(run_id, body.get("experiment_id"))
            source, logged_model_id = self._source(run, model_path)
            try:
                self._client.create_registered_model(name, description=body.get("description"))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise ApiError.invalid(f"registry refused the model: {exc.message}") from None
            try:
                version = self._client.create_model_version(
                    name,
                    source,
                    run_id=run_id,
                    tags=tags,
                    description=body.get("notes"),
                    model_id=logged_model_id,
                )
            except MlflowException as exc:
                raise ApiError.invalid(f"registry refused the version: {exc.message}") from None
            model = self._client.get_registered_model(name)
            model_id = short_id(name)
            details = self._model_details(model)
            return {
                **details,
                "model_versions": [self._version(model_id, version)],
                "next_page_token": "",
            }

    # -- helpers -----------------------------------------------------------------------------

    def _run(self, run_id: str, experiment_id: str | None) -> Any:
        try:
            run = self._client.get_run(run_id)
        except MlflowException:
            raise ApiError.invalid(f"experiment run not found: {run_id}") from None
        if experiment_id and run.info.experiment_id != experiment_id:
            raise ApiError.invalid(f"run {run_id} is not in experiment {experiment_id}")
        return run

    def _source(self, run: Any, model_path: str) -> tuple[str, str | None]:
        run_id = run.info.run_id
        # a logged model's name never holds a quote (MLflow refuses one), so a path with
        # one names no logged model: only the run's own artifacts may hold it
        if not set(model_path) & set("'\""):
            logged = self._client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = {_literal(run_id)} AND name = "
                f"{_literal(model_path)}",
            )
            if logged:
                # The storage location, not models:/m-..., which MLflow would resolve through
                # the process-global tracking URI rather than this registry's.
                return str(logged[0].artifact_location), str(logged[0].model_id)
        # the run's artifact store itself: MLflow's `runs:/` listing also searches logged
        # models with the path pasted unquoted into a filter, and fails on a quote
        try:
            found = get_artifact_repository(run.info.artifact_uri).list_artifacts(model_path)
        except (MlflowException, OSError):
            found = []
        if found:
            return f"{run.info.artifact_uri}/{model_path}", None
        raise ApiError.invalid(f"no model at {model_path!r} in run {run_id}")

    def _all_models(self) -> list[Any]:
        models: list[Any] = []
        token = None
        while True:
            page = self._client.search_registered_models(max_results=1000, page_token=token)
            models.extend(page)
            token = page.token
            if not token:
                return models

    def _find_model(self, model_id: str) -> Any:
        for model in self._all_models():
            if short_id(model.name) == model_id:
                return model
        raise ApiError.not_found("registered model", model_id)

    def _versions_of(self, name: str) -> list[Any]:
        if "'" in name and '"' in name:  # no MLflow literal holds both: match here instead
            versions = [v for v in self._client.search_model_versions("") if v.name == name]
        else:
            versions = self._client.search_model_versions(f"name = {_literal(name)}")
        return sorted(versions, key=lambda v: int(v.version))

    def _status(self, version: Any) -> str:
        if version.status == "FAILED_REGISTRATION":
            return "FAILED"
        ready_at = version.creation_timestamp / 1000 + self._timings.registration
        if version.status == "PENDING_REGISTRATION" or self._clock() < ready_at:
            return "REGISTERING"
        return "REGISTERED"

    def _model_details(self, model: Any) -> dict[str, Any]:
        return {
            "model_id": short_id(model.name),
            "name": model.name,
            "description": model.description or "",
            "owner": self._owner,
            "visibility": "PRIVATE",
            "created_at": iso(model.creation_timestamp),
            "updated_at": iso(model.last_updated_timestamp),
            "count": len(self._versions_of(model.name)),
        }

    def _version(self, model_id: str, v: Any) -> dict[str, Any]:
        tags = v.tags or {}
        run_meta: dict[str, Any] = {"run_id": v.run_id or ""}
        if v.run_id:
            try:
                run = self._client.get_run(v.run_id)
            except MlflowException:
                run = None
            if run is not None:
                run_meta["experiment_id"] = run.info.experiment_id
                run_meta["metrics"] = [
                    {"key": k, "value": val} for k, val in sorted(run.data.metrics.items())
                ]
                run_meta["params"] = [
                    {"key": k, "value": val} for k, val in sorted(run.data.params.items())
                ]
        return {
            "model_id": model_id,
            "model_version_id": short_id(v.name, str(v.version)),
            "number": int(v.version),
            "notes": v.description or "",
            "user": self._owner,
            "created_at": iso(v.creation_timestamp),
            "updated_at": iso(v.last_updated_timestamp),
            "status": self._status(v),
            "model_version_metadata": {
                "mlops_type": "MLFLOW",
                "project_id": tags.get(_PRIVATE_TAG + "project_id", ""),
                "owner": self._owner,
                "mlflow_metadata": run_meta,
            },
            "tags": [
                {"key": k, "value": val}
                for k, val in sorted(tags.items())
                if not k.startswith(_PRIVATE_TAG)
            ],
            "error_message": "",
        }


def _literal(text: str) -> str:
    """`text` as a string in an MLflow filter, which takes what lies between the quotes as
    it is (no escapes): in double quotes when it holds a single one."""
    return f'"{text}"' if "'" in text else f"'{text}'"
