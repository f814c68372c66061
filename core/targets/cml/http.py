"""One HTTP exchange with CML: auth, retries with backoff, and errors translated at the edge.

Only what is safe to send twice is retried. Reads (GET) and stops are retried after
connection failures, timeouts, 429 and 5xx. A call that creates something is retried only
when it certainly did nothing (the connection was never made); after any other failure
(a timeout or dropped connection once sent, a 5xx, a 429) CML may have done the work, so
it raises `CMLOutcomeUnknown` and the caller looks up what it asked for before asking again.
Never retried: any other 4xx, and failures before anything was sent (bad URL scheme, bad
header), which another try cannot fix. The API key lives only in the auth flow and is
scrubbed from any text that leaves this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from core import metrics
from core.errors import ConfigError
from core.targets.cml.errors import (
    CMLAPIError,
    CMLAuthError,
    CMLNotFound,
    CMLOutcomeUnknown,
    CMLServerError,
    CMLUnreachable,
)

logger = logging.getLogger("core.targets.cml")

REDACTED = "<redacted>"


# Failures on the way that another try may not meet; a bad URL or header would.
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Of those, the ones where the request certainly never reached CML.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Actions that change nothing when done twice: stopping a stopping or stopped deployment.
_IDEMPOTENT_ACTIONS = (":stop",)


def safe_to_repeat(method: str, path: str) -> bool:
    """Whether sending `method path` twice does no more than sending it once."""
    return method.upper() in _SAFE_METHODS or path.endswith(_IDEMPOTENT_ACTIONS)


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


class _Unknown(_Transient):
    """A failure after a call that changes something was sent: it may have been done, so
    it is never retried here."""


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
        safe = safe_to_repeat(method, path)

        def send() -> httpx.Response:
            began, status = time.monotonic(), None  # None: no answer came
            try:
                response = self._client.request(method, path, params=query, json=body)
                status = response.status_code
            except _NOT_SENT as exc:
                raise _Transient(error=exc) from exc
            except _RETRYABLE as exc:
                raise (_Transient if safe else _Unknown)(error=exc) from exc
            except httpx.TransportError as exc:
                raise self._unreachable(method, path, exc, tries=1) from None
            finally:
                metrics.cml_call(method, path, status, time.monotonic() - began)
            if response.status_code >= 500 or response.status_code == 429:
                raise (_Transient if safe else _Unknown)(response=response)
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=self._max_backoff),
            retry=retry_if_exception_type(_Transient) & retry_if_not_exception_type(_Unknown),
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )
        try:
            response = retrying(send)
        except _Unknown as exc:
            raise self._outcome_unknown(method, path, exc) from None
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

    def _outcome_unknown(self, method: str, path: str, failure: _Unknown) -> CMLOutcomeUnknown:
        status, said = None, ""
        if failure.response is not None:
            status = failure.response.status_code
            said = self._redact(_error_body(failure.response)[0])
            why = f"it answered {status}" + (f": {said}" if said else "")
        else:
            error = failure.error
            why = self._redact(str(error) or type(error).__name__)
            why = f"{type(error).__name__}: {why}" if error is not None else why
        logger.warning("CML %s %s may or may not have been done (%s)", method, path, why)
        return CMLOutcomeUnknown(
            f"CML did not say whether {method} {path} was done ({why})",
            status_code=status,
            cml_message=said,
            method=method,
            path=path,
        )

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
