"""Errors answered the way CML's gRPC gateway does: an HTTP status and a ``runtimeError`` body."""

from __future__ import annotations

from typing import Any

# gRPC status codes, as the gateway puts them in the body's "code".
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

_GRPC_FOR_STATUS = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: NOT_FOUND,
    409: ALREADY_EXISTS,
    429: RESOURCE_EXHAUSTED,
    500: INTERNAL,
    501: UNIMPLEMENTED,
    503: UNAVAILABLE,
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code if code is not None else _GRPC_FOR_STATUS.get(status, INTERNAL)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, "message": self.message, "details": []}

    @classmethod
    def invalid(cls, message: str) -> ApiError:
        return cls(400, message)

    @classmethod
    def precondition(cls, message: str) -> ApiError:
        return cls(400, message, FAILED_PRECONDITION)

    @classmethod
    def not_found(cls, what: str, ident: str) -> ApiError:
        return cls(404, f"{what} not found: {ident}")
