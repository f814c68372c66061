"""The registry as targets see it: a `ModelSource` over the MLflow registry, so a target is
handed what it may fetch instead of the registry adapter itself."""

from __future__ import annotations

from pathlib import Path

from core.errors import RegistryError
from core.registry.mlflow import Registry
from core.versions import ModelVersion


class RegistrySource:
    """`core.targets.base.ModelSource` over one `Registry`."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @property
    def tracking_uri(self) -> str:
        """As configured (it may carry credentials: never show it)."""
        return self._registry.tracking_uri

    def download(self, mv: ModelVersion, dest: Path) -> Path:
        """A verified local copy of `mv`'s model artifacts at `dest`."""
        return self._registry.download(mv, dest)

    def download_uri(self, mv: ModelVersion) -> str:
        """Where `mv`'s artifacts live; `RegistryError` when the registry cannot say."""
        try:
            with self._registry.guarded(f"asking where the artifacts of {mv.label} are"):
                return str(
                    self._registry.client.get_model_version_download_uri(mv.model, str(mv.version))
                )
        except OSError as exc:  # requests' connection errors are OSErrors; their text holds URLs
            raise RegistryError(
                f"the registry did not say where the artifacts of {mv.label} are: "
                f"{type(exc).__name__}"
            ) from None

    def run_experiment(self, mv: ModelVersion) -> str:
        """The experiment id of `mv`'s run ("" when it has none); `RegistryError` when the
        run cannot be read."""
        if not mv.run_id:
            return ""
        try:
            with self._registry.guarded(f"reading the run of {mv.label}"):
                return str(self._registry.client.get_run(mv.run_id).info.experiment_id)
        except OSError as exc:
            raise RegistryError(
                f"could not read the run of {mv.label}: {type(exc).__name__}"
            ) from None
