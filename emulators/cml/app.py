"""HTTP face of the emulator: the spec's paths, ``POST /model``, and ``/_emulator/`` admin."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.cml.emulator import CMLEmulator
from emulators.cml.errors import ApiError
from emulators.cml.lost import BrokenReply, ReplyLost
from emulators.cml.operations import OPERATION_IDS, ROUTES, Handler, created, operation_id
from emulators.cml.serving import ServingError, predict
from emulators.cml.switches import public_fields, update_timings
from emulators.cml.validation import BODIES, checked_body, checked_query

logger = logging.getLogger("emulators.cml")


def _api(operation: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        emu: CMLEmulator = request.app.state.emulator
        raw = await request.body()
        try:
            result = await run_in_threadpool(
                _admitted,
                emu,
                operation,
                request.headers.get("authorization"),
                dict(request.path_params),
                dict(request.query_params),
                raw,
            )
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except ReplyLost:
            return BrokenReply()
        return JSONResponse(result)

    return endpoint


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ApiError.invalid("the request body is not JSON") from None


def _admitted(
    emu: CMLEmulator,
    operation: Handler,
    authorization: str | None,
    path: dict[str, str],
    query: dict[str, str],
    raw: bytes,
) -> Any:
    # The gateway authenticates first, then decodes the request: a bad key is a 401 even
    # for a malformed body, and a wrongly typed field is a 400 before anything is done.
    op = operation_id(operation)
    emu.admit(authorization, op)
    checked_query(query)
    body = checked_body(op, _json_body(raw)) if op in BODIES else None
    try:
        return operation(emu, path, query, body)
    except (ApiError, ReplyLost):
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
    except ValueError:
        return JSONResponse({"success": False, "error": "the request body is not JSON"}, 400)
    try:
        result = await run_in_threadpool(
            predict,
            emu.workspace,
            payload,
            authorization=request.headers.get("authorization"),
            api_key=emu.api_key,
        )
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
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of switch -> value")
            if which == "faults":
                emu.faults.update(changes, operations=OPERATION_IDS)
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


async def admin_created(request: Request) -> Response:
    return JSONResponse(created(request.app.state.emulator))


async def admin_health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _no_route(request: Request, exc: Exception) -> Response:
    """What the gateway answers a path it does not serve: 401 for a bad key first, then a
    ``runtimeError`` (404 for an unknown path; a known path with another method is
    Unimplemented, which the gateway answers 501)."""
    emu: CMLEmulator = request.app.state.emulator
    status = getattr(exc, "status_code", 404)
    error = ApiError(404, "Not Found") if status == 404 else ApiError(501, "Method Not Allowed")
    if request.url.path.startswith("/api/"):
        try:
            emu.authenticate(request.headers.get("authorization"))
        except ApiError as refused:
            error = refused
    return JSONResponse(error.body(), status_code=error.status)


def build_app(emulator: CMLEmulator) -> Starlette:
    routes = [Route(path, _api(op), methods=[method]) for method, path, op in ROUTES]
    routes += [
        Route("/model", model_service, methods=["POST"]),
        Route("/_emulator/health", admin_health, methods=["GET"]),
        Route("/_emulator/created", admin_created, methods=["GET"]),
        Route("/_emulator/reset", admin_reset, methods=["POST"]),
        Route("/_emulator/builds/{build_id}/log", admin_build_log, methods=["GET"]),
        Route("/_emulator/faults", _admin_switches("faults"), methods=["GET", "POST"]),
        Route("/_emulator/timings", _admin_switches("timings"), methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _no_route, 405: _no_route})
    app.state.emulator = emulator
    return app
