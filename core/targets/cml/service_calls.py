"""One call through `cmlapi.CMLServiceApi`: arguments as the generated API takes them,
retries where another try is safe, and its failures translated into our error tree.

cmlapi sends what it is given: a `search_filter` mapping would go out as Python's repr, a
`None` as the text "None", a boolean as "True"; and it serialises only its own model
classes. So: JSON strings, `None`s left out, bodies rebuilt as cmlapi's class of the same
name. Reads (and stops, which CML may be asked twice) are retried on 429, 5xx and no
answer; creates never are: a second try of a create that did its work makes a second object.
No text built here holds the API key.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core import metrics
from core.targets.cml.calls import CallCounter
from core.targets.cml.errors import (
    CMLAPIError,
    CMLAuthError,
    CMLNotFound,
    CMLOutcomeUnknown,
    CMLServerError,
    CMLUnreachable,
)

logger = logging.getLogger("core.targets.cml")

R = TypeVar("R", bound=BaseModel)
REDACTED = "<redacted>"

_P, _M, _B = "/api/v2/projects/{project_id}", "/models/{model_id}", "/builds/{build_id}"
_D = f"{_P}{_M}{_B}/deployments"
# the spec's path of each operation: /metrics counts calls through cmlapi by the same routes
# as ours (cmlapi builds the URL inside, out of reach)
ROUTES = {
    "list_projects": "/api/v2/projects",
    "get_project": _P,
    "list_models": f"{_P}/models",
    "create_model": f"{_P}/models",
    "get_model": f"{_P}{_M}",
    "list_model_builds": f"{_P}{_M}/builds",
    "create_model_build": f"{_P}{_M}/builds",
    "get_model_build": f"{_P}{_M}{_B}",
    "list_model_deployments": _D,
    "create_model_deployment": _D,
    "get_model_deployment": f"{_D}/{{deployment_id}}",
    "restart_model_deployment": f"{_D}/{{deployment_id}}:restart",
    "stop_model_deployment": f"{_D}/{{deployment_id}}:stop",
    "list_registered_models": "/api/v2/registry/models",
    "create_registered_model": "/api/v2/registry/models",
    "get_registered_model": "/api/v2/registry/models/{model_id}",
    "get_registered_model_version": "/api/v2/registry/models/{model_id}/versions/{version_id}",
    "list_runtimes": "/api/v2/runtimes",
}


class ServiceCalls:
    """Calls operations of `service` (a `cmlapi.CMLServiceApi`); each request is tallied on
    `calls`."""

    def __init__(
        self,
        *,
        module: ModuleType,
        service: Any,
        api_key: str,
        calls: CallCounter,
        timeout: float,
        retries: int,
        backoff: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._module = module
        self._service = service
        rest = importlib.import_module(f"{module.__name__}.rest")
        self._api_exception: type[Exception] = rest.ApiException
        self._secret = api_key
        self._calls = calls
        # a pair: cmlapi ignores a single timeout that is not an int
        self._timeout = (timeout, timeout)
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep

    def call(
        self,
        result: type[R],
        operation: str,
        *ids: str,
        body: BaseModel | None = None,
        **query: Any,
    ) -> R:
        """`operation(body?, *ids, **query)` of the service, its answer as a `result`."""
        kwargs = {name: _query_value(value) for name, value in query.items() if value is not None}
        args = (self._body(body), *ids) if body is not None else ids
        send = getattr(self._service, operation)
        verb = "GET" if operation.startswith(("get_", "list_")) else "POST"
        # a create is sent again only when it never reached CML: once it may have been
        # done, the caller looks for what it asked for instead (`CMLOutcomeUnknown`)
        repeatable = verb == "GET" or operation.startswith("stop_")
        tries = self._retries + 1
        route = ROUTES.get(operation, f"/api/v2/{operation}")
        for attempt in range(1, tries + 1):
            self._calls.tally()
            began, answered = time.monotonic(), None
            try:
                answer = send(*args, _request_timeout=self._timeout, **kwargs)
                answered = 200
                break
            except self._api_exception as exc:
                status = int(getattr(exc, "status", 0) or 0)
                answered = status or None
                maybe_done = status >= 500 or status == 429
                if maybe_done and not repeatable:
                    raise self._unknown(operation, exc, status) from None
                if attempt == tries or not maybe_done:
                    raise self._api_error(verb, operation, exc, tries=attempt) from None
                why = f"status {status}"
            except Exception as exc:
                # urllib3's failures (refused, reset, timed out) reach us unwrapped
                if not _transport_failure(exc):
                    raise
                if not repeatable and not _never_sent(exc):
                    raise self._unknown(operation, exc, None) from None
                if attempt == tries:
                    raise self._unreachable(verb, operation, exc, tries=attempt) from None
                why = type(exc).__name__
            finally:
                metrics.cml_call(verb, route, answered, time.monotonic() - began)
            wait = min(self._backoff * 2 ** (attempt - 1), 10.0)
            logger.warning(
                "CML %s failed (%s); retrying in %.2fs (try %d of %d)",
                *(operation, why, wait, attempt + 1, tries),
            )
            self._sleep(wait)
        data = self._service.api_client.sanitize_for_serialization(answer)
        try:
            return result.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise CMLAPIError(
                f"CML answered {operation} with a body that is not a {result.__name__} "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})",
                status_code=200,
                method=verb,
                path=operation,
            ) from None

    def _body(self, body: BaseModel) -> Any:
        """The same request as cmlapi's model class of that name: the only bodies it sends."""
        kind = getattr(self._module, type(body).__name__)
        return kind(**body.model_dump(mode="json", exclude_none=True))

    def _api_error(self, verb: str, operation: str, exc: Any, *, tries: int) -> CMLAPIError:
        status = int(getattr(exc, "status", 0) or 0)
        said, code = _error_body(getattr(exc, "body", None))
        said = self._redact(said or str(getattr(exc, "reason", "") or ""))
        kind: type[CMLAPIError] = CMLAPIError
        if status in (401, 403):
            kind, hint = CMLAuthError, "check the API key configured for this environment"
        elif status == 404:
            kind, hint = CMLNotFound, "not found"
        elif status >= 500 or status == 429:
            kind = CMLServerError
            hint = f"still failing after {tries} tries" if tries > 1 else "server error"
        else:
            hint = "request refused"
        return kind(
            f"CML answered {operation} with {status} ({hint})" + (f": {said}" if said else ""),
            status_code=status,
            cml_message=said,
            code=code,
            method=verb,
            path=operation,
        )

    def _unreachable(
        self, verb: str, operation: str, exc: Exception, *, tries: int
    ) -> CMLUnreachable:
        detail = self._redact(str(exc) or type(exc).__name__)[:300]
        after = f"; gave up after {tries} tries" if tries > 1 else ""
        return CMLUnreachable(f"CML cannot be reached ({verb} {operation}): {detail}{after}")

    def _unknown(self, operation: str, exc: Exception, status: int | None) -> CMLOutcomeUnknown:
        said = self._redact(_error_body(getattr(exc, "body", None))[0]) if status else ""
        why = f"status {status}" if status else type(exc).__name__
        logger.warning("CML POST %s may or may not have been done (%s)", operation, why)
        return CMLOutcomeUnknown(
            f"CML did not say whether POST {operation} was done ({why})",
            status_code=status,
            cml_message=said,
            method="POST",
            path=operation,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, REDACTED) if self._secret else text


def _query_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return json.dumps(dict(value), separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _transport_failure(exc: Exception) -> bool:
    urllib3 = any(k.__module__.startswith("urllib3") for k in type(exc).__mro__)
    return urllib3 or isinstance(exc, OSError)


def _never_sent(exc: BaseException) -> bool:
    """Whether the failure happened before the request reached CML (no connection made)."""
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in ("NewConnectionError", "ConnectTimeoutError", "ConnectionRefusedError"):
            return True
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else (seen.__cause__ or seen.__context__)
    return False


def _error_body(body: Any) -> tuple[str, int | None]:
    """The message and gRPC code of the spec's `runtimeError` body, if it is one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return "", None
    try:
        data = json.loads(body)
    except ValueError:
        return str(body)[:200].strip(), None
    if not isinstance(data, dict):
        return str(data)[:200], None
    code = data.get("code")
    message = str(data.get("message") or data.get("error") or "")[:300]
    return message, code if isinstance(code, int) else None
