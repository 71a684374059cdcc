"""The seed APIs' error envelopes, read into one shape: `parse_error`, `ErrorInfo`, and the
`APIError` family (one class per status family) that carries it with the attempt history."""

from __future__ import annotations

from ._errors import (
    MAX_ERROR_BODY,
    MAX_ERROR_MESSAGE,
    APIError,
    BadRequest,
    Conflict,
    ErrorInfo,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unprocessable,
    parse_error,
)

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_ERROR_MESSAGE",
    "APIError",
    "BadRequest",
    "Conflict",
    "ErrorInfo",
    "Forbidden",
    "Gone",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "parse_error",
]
