"""Readiness of what every environment shares: the MLflow registry and the state database."""

from __future__ import annotations

from core.config import Settings
from core.errors import RegistryError, StoreError
from core.oncall.checks import Finding
from core.registry.mlflow import Registry
from core.store import intake, migrate

REGISTRY = "registry"
DATABASE = "database"


def registry_finding(settings: Settings, registry: Registry | None = None) -> Finding:
    """The registry answers a listing within the bounded wait every registry call has; asked
    through `registry` when the process has it open already (opening a second client costs
    as much again), else through one of its own."""
    uri = settings.mlflow_tracking_uri
    registry = registry or Registry(tracking_uri=uri, wait_s=settings.registry_wait_s)
    # MLflow migrates a database-backed registry with alembic when it opens it
    local = not uri.startswith(("http://", "https://", "databricks"))
    try:
        if local:
            with migrate.exclusive():
                models = registry.models()
        else:
            models = registry.models()
    except RegistryError as exc:
        return Finding.problem(
            REGISTRY,
            "reachable and readable",
            exc.message,
            "check CHATOPS_MLFLOW_TRACKING_URI, the server and its credentials",
        )
    except Exception as exc:  # a driver MLflow does not wrap: named, never its text
        return Finding.problem(
            REGISTRY,
            "reachable and readable",
            f"reading the registry failed: {type(exc).__name__}",
            "check CHATOPS_MLFLOW_TRACKING_URI and that MLflow can open it",
        )
    shown = f"{len(models)} registered model(s)" if models else "reachable; no model yet"
    return Finding.ok(REGISTRY, "reachable and readable", shown)


def database_finding(settings: Settings) -> Finding:
    """The state database answers and is at the revision this bot's code expects, or is new
    and empty (the bot migrates it when it starts)."""
    try:
        revision = migrate.current(settings.database_url)
        new = revision is None and migrate.is_empty(settings.database_url)
    except StoreError as exc:
        return Finding.problem(
            DATABASE,
            "reachable and migrated",
            exc.message,
            "check CHATOPS_DATABASE_URL, the server and its credentials",
        )
    head = migrate.head()
    if (unusable := _intake(settings)) is not None:
        return unusable
    if new:
        # the bot (or `chatops db upgrade`) creates every table in it: nothing to fix
        return Finding.ok(
            DATABASE,
            "reachable and migrated",
            f"new and empty: the bot creates its tables (revision {head}) when it starts",
        )
    if revision == head:
        # how long the work of a bot that died unseen (another machine) waits to be taken over
        takeover = (
            f"a dead bot's work is taken over {settings.lease_s:g} s after it (CHATOPS_LEASE_S)"
        )
        return Finding.ok(DATABASE, "reachable and migrated", f"at revision {head}; {takeover}")
    if revision is None:
        detail = "has no schema yet (new, or made before migrations)"
    else:
        detail = f"is at revision {revision}; this bot needs {head}"
    return Finding.problem(
        DATABASE,
        "reachable and migrated",
        f"the state database {detail}",
        "run `chatops db upgrade` (the bot also migrates when it starts)",
    )


def _intake(settings: Settings) -> Finding | None:
    """The problem with the intake file (on SQLite, where fronts record jobs before they
    ack), if any: unreadable, or made by a newer version. Not made yet is no problem: the bot
    makes it when it starts."""
    url = intake.url_of(settings.database_url)
    path = intake.path_of(settings.database_url)
    if url is None or path is None:
        return None
    try:
        at = intake.version(url)
    except StoreError as exc:
        return Finding.problem(
            DATABASE,
            "reachable and migrated",
            exc.message,
            f"check {path.name} beside the state database",
        )
    if at is not None and at > intake.SCHEMA:
        return Finding.problem(
            DATABASE,
            "reachable and migrated",
            f"the intake file {path.name} is at version {at}; this bot knows {intake.SCHEMA}",
            "run the version of the bot that made it",
        )
    return None
