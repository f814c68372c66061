"""A registered model version as the core sees it: what the registry adapter answers and what
targets are handed. Kept out of `core.registry` so that targets never import the adapter (and
MLflow with it) to name the version they serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    source: str
    run_id: str | None
    status: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    run_name: str = ""  # the name MLflow gave (or was given for) its run

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"
