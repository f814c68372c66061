"""Registry events: a version registered, an alias moved, a tag set on a version, as MLflow
names them in its webhooks; and the registry read as the same facts, for polling.

A fact is what a subject of a model now is (`alias:champion` points at `3`); an event is a
fact that changed since it was last seen. The same event reaches the bot from MLflow's
webhook or from a poll, so both are told here in one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from core.marks import unmarked

if TYPE_CHECKING:  # the event is told without MLflow imported: repositories name it too
    from core.registry.mlflow import Registry

# MLflow's own tags (`mlflow.…`) are bookkeeping, not news for people
SYSTEM_TAG = "mlflow."
PAGE = 1000
# MLflow numbers a model's versions from 1 and stores the number as a 32-bit integer: a
# number beyond it names no version of any model
MAX_VERSION = 2**31 - 1


class RegistryEventKind(StrEnum):
    VERSION_CREATED = "model_version.created"
    ALIAS_CREATED = "model_version_alias.created"
    # told by MLflow's webhook without a version (0 here): never announced itself, it may
    # leave an environment's alias naming nothing of what serves (`core.drift`)
    ALIAS_DELETED = "model_version_alias.deleted"
    TAG_SET = "model_version_tag.set"


def version_number(text: str) -> int | None:
    """The version `text` (ASCII digits) numbers, or None when it numbers none (0, beyond
    `MAX_VERSION`, not digits: `str.isdigit` also takes "²", which `int` refuses)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_VERSION)):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_VERSION else None


@dataclass(frozen=True)
class RegistryEvent:
    kind: RegistryEventKind
    model: str
    version: int
    alias: str = ""
    tag: str = ""
    value: str = ""

    def __post_init__(self) -> None:
        # a tag and its value are anyone's free text: never taken for the bot's own marks
        object.__setattr__(self, "tag", unmarked(self.tag))
        object.__setattr__(self, "value", unmarked(self.value))

    @property
    def subject(self) -> str:
        """What changed, within its model."""
        if self.kind in (RegistryEventKind.ALIAS_CREATED, RegistryEventKind.ALIAS_DELETED):
            return f"alias:{self.alias}"
        if self.kind is RegistryEventKind.TAG_SET:
            return f"tag:{self.version}:{self.tag}"
        return f"version:{self.version}"

    @property
    def state(self) -> str:
        """What the subject became: an alias its version, a tag its value."""
        if self.kind is RegistryEventKind.ALIAS_CREATED:
            return str(self.version)
        if self.kind is RegistryEventKind.TAG_SET:
            return self.value
        return ""  # a version registered; an alias deleted

    @property
    def label(self) -> str:
        if self.kind is RegistryEventKind.ALIAS_CREATED:
            return f"{self.model} @{self.alias} -> v{self.version}"
        if self.kind is RegistryEventKind.ALIAS_DELETED:
            return f"{self.model} @{self.alias} deleted"
        if self.kind is RegistryEventKind.TAG_SET:
            return f"{self.model} v{self.version} tag {self.tag}={self.value}"
        return f"{self.model} v{self.version} registered"


def facts(registry: Registry) -> list[RegistryEvent]:
    """Every version, alias and (non-system) tag of the registry now, versions first, each
    as the event that would have made it so. RegistryError when the registry fails."""
    found: list[RegistryEvent] = []
    with registry.guarded("reading the registry for new versions, aliases and tags"):
        token: str | None = None
        while True:
            page = registry.client.search_model_versions("", max_results=PAGE, page_token=token)
            for mv in page:
                found.extend(_facts_of(mv))
            token = page.token
            if not token:
                break
        # a model's aliases are told with the model: versions from a search leave them out
        while True:
            models = registry.client.search_registered_models(max_results=PAGE, page_token=token)
            for rm in models:
                for alias, version in sorted((rm.aliases or {}).items()):
                    found.append(
                        RegistryEvent(
                            RegistryEventKind.ALIAS_CREATED, rm.name, int(version), alias=alias
                        )
                    )
            token = models.token
            if not token:
                break
    order = {k: n for n, k in enumerate(RegistryEventKind)}
    return sorted(found, key=lambda e: (order[e.kind], e.model, e.version))


def _facts_of(mv: object) -> list[RegistryEvent]:
    model, version = str(getattr(mv, "name", "")), int(getattr(mv, "version", 0))
    out = [RegistryEvent(RegistryEventKind.VERSION_CREATED, model, version)]
    for tag, value in sorted((getattr(mv, "tags", None) or {}).items()):
        if not tag.startswith(SYSTEM_TAG):
            out.append(
                RegistryEvent(RegistryEventKind.TAG_SET, model, version, tag=tag, value=value)
            )
    return out


@dataclass(frozen=True)
class VersionFacts:
    """What the announcement of a version tells of it: who registered it (as MLflow knows
    them: the version's user, else the user of its run; "" when neither is known), its run
    and the metrics that run logged."""

    by: str
    run_id: str | None
    metrics: dict[str, float]


def version_facts(registry: Registry, model: str, version: int) -> VersionFacts:
    """RegistryError (NotFound's parent) when the registry fails or has no such version."""
    with registry.guarded(f"reading {model} v{version}"):
        mv = registry.client.get_model_version(model, str(version))
        by = str(getattr(mv, "user_id", "") or "")
        metrics: dict[str, float] = {}
        if mv.run_id:
            run = registry.client.get_run(mv.run_id)
            metrics = dict(run.data.metrics)
            by = by or str(run.data.tags.get("mlflow.user", "") or "")
    return VersionFacts(by=by, run_id=mv.run_id or None, metrics=metrics)
