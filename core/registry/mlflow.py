"""The MLflow model registry, seen as the bot needs it: versions, aliases, metrics, artifacts.

MLflow's own exceptions are translated here into `core.errors`, so nothing above this module
knows MLflow raised them.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.errors import NotFound, RegistryError
from core.versions import ModelVersion as ModelVersion  # re-exported: callers import it here


class Registry:
    """Read access to one MLflow registry (and the artifact copies the targets load)."""

    def __init__(self, *, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        # Creating the client opens (and on first use migrates) the database: do it once.
        if self._client is None:
            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    def models(self) -> list[str]:
        """Names of every registered model, sorted."""
        try:
            return sorted(m.name for m in self.client.search_registered_models(max_results=1000))
        except MlflowException as exc:
            raise RegistryError(f"the model registry failed: {exc.message}") from None

    def resolve(
        self, model: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """The registered version named by number or alias; `NotFound` says what does exist."""
        known = self.models()
        if model not in known:
            hint = f"registered models: {', '.join(known)}" if known else "the registry is empty"
            raise NotFound(f"there is no model called `{model}` in the registry ({hint})")
        try:
            if alias is not None:
                mv = self._by_alias(model, alias)
            elif version is not None:
                mv = self._by_version(model, version)
            else:
                raise NotFound(f"say which version of `{model}` to use, e.g. `{model} v1`")
            metrics = self.client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        except MlflowException as exc:
            raise RegistryError(f"the model registry failed: {exc.message}") from None
        if mv.status != "READY":
            raise NotFound(f"{model} v{mv.version} is not ready yet (status {mv.status})")
        return ModelVersion(
            model=model,
            version=int(mv.version),
            source=mv.source,
            run_id=mv.run_id or None,
            status=mv.status,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            aliases=tuple(getattr(mv, "aliases", ()) or ()),
            metrics=dict(metrics),
        )

    def _versions(self, model: str) -> list[int]:
        found = self.client.search_model_versions(f"name = '{model}'", max_results=1000)
        return sorted(int(v.version) for v in found)

    def _by_version(self, model: str, version: int):  # type: ignore[no-untyped-def]
        try:
            return self.client.get_model_version(model, str(version))
        except MlflowException:
            versions = self._versions(model)
            listed = ", ".join(f"v{v}" for v in versions) or "none"
            raise NotFound(f"{model} has no version {version} (versions: {listed})") from None

    def _by_alias(self, model: str, alias: str):  # type: ignore[no-untyped-def]
        try:
            return self.client.get_model_version_by_alias(model, alias)
        except MlflowException:
            aliases = sorted(self.client.get_registered_model(model).aliases or {})
            listed = ", ".join(f"@{a}" for a in aliases) or "none"
            raise NotFound(f"{model} has no alias @{alias} (aliases: {listed})") from None

    def download(self, mv: ModelVersion, dest: Path) -> Path:
        """A local copy of the version's model artifacts (reused when already complete)."""
        if (dest / "MLmodel").exists():
            return dest
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            uri = self.client.get_model_version_download_uri(mv.model, str(mv.version))
            local = download_artifacts(
                artifact_uri=uri, dst_path=str(partial), tracking_uri=self.tracking_uri
            )
        except (MlflowException, OSError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise RegistryError(f"could not fetch the artifacts of {mv.label}: {exc}") from None
        if not (Path(local) / "MLmodel").exists():
            shutil.rmtree(partial, ignore_errors=True)
            raise RegistryError(f"{mv.label} has no MLmodel file: it is not an MLflow model")
        shutil.rmtree(dest, ignore_errors=True)
        Path(local).rename(dest)
        shutil.rmtree(partial, ignore_errors=True)
        return dest
