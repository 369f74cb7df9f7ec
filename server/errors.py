"""The one place that maps exceptions to gRPC status codes.

INVALID_ARGUMENT always means "your input"; INTERNAL is reserved for our bugs.
"""

from __future__ import annotations

import grpc

from crnn.errors import InvalidAllowlistError, InvalidConstraintError, InvalidImageError, UnknownModelError
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
    if isinstance(exc, QueueFullError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"server overloaded: {exc}; retry with backoff"
    if isinstance(exc, DeadlineExceededError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
    if isinstance(exc, DrainingError):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({exc.__class__.__name__})"
