"""The one place that maps exceptions to gRPC status codes, and gRPC status codes to HTTP statuses.

INVALID_ARGUMENT always means "your input"; INTERNAL is reserved for our bugs.
"""

from __future__ import annotations

import grpc

from crnn.errors import (
    InvalidAllowlistError,
    InvalidConstraintError,
    InvalidImageError,
    UnknownModelError,
    WeightsError,
)
from server.batcher import DeadlineExceededError, DrainingError, QueueFullError


class RequestError(Exception):
    """A request the server refuses, with the status code to send."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message for an exception raised while serving a request."""
    if isinstance(exc, RequestError):
        return exc.code, str(exc)
    if isinstance(exc, (InvalidImageError, InvalidAllowlistError, InvalidConstraintError)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, UnknownModelError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, WeightsError):  # the server's own model file is missing or corrupt: say which
        return grpc.StatusCode.INTERNAL, f"server cannot load a model: {exc}"
    if isinstance(exc, QueueFullError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"server overloaded: {exc}; retry with backoff"
    if isinstance(exc, DeadlineExceededError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
    if isinstance(exc, DrainingError):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({exc.__class__.__name__})"


#: The HTTP status each gRPC status code is sent with (google.rpc's mapping). HTTP-only refusals, such as a
#: body over the size limit (413) or a wrong Content-Type (415), are sent by the HTTP layer before any gRPC code.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
