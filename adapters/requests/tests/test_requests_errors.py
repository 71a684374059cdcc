"""`forbear.error_kind` on requests' exceptions and the urllib3 errors under them, row by row.

requests wraps urllib3's errors (``ConnectionError(MaxRetryError(reason=NewConnectionError))``,
``ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected))``, ...): the kind
is read from the exception, then from what lies under a ``ConnectionError``.
"""

from __future__ import annotations

import http.client
from typing import Any

import pytest
import requests
from urllib3 import exceptions as urllib3_errors

from forbear import ErrorKind, error_kind


def wrapped(cause: BaseException) -> requests.ConnectionError:
    """A ConnectionError as requests raises it: urllib3's error as its argument and cause."""
    error = requests.ConnectionError(cause)
    error.__cause__ = cause
    return error


def max_retry(reason: BaseException) -> urllib3_errors.MaxRetryError:
    return urllib3_errors.MaxRetryError(None, "/x", reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ConnectTimeout("slow handshake"), ErrorKind.CONNECT_TIMEOUT),
        (requests.ReadTimeout("no answer"), ErrorKind.READ_TIMEOUT),
        (requests.exceptions.ChunkedEncodingError("cut short"), ErrorKind.DISCONNECT),
        (
            wrapped(max_retry(urllib3_errors.NewConnectionError(None, "refused"))),  # type: ignore[arg-type]
            ErrorKind.CONNECT,
        ),
        (wrapped(ConnectionRefusedError(111, "refused")), ErrorKind.CONNECT),
        (
            wrapped(max_retry(urllib3_errors.ConnectTimeoutError("slow"))),
            ErrorKind.CONNECT_TIMEOUT,
        ),
        (
            wrapped(urllib3_errors.ReadTimeoutError(None, "/x", "slow")),  # type: ignore[arg-type]
            ErrorKind.READ_TIMEOUT,
        ),
        (
            wrapped(
                urllib3_errors.ProtocolError(
                    "Connection aborted.", http.client.RemoteDisconnected("closed")
                )
            ),
            ErrorKind.DISCONNECT,
        ),
        (wrapped(ConnectionResetError(104, "reset")), ErrorKind.DISCONNECT),
        (wrapped(http.client.IncompleteRead(b"", 10)), ErrorKind.DISCONNECT),
        (wrapped(urllib3_errors.ProtocolError("bad status line")), ErrorKind.PROTOCOL),
        (wrapped(http.client.BadStatusLine("nonsense")), ErrorKind.PROTOCOL),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_transport_failures_map_to_their_kind(exc: BaseException, kind: Any) -> None:
    """Each failure maps to the kind saying whether the server may have seen the request."""
    assert error_kind(exc) is kind


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.SSLError(wrapped(ConnectionResetError(104, "reset"))),
        wrapped(urllib3_errors.ClosedPoolError(None, "closed")),  # type: ignore[arg-type]
        wrapped(max_retry(urllib3_errors.ProxyError("proxy said no", OSError("no")))),
        requests.exceptions.InvalidURL("nope"),
        requests.exceptions.ContentDecodingError("bad gzip"),
        requests.HTTPError("503 Server Error"),
        ValueError("not a transport failure"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_other_exceptions_are_never_retried(exc: BaseException) -> None:
    """TLS and proxy failures, a closed pool, bad URLs and the like map to no kind."""
    assert error_kind(exc) is None
