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


def serving_tag(env: str) -> str:
    """The version tag the bot sets on the version that serves `env` (`chatops.prod.serving`),
    when the environment names an alias to write back."""
    return f"chatops.{env}.serving"


def listed_metrics(metrics: dict[str, float], *, limit: int = 600, digits: int = 3) -> str:
    """`name value` for as many whole metrics as fit in `limit` characters (sorted by name),
    then how many more there are: a version may log thousands, a message holds a few."""
    items = [f"{name} {metrics[name]:.{digits}g}" for name in sorted(metrics)]
    if len(", ".join(items)) <= limit:
        return ", ".join(items)
    listed: list[str] = []
    size = 0
    for i, item in enumerate(items):
        if size + len(item) + len(MORE_METRICS.format(n=len(items) - i)) > limit:
            break
        listed.append(item)
        size += len(item) + 2
    more = MORE_METRICS.format(n=len(items) - len(listed))
    return ", ".join(listed) + more if listed else more.lstrip()


MORE_METRICS = " … and {n} more metrics"
