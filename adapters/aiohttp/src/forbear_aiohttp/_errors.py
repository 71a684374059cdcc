"""How aiohttp's client exceptions map to the core's `ErrorKind`.

A table, not logic: the kind only says whether the request may have reached the server; the
core decides what that means. An exception that maps to no kind is never retried: the
middleware re-raises it as it is. That covers a certificate or fingerprint that failed
verification (it will fail again), a bare `asyncio.TimeoutError` (aiohttp's
``ClientTimeout.total`` ran out: the caller's deadline, not the server's failure), invalid
URLs, and anything that is not a transport failure.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from forbear import ErrorKind

__all__ = ["ERROR_KINDS", "error_kind"]

#: aiohttp exception types and the kind each is judged as, most specific first; ``None``
#: means "never retried".
ERROR_KINDS: tuple[tuple[type[BaseException], ErrorKind | None], ...] = (
    # Verification failures repeat identically: retrying only delays the error.
    (aiohttp.ClientConnectorCertificateError, None),
    (aiohttp.ServerFingerprintMismatch, None),
    # The connection was never made (or no pooled one freed up): the server saw nothing.
    (aiohttp.ConnectionTimeoutError, ErrorKind.CONNECT_TIMEOUT),
    (aiohttp.ClientConnectorError, ErrorKind.CONNECT),
    # Past connecting: the server may have acted on the request.
    (aiohttp.SocketTimeoutError, ErrorKind.READ_TIMEOUT),
    (aiohttp.ServerTimeoutError, ErrorKind.READ_TIMEOUT),
    (aiohttp.ServerDisconnectedError, ErrorKind.DISCONNECT),
    (aiohttp.ClientOSError, ErrorKind.DISCONNECT),
    (aiohttp.ClientPayloadError, ErrorKind.PROTOCOL),
    (aiohttp.ClientConnectionError, ErrorKind.DISCONNECT),
)


def error_kind(exc: BaseException, *, sent: bool = True) -> ErrorKind | None:
    """The `ErrorKind` of an exception raised while sending, or None when it is not retried.

    ``sent`` says whether the request reached the point of being written; a timeout before
    that (a plain ``ServerTimeoutError`` while connecting) is a connect timeout.
    """
    if isinstance(exc, aiohttp.ClientError):
        for exc_type, kind in ERROR_KINDS:
            if isinstance(exc, exc_type):
                if kind is ErrorKind.READ_TIMEOUT and not sent:
                    return ErrorKind.CONNECT_TIMEOUT
                return kind
        # The response head could not be parsed: aiohttp words it as a ClientResponseError.
        if type(exc) is aiohttp.ClientResponseError and isinstance(
            exc.__cause__, HttpProcessingError
        ):
            return ErrorKind.PROTOCOL
        return None
    if isinstance(exc, OSError) and not isinstance(exc, asyncio.TimeoutError):
        # A socket error below aiohttp's wrapping (it turns these into ClientOSError later);
        # part of the request may already be on the wire.
        return ErrorKind.DISCONNECT
    return None
