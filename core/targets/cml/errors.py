"""Errors of the CML target, placed under the bot's tree (``core.errors``).

    TargetError
    ├── CMLAPIError          CML answered with an error status (status_code, code, cml_message)
    │   ├── CMLAuthError     401/403: the API key is wrong, expired or lacks the rights
    │   ├── CMLNotFound      404: no such project, model, build or deployment
    │   └── CMLServerError   5xx or 429 still failing after the retries (also TargetUnavailable)
    ├── CMLNameClash         a CML model's name could be another endpoint's: left alone
    └── TargetUnavailable
        ├── CMLUnreachable   no HTTP answer at all: refused, reset, timed out, bad name
        ├── CMLOutcomeUnknown  a create was sent but its answer lost or a 5xx/429: it may
        │                    have been done; look it up before creating again
        └── CMLNotStopped    CML refused to stop deployments, or did not confirm they stopped

No text here ever holds the API key: the client redacts it before building any message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import TargetError, TargetUnavailable


class CMLAPIError(TargetError):
    """CML answered ``status_code``; ``cml_message`` is what it said, ``code`` its gRPC code."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        cml_message: str = "",
        code: int | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.cml_message = cml_message
        self.code = code
        self.method = method
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class CMLAuthError(CMLAPIError):
    pass


class CMLNotFound(CMLAPIError):
    pass


class CMLServerError(CMLAPIError, TargetUnavailable):
    pass


class CMLNameClash(TargetError):
    """A model the bot would use or create could be another environment's endpoint's; the
    message says what to rename."""


class CMLUnreachable(TargetUnavailable):
    pass


class CMLOutcomeUnknown(TargetUnavailable):
    """A call that changes something reached CML, and what came back (a timeout, a dropped
    connection, a 5xx or 429: ``status_code``) does not say whether it was done."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        cml_message: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.cml_message = cml_message
        self.method = method
        self.path = path


class CMLNotStopped(TargetUnavailable):
    """``still`` names each deployment that may still serve (id, version, last status)."""

    def __init__(self, message: str, *, still: tuple[str, ...]) -> None:
        super().__init__(message)
        self.still = still


@contextmanager
def auth_explained(base_url: str, key_env: str) -> Iterator[None]:
    """Turns a refused API key into what to do about it: which variable should hold a key
    for which workspace (never the key itself)."""
    try:
        yield
    except CMLAuthError as exc:
        raise CMLAuthError(
            f"CML at {base_url} refused the API key in ${key_env} "
            f"(HTTP {exc.status_code} on {exc.method} {exc.path}): put a valid API v2 key "
            "for this workspace in that variable",
            status_code=exc.status_code,
            cml_message=exc.cml_message,
            code=exc.code,
            method=exc.method,
            path=exc.path,
        ) from None
