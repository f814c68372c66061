"""The API v2 operations the emulator implements: (emulator, path params, query, body) ->
the response body, with the spec's field names and the list semantics of ``listing``.
Each runs under the switches that act once its work is done: statuses spelled another way,
and replies lost (a 5xx, a dropped connection, a hang) after the work."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from emulators.cml import listing
from emulators.cml.emulator import CMLEmulator
from emulators.cml.errors import ApiError
from emulators.cml.lost import ReplyLost
from emulators.cml.switches import Faults

Handler = Callable[[CMLEmulator, Mapping[str, str], Mapping[str, str], Any], Any]

# Filter and sort keys each list accepts, as the spec's parameter descriptions name them;
# anything else is refused with 400, as CML does.
_USER_KEYS = ("creator.email", "creator.name", "creator.username")
PROJECT_FILTERS = {
    k: k
    for k in ("description", "name", "owner.email", "owner.name", "owner.username", *_USER_KEYS)
}
PROJECT_SORTS = (*PROJECT_FILTERS, "created_at", "updated_at")
MODEL_FILTERS = {k: k for k in ("auth_enabled", "description", "name", *_USER_KEYS)}
MODEL_SORTS = (*MODEL_FILTERS, "created_at", "updated_at")
BUILD_FILTERS = {k: k for k in ("comment", "crn", "status", *_USER_KEYS)}
BUILD_SORTS = (*BUILD_FILTERS, "built_at", "created_at", "updated_at")
REGISTRY_SORTS = (
    "created_at",
    *_USER_KEYS,
    "description",
    "kernel",
    "name",
    "script",
    "status",
    "updated_at",
)
# GetRegisteredModel also documents sort=-versions: by version number
VERSION_SORTS = {**{k: k for k in REGISTRY_SORTS}, "versions": "number"}
RUNTIME_KEYS = ("image_identifier", "editor", "kernel", "edition", "description", "full_version")


def _page(
    items: list[dict[str, Any]],
    key: str,
    query: Mapping[str, str],
    filters: Mapping[str, str] | None = None,
    sorts: tuple[str, ...] | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    try:
        size = int(query["page_size"]) if query.get("page_size") else None
    except ValueError:
        raise ApiError.invalid(f"page_size must be an integer: {query['page_size']!r}") from None
    page, token = listing.apply(
        items,
        search_filter=query.get("search_filter"),
        sort=query.get("sort"),
        page_size=size,
        page_token=query.get("page_token"),
        filter_keys=filters,
        sort_keys=sorts,
    )
    return {key: page, "next_page_token": token}


def list_projects(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    projects = list(emu.workspace.projects.values())
    return _page(projects, "projects", q, PROJECT_FILTERS, PROJECT_SORTS)


def get_project(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    return emu.workspace.project(p["project_id"])


def list_registered_models(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    filters = {"model_name": "name", "creator_id": "owner.username"}
    return _page(emu.registry.list_models(), "models", q, filters, REGISTRY_SORTS)


def get_registered_model(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    model, versions = emu.registry.get_model(p["model_id"])
    filters = {"version_number": "number", "creator_id": "user.username"}
    return {**model, **_page(versions, "model_versions", q, filters, VERSION_SORTS)}


def create_registered_model(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], body: Any
) -> Any:
    return emu.registry.register(body)


def get_registered_model_version(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    return emu.registry.get_version(p["model_id"], p["version_id"])


def list_models(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    models = emu.workspace.models_of(p["project_id"])
    return _page(models, "models", q, MODEL_FILTERS, MODEL_SORTS)


def create_model(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], body: Any) -> Any:
    return emu.workspace.create_model(p["project_id"], body)


def get_model(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    return emu.workspace.model(p["project_id"], p["model_id"])


def update_model(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], body: Any) -> Any:
    return emu.workspace.update_model(p["project_id"], p["model_id"], body)


def list_model_builds(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    now = emu.workspace.now()
    builds = [b.view(now) for b in emu.workspace.builds_of(p["project_id"], p["model_id"])]
    return _page(builds, "model_builds", q, BUILD_FILTERS, BUILD_SORTS)


def create_model_build(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], body: Any
) -> Any:
    record = emu.workspace.create_build(p["project_id"], p["model_id"], body)
    return record.view(emu.workspace.now())


def get_model_build(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    record = emu.workspace.build(p["project_id"], p["model_id"], p["build_id"])
    return record.view(emu.workspace.now())


def list_model_deployments(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    now = emu.workspace.now()
    records = emu.workspace.deployments_of(p["project_id"], p["model_id"], p["build_id"])
    return _page([d.view(now) for d in records], "model_deployments", q)


def create_model_deployment(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], body: Any
) -> Any:
    record = emu.workspace.create_deployment(p["project_id"], p["model_id"], p["build_id"], body)
    return record.view(emu.workspace.now())


def get_model_deployment(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    ids = (p["project_id"], p["model_id"], p["build_id"], p["deployment_id"])
    return emu.workspace.deployment(*ids).view(emu.workspace.now())


def stop_model_deployment(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    ids = (p["project_id"], p["model_id"], p["build_id"], p["deployment_id"])
    record = emu.workspace.deployment(*ids)
    emu.lifecycle.stop(record)
    return record.view(emu.workspace.now())


def restart_model_deployment(
    emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any
) -> Any:
    ids = (p["project_id"], p["model_id"], p["build_id"], p["deployment_id"])
    record = emu.workspace.deployment(*ids)
    emu.lifecycle.restart(record)
    return record.view(emu.workspace.now())


def list_runtimes(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], _: Any) -> Any:
    keys = {k: k for k in RUNTIME_KEYS}
    return _page(emu.workspace.runtimes, "runtimes", q, keys, RUNTIME_KEYS)


_PROJECT = "/api/v2/projects/{project_id}"
_MODEL = _PROJECT + "/models/{model_id}"
_BUILD = _MODEL + "/builds/{build_id}"
_DEPLOYMENT = _BUILD + "/deployments/{deployment_id}"

_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v2/projects", list_projects),
    ("GET", _PROJECT, get_project),
    ("GET", "/api/v2/registry/models", list_registered_models),
    ("POST", "/api/v2/registry/models", create_registered_model),
    ("GET", "/api/v2/registry/models/{model_id}", get_registered_model),
    (
        "GET",
        "/api/v2/registry/models/{model_id}/versions/{version_id}",
        get_registered_model_version,
    ),
    ("GET", _PROJECT + "/models", list_models),
    ("POST", _PROJECT + "/models", create_model),
    ("GET", _MODEL, get_model),
    ("PATCH", _MODEL, update_model),
    ("GET", _MODEL + "/builds", list_model_builds),
    ("POST", _MODEL + "/builds", create_model_build),
    ("GET", _BUILD, get_model_build),
    ("POST", _DEPLOYMENT + ":stop", stop_model_deployment),
    ("POST", _DEPLOYMENT + ":restart", restart_model_deployment),
    ("GET", _BUILD + "/deployments", list_model_deployments),
    ("POST", _BUILD + "/deployments", create_model_deployment),
    ("GET", _DEPLOYMENT, get_model_deployment),
    ("GET", "/api/v2/runtimes", list_runtimes),
]


def operation_id(handler: Handler) -> str:
    """The spec's operationId of a handler: ``stop_model_deployment`` -> StopModelDeployment."""
    return "".join(part.title() for part in handler.__name__.split("_"))


# the list each kind of status-bearing answer keeps its items in
_STATUS_LISTS = {
    "build": "model_builds",
    "deployment": "model_deployments",
    "registered_version": "model_versions",
}


def _status_kind(operation: str) -> str | None:
    if "ModelBuild" in operation:
        return "build"
    if "ModelDeployment" in operation:
        return "deployment"
    if "RegisteredModel" in operation and operation != "ListRegisteredModels":
        return "registered_version"
    return None


def _respelled(faults: Faults, kind: str, answer: Any) -> Any:
    if not isinstance(answer, dict):
        return answer
    answer = dict(answer)
    if isinstance(answer.get("status"), str):
        answer["status"] = faults.respell(kind, answer["status"])
    items = answer.get(_STATUS_LISTS[kind])
    if isinstance(items, list):
        answer[_STATUS_LISTS[kind]] = [_respelled(faults, kind, item) for item in items]
    return answer


def _switched(handler: Handler) -> Handler:
    operation = operation_id(handler)
    kind = _status_kind(operation)

    @functools.wraps(handler)
    def run(emu: CMLEmulator, p: Mapping[str, str], q: Mapping[str, str], body: Any) -> Any:
        if emu.faults.held(operation):
            emu.faults.hold_back()  # a slow gateway: the call is done late, but done
        answer = handler(emu, p, q, body)
        if kind is not None:
            answer = _respelled(emu.faults, kind, answer)
        how = emu.faults.reply_lost(operation)
        if how == "status":
            status = emu.faults.fail_status
            raise ApiError(status, f"injected failure ({status}) after {operation} was done")
        if how == "hang":
            emu.faults.hold()
        if how is not None:
            raise ReplyLost(operation)
        return answer

    return run


ROUTES: list[tuple[str, str, Handler]] = [
    (method, path, _switched(handler)) for method, path, handler in _ROUTES
]
OPERATION_IDS = frozenset(operation_id(handler) for _, _, handler in ROUTES)


def created(emu: CMLEmulator) -> dict[str, int]:
    """How many of each thing a create makes the workspace holds: registered model versions
    (in its registry), models, builds and deployments."""
    versions = sum(int(model.get("count", 0)) for model in emu.registry.list_models())
    workspace = emu.workspace
    return {
        "registered_model_versions": versions,
        "models": len(workspace.models),
        "model_builds": len(workspace.builds),
        "model_deployments": len(workspace.deployments),
    }
