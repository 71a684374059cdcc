"""`forbear.error_kind` on aiohttp's exceptions: what `RetryMiddleware` judges errors by."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest
from aiohttp.http_exceptions import BadHttpMessage

from forbear import ErrorKind, error_kind

REFUSED = OSError(111, "Connection refused")


def response_error(cause: BaseException | None) -> aiohttp.ClientResponseError:
    """A ClientResponseError as aiohttp raises it, optionally caused by ``cause``."""
    error = aiohttp.ClientResponseError(None, (), status=400, message="bad")  # type: ignore[arg-type]
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (aiohttp.ConnectionTimeoutError(), ErrorKind.CONNECT_TIMEOUT),
        (aiohttp.ClientConnectorError(None, REFUSED), ErrorKind.CONNECT),  # type: ignore[arg-type]
        (aiohttp.ClientConnectorDNSError(None, REFUSED), ErrorKind.CONNECT),  # type: ignore[arg-type]
        (aiohttp.ServerTimeoutError(), ErrorKind.READ_TIMEOUT),
        (aiohttp.SocketTimeoutError(), ErrorKind.READ_TIMEOUT),
        (aiohttp.ServerDisconnectedError(), ErrorKind.DISCONNECT),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ErrorKind.DISCONNECT),
        (aiohttp.ClientConnectionResetError(), ErrorKind.DISCONNECT),
        (aiohttp.ClientConnectionError("Connection closed"), ErrorKind.DISCONNECT),
        (aiohttp.ClientPayloadError("Response payload is not completed"), ErrorKind.PROTOCOL),
        (response_error(BadHttpMessage("bad status line")), ErrorKind.PROTOCOL),
        # Socket errors the middleware sees before aiohttp wraps them.
        (ConnectionResetError(104, "reset"), ErrorKind.DISCONNECT),
        (BrokenPipeError(32, "broken pipe"), ErrorKind.DISCONNECT),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_transport_failures_map_to_their_kind(exc: BaseException, kind: Any) -> None:
    """Each transport failure maps to the kind saying whether the server may have seen it."""
    assert error_kind(exc) is kind


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ClientConnectorCertificateError(None, ssl.SSLCertVerificationError()),  # type: ignore[arg-type]
        aiohttp.ServerFingerprintMismatch(b"a", b"b", "host", 443),
        asyncio.TimeoutError(),
        response_error(None),
        aiohttp.InvalidURL("nope"),
        aiohttp.TooManyRedirects(None, ()),  # type: ignore[arg-type]
        ValueError("not a transport failure"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_other_exceptions_are_never_retried(exc: BaseException) -> None:
    """Failed verification, ClientTimeout.total, bad URLs and the like map to no kind."""
    assert error_kind(exc) is None
