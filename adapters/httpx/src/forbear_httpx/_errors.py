"""How httpx's transport exceptions map to the core's `ErrorKind`.

A table, not logic: the kind only says whether the request may have reached the server; the
core decides what that means. An exception that maps to no kind (``PoolTimeout``,
``UnsupportedProtocol``, ``LocalProtocolError``, a proxy error, anything else) is never
retried: the adapter re-raises it as it is.
"""

from __future__ import annotations

import httpx

from forbear import ErrorKind

__all__ = ["ERROR_KINDS", "error_kind"]

#: httpx exception types and the kind each one is judged as, most specific first.
ERROR_KINDS: tuple[tuple[type[httpx.TransportError], ErrorKind], ...] = (
    # The connection was never made: the server saw nothing.
    (httpx.ConnectTimeout, ErrorKind.CONNECT_TIMEOUT),
    (httpx.ConnectError, ErrorKind.CONNECT),
    # Past connecting: the server may have acted on the request.
    (httpx.ReadTimeout, ErrorKind.READ_TIMEOUT),
    (httpx.WriteTimeout, ErrorKind.WRITE_TIMEOUT),
    (httpx.ReadError, ErrorKind.DISCONNECT),
    (httpx.WriteError, ErrorKind.DISCONNECT),
    (httpx.RemoteProtocolError, ErrorKind.PROTOCOL),
)

#: How httpcore words a connection closed before any byte of the response arrived.
_DISCONNECTED = "Server disconnected without sending a response"


def error_kind(exc: BaseException) -> ErrorKind | None:
    """The `ErrorKind` of an httpx exception, or None when it is not to be retried."""
    for exc_type, kind in ERROR_KINDS:
        if isinstance(exc, exc_type):
            if kind is ErrorKind.PROTOCOL and str(exc).startswith(_DISCONNECTED):
                return ErrorKind.DISCONNECT
            return kind
    return None
