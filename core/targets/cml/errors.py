"""Errors of the CML target, placed under the bot's tree (``core.errors``).

    TargetError
    ├── CMLAPIError          CML answered with an error status (status_code, code, cml_message)
    │   ├── CMLAuthError     401/403: the API key is wrong, expired or lacks the rights
    │   ├── CMLNotFound      404: no such project, model, build or deployment
    │   └── CMLServerError   5xx or 429 still failing after the retries (also TargetUnavailable)
    └── TargetUnavailable
        └── CMLUnreachable   no HTTP answer at all: refused, reset, timed out, bad name

No text here ever holds the API key: the client redacts it before building any message.
"""

from __future__ import annotations

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


class CMLUnreachable(TargetUnavailable):
    pass
