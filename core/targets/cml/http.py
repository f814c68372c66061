"""One HTTP exchange with CML: auth, retries with backoff, and errors translated at the edge.

Retried: connection failures, timeouts, 429 and 5xx. Not retried: any other 4xx, and
failures before anything was sent (bad URL scheme, bad header), which another try cannot
fix. The API key lives only in the auth flow and is scrubbed from any text that leaves
this module.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from core.errors import ConfigError
from core.targets.cml.errors import (
    CMLAPIError,
    CMLAuthError,
    CMLNotFound,
    CMLServerError,
    CMLUnreachable,
)

logger = logging.getLogger("core.targets.cml")

REDACTED = "<redacted>"


# Failures on the way that another try may not meet; a bad URL or header would.
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _BearerAuth(httpx.Auth):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["authorization"] = f"Bearer {self._api_key}"
        yield request

    def __repr__(self) -> str:
        return f"_BearerAuth({REDACTED})"


class _Transient(Exception):
    """A failure another try may cure; holds what to report when the tries run out."""

    def __init__(
        self, response: httpx.Response | None = None, error: httpx.TransportError | None = None
    ) -> None:
        super().__init__("transient CML failure")
        self.response = response
        self.error = error


class CMLHttp:
    """Sends one request to CML and returns its JSON body, or raises a ``CMLAPIError`` family
    error / ``CMLUnreachable``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: httpx.BaseTransport | None,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float = 10.0,
    ) -> None:
        if not api_key or not api_key.isprintable() or any(c.isspace() for c in api_key):
            raise ConfigError("the CML API key is empty or holds whitespace or control characters")
        self._secret = api_key
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._client = httpx.Client(
            base_url=base_url,
            auth=_BearerAuth(api_key),
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"accept": "application/json", "user-agent": "chatops-cml-client"},
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}

        def send() -> httpx.Response:
            try:
                response = self._client.request(method, path, params=query, json=body)
            except _RETRYABLE as exc:
                raise _Transient(error=exc) from exc
            except httpx.TransportError as exc:
                raise self._unreachable(method, path, exc, tries=1) from None
            if response.status_code >= 500 or response.status_code == 429:
                raise _Transient(response=response)
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=self._max_backoff),
            retry=retry_if_exception_type(_Transient),
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )
        try:
            response = retrying(send)
        except _Transient as exc:
            if exc.response is not None:
                raise self._api_error(method, path, exc.response) from None
            raise self._unreachable(method, path, exc.error, tries=self._retries + 1) from None
        if response.status_code >= 400:
            raise self._api_error(method, path, response)
        try:
            return response.json()
        except ValueError:
            raise CMLAPIError(
                f"CML answered {method} {path} with a body that is not JSON",
                status_code=response.status_code,
                method=method,
                path=path,
            ) from None

    def _unreachable(
        self, method: str, path: str, error: Exception | None, *, tries: int
    ) -> CMLUnreachable:
        detail = self._redact(str(error) or type(error).__name__)
        after = f"; gave up after {tries} tries" if tries > 1 else ""
        return CMLUnreachable(f"CML cannot be reached ({method} {path}): {detail}{after}")

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, REDACTED) if self._secret else text

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        why = "no answer"
        if isinstance(exc, _Transient) and exc.response is not None:
            why = f"status {exc.response.status_code}"
        elif isinstance(exc, _Transient) and exc.error is not None:
            why = type(exc.error).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "CML %s %s failed (%s); retrying in %.2fs (try %d of %d)",
            method,
            path,
            why,
            wait,
            state.attempt_number + 1,
            self._retries + 1,
        )

    def _api_error(self, method: str, path: str, response: httpx.Response) -> CMLAPIError:
        cml_message, code = _error_body(response)
        cml_message = self._redact(cml_message)
        status = response.status_code
        kind: type[CMLAPIError] = CMLAPIError
        if status in (401, 403):
            kind = CMLAuthError
            hint = "check the API key configured for this environment"
        elif status == 404:
            kind = CMLNotFound
            hint = "not found"
        elif status >= 500 or status == 429:
            kind = CMLServerError
            hint = f"still failing after {self._retries + 1} tries"
        else:
            hint = "request refused"
        said = f": {cml_message}" if cml_message else ""
        return kind(
            f"CML answered {method} {path} with {status} ({hint}){said}",
            status_code=status,
            cml_message=cml_message,
            code=code,
            method=method,
            path=path,
        )


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _error_body(response: httpx.Response) -> tuple[str, int | None]:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip(), None
    if not isinstance(data, dict):
        return str(data)[:200], None
    message = data.get("message") or data.get("error") or ""
    code = data.get("code")
    return str(message), code if isinstance(code, int) else None
