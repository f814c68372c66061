"""HTTP face of the emulator: the spec's paths, ``POST /model``, and ``/_emulator/`` admin."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.cml import listing
from emulators.cml.emulator import CMLEmulator
from emulators.cml.errors import ApiError
from emulators.cml.serving import ServingError, predict
from emulators.cml.switches import public_fields, update_timings

logger = logging.getLogger("emulators.cml")

Handler = Callable[[CMLEmulator, Mapping[str, str], Mapping[str, str], Any], Any]

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
RUNTIME_KEYS = ("image_identifier", "editor", "kernel", "edition", "description", "full_version")


def _page(
    items: list[dict[str, Any]],
    key: str,
    query: Mapping[str, str],
    filters: Mapping[str, str] | None = None,
    sorts: tuple[str, ...] | None = None,
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


# -- operations: (emulator, path params, query, body) -> response body ------------------------


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
    return {**model, **_page(versions, "model_versions", q, filters, REGISTRY_SORTS)}


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


# -- wiring ---------------------------------------------------------------------------------


def _api(operation: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        emu: CMLEmulator = request.app.state.emulator
        try:
            body = await _json_body(request) if request.method == "POST" else None
            result = await run_in_threadpool(
                _admitted,
                emu,
                operation,
                request.headers.get("authorization"),
                dict(request.path_params),
                dict(request.query_params),
                body,
            )
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(result)

    return endpoint


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ApiError.invalid("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError.invalid("the request body must be a JSON object")
    return body


def _admitted(emu: CMLEmulator, operation: Handler, authorization: str | None, *args: Any) -> Any:
    emu.admit(authorization)
    try:
        return operation(emu, *args)
    except ApiError:
        raise
    except (ValueError, TypeError) as exc:
        raise ApiError.invalid(f"invalid request: {exc}") from None
    except Exception as exc:
        logger.exception("emulator operation %s failed", operation.__name__)
        raise ApiError(500, f"internal error: {type(exc).__name__}: {exc}") from None


async def model_service(request: Request) -> Response:
    emu: CMLEmulator = request.app.state.emulator
    try:
        payload = json.loads(await request.body())
        result = await run_in_threadpool(
            predict,
            emu.workspace,
            payload,
            authorization=request.headers.get("authorization"),
            api_key=emu.api_key,
        )
    except ValueError:
        return JSONResponse({"success": False, "error": "the request body is not JSON"}, 400)
    except ServingError as exc:
        return JSONResponse({"success": False, "error": exc.message}, exc.status)
    return JSONResponse(result)


def _admin_switches(which: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return await _switches(request, which)

    return endpoint


async def _switches(request: Request, which: str) -> Response:
    emu: CMLEmulator = request.app.state.emulator
    if request.method == "POST":
        try:
            changes = json.loads(await request.body() or b"{}")
            if which == "faults":
                emu.faults.update(changes)
            else:
                update_timings(emu.timings, changes)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
    target = emu.faults if which == "faults" else emu.timings
    return JSONResponse(public_fields(target))


async def admin_reset(request: Request) -> Response:
    emu: CMLEmulator = request.app.state.emulator
    emu.faults.reset()
    return JSONResponse(public_fields(emu.faults))


async def admin_build_log(request: Request) -> Response:
    emu: CMLEmulator = request.app.state.emulator
    record = emu.workspace.builds.get(request.path_params["build_id"])
    if record is None:
        return JSONResponse({"error": "no such build"}, 404)
    status = record.status(emu.workspace.now())
    return JSONResponse({"id": record.id, "status": status, "log": record.log})


async def admin_health(request: Request) -> Response:
    return JSONResponse({"ok": True})


_PROJECT = "/api/v2/projects/{project_id}"
_MODEL = _PROJECT + "/models/{model_id}"
_BUILD = _MODEL + "/builds/{build_id}"
_DEPLOYMENT = _BUILD + "/deployments/{deployment_id}"

ROUTES: list[tuple[str, str, Handler]] = [
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


def build_app(emulator: CMLEmulator) -> Starlette:
    routes = [Route(path, _api(op), methods=[method]) for method, path, op in ROUTES]
    routes += [
        Route("/model", model_service, methods=["POST"]),
        Route("/_emulator/health", admin_health, methods=["GET"]),
        Route("/_emulator/reset", admin_reset, methods=["POST"]),
        Route("/_emulator/builds/{build_id}/log", admin_build_log, methods=["GET"]),
        Route("/_emulator/faults", _admin_switches("faults"), methods=["GET", "POST"]),
        Route("/_emulator/timings", _admin_switches("timings"), methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app
