"""Reading httpx, requests and aiohttp objects without importing those libraries.

The one place forbear knows these clients' objects: `error_kind`, the error table every
transport adapter's ``failure`` asks, and the readers the plugins of retry libraries
(forbear-backoff, forbear-tenacity) judge a decorated function's response or exception with.
A response or exception is recognised only through its library's module already in
`sys.modules`: a library that was never imported cannot have made the object, so nothing here
imports one (the core depends on none of them). A reader gives an `Attempt`: the `Outcome` to
judge, what the object says of its request (method, URL, headers), and the response to
release if the request is retried. `release` and `arelease` release a discarded one by the
one release policy (`drain_length`).

The error tables are data, not logic: a kind only says whether the request may have reached
the server, and the core decides what that means. An exception that maps to no kind (a TLS or
proxy failure, an invalid URL, a bare ``TimeoutError``, anything forbear does not know) is
never retried.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, NamedTuple

import anyio

from ._contract import RELEASE_SECONDS, drain_length
from ._state import ErrorKind, Outcome

__all__ = [
    "AIOHTTP_ERROR_KINDS",
    "HTTPX_ERROR_KINDS",
    "REQUESTS_CAUSE_KINDS",
    "REQUESTS_ERROR_KINDS",
    "SOCKET_ERROR_KINDS",
    "Attempt",
    "arelease",
    "error_kind",
    "read_attempt",
    "read_exception",
    "read_response",
    "release",
]

_CONNECT = ErrorKind.CONNECT
_CONNECT_TIMEOUT = ErrorKind.CONNECT_TIMEOUT
_READ_TIMEOUT = ErrorKind.READ_TIMEOUT
_WRITE_TIMEOUT = ErrorKind.WRITE_TIMEOUT
_DISCONNECT = ErrorKind.DISCONNECT
_PROTOCOL = ErrorKind.PROTOCOL

#: A table: exception types or names (plain: in the library's module; dotted: in that module,
#: if imported) and their kind, first match wins; None: never retried.
Table = tuple[tuple[tuple[str | type[BaseException], ...], ErrorKind | None], ...]

#: httpx exception names and their kind. Any other ``httpx.HTTPError`` (``PoolTimeout``,
#: ``UnsupportedProtocol``, ``LocalProtocolError``, a proxy error) is never retried.
HTTPX_ERROR_KINDS: Table = (
    # The connection was never made: the server saw nothing.
    (("ConnectTimeout",), _CONNECT_TIMEOUT),
    (("ConnectError",), _CONNECT),
    # Past connecting: the server may have acted on the request.
    (("ReadTimeout",), _READ_TIMEOUT),
    (("WriteTimeout",), _WRITE_TIMEOUT),
    (("ReadError", "WriteError"), _DISCONNECT),
    (("RemoteProtocolError",), _PROTOCOL),  # but see _HTTPX_DISCONNECTED
)

#: requests exception names and their kind. A ``ConnectionError`` is judged by what lies
#: under it (`REQUESTS_CAUSE_KINDS`); any other (``InvalidURL``, ``ContentDecodingError``) is
#: never retried.
REQUESTS_ERROR_KINDS: Table = (
    (("ConnectTimeout",), _CONNECT_TIMEOUT),
    (("ReadTimeout",), _READ_TIMEOUT),
    # A body cut short after the headers (raised when the caller reads it, not by a send).
    (("ChunkedEncodingError",), _DISCONNECT),
    (("SSLError",), None),  # verification fails the same way again
)

#: Causes found under a requests ``ConnectionError`` (urllib3's exceptions and the standard
#: library's) and their kind; a cause matching none (a closed pool, a proxy failure)
#: is never retried.
REQUESTS_CAUSE_KINDS: Table = (
    # The connection was never made (refused, unreachable, DNS): the server saw nothing.
    (("urllib3.exceptions.NewConnectionError", ConnectionRefusedError), _CONNECT),
    (("urllib3.exceptions.ConnectTimeoutError",), _CONNECT_TIMEOUT),
    # Past connecting: the server may have acted on the request.
    (("urllib3.exceptions.ReadTimeoutError",), _READ_TIMEOUT),
    (
        # ConnectionResetError covers http.client's RemoteDisconnected.
        (
            ConnectionResetError,
            ConnectionAbortedError,
            BrokenPipeError,
            "http.client.IncompleteRead",
        ),
        _DISCONNECT,
    ),
    (("urllib3.exceptions.ProtocolError", "http.client.HTTPException"), _PROTOCOL),
)

#: aiohttp exception names and their kind. A ``ClientResponseError`` is protocol when aiohttp
#: could not parse the response head (its cause an ``HttpProcessingError``), else none; a bare
#: ``asyncio.TimeoutError`` (``ClientTimeout.total`` ran out) is the caller's own deadline,
#: not the server's failure: it is not retried.
AIOHTTP_ERROR_KINDS: Table = (
    # Verification failures repeat identically: retrying only delays the error.
    (("ClientConnectorCertificateError", "ServerFingerprintMismatch"), None),
    # The connection was never made (or no pooled one freed up): the server saw nothing.
    (("ConnectionTimeoutError",), _CONNECT_TIMEOUT),
    (("ClientConnectorError",), _CONNECT),
    # Past connecting: the server may have acted on the request.
    (("SocketTimeoutError", "ServerTimeoutError"), _READ_TIMEOUT),
    (("ServerDisconnectedError", "ClientOSError"), _DISCONNECT),
    (("ClientPayloadError",), _PROTOCOL),
    (("ClientConnectionError",), _DISCONNECT),
)

#: Socket errors a client let through unwrapped (aiohttp's middleware sees some before
#: aiohttp wraps them) and their kind. Any other ``OSError``, a bare ``TimeoutError`` above
#: all, is never retried.
SOCKET_ERROR_KINDS: Table = (
    ((ConnectionRefusedError,), _CONNECT),
    ((ConnectionError,), _DISCONNECT),  # reset, aborted, broken pipe
)

#: How httpcore words a connection closed before any byte of the response arrived.
_HTTPX_DISCONNECTED = "Server disconnected without sending a response"
#: How many linked exceptions are looked at under a requests ``ConnectionError``.
_MAX_CAUSES = 16


def error_kind(exc: BaseException) -> ErrorKind | None:
    """The `ErrorKind` of a transport error from httpx, requests (urllib3) or aiohttp.

    None: not a failure forbear retries (raise it as it is). A transport adapter's
    ``failure`` is this; a socket error the client did not wrap is read as one too.
    """
    modules = sys.modules
    httpx = modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        return _httpx_kind(httpx, exc)
    requests = modules.get("requests")
    if requests is not None and isinstance(exc, requests.RequestException):
        return _requests_kind(requests.exceptions, exc)
    aiohttp = modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        return _aiohttp_kind(aiohttp, exc)
    if isinstance(exc, ConnectionError):
        return _match(None, SOCKET_ERROR_KINDS, exc)[1]
    return None


class Attempt(NamedTuple):
    """What one call of the decorated function produced, as forbear judges it."""

    #: The response's status and headers, or the transport error's kind.
    outcome: Outcome
    #: The request's method when the object names it (None: unknown, unless declared).
    method: str | None = None
    #: The request's URL ("" when the object does not say).
    url: str = ""
    #: The request's headers (to see an ``Idempotency-Key``), or None.
    request_headers: Mapping[str, str] | Any = None
    #: A response to release before the function is called again, or None.
    response: Any = None


def read_attempt(value: object) -> Attempt | None:
    """The `Attempt` of a response or exception from httpx, requests or aiohttp, else None."""
    if isinstance(value, BaseException):
        return read_exception(value)
    return read_response(value)


def read_response(value: object) -> Attempt | None:
    """The `Attempt` of an httpx, requests or aiohttp response; None for anything else."""
    modules = sys.modules
    httpx = modules.get("httpx")
    if httpx is not None and isinstance(value, httpx.Response):
        return _httpx_response(value)
    requests = modules.get("requests")
    if requests is not None and isinstance(value, requests.Response):
        return _requests_response(value)
    aiohttp = modules.get("aiohttp")
    if aiohttp is not None and isinstance(value, aiohttp.ClientResponse):
        info = value.request_info
        return Attempt(
            Outcome.response(value.status, value.headers),
            value.method,
            str(value.url),
            info.headers,
            value,
        )
    return None


def read_exception(exc: BaseException) -> Attempt | None:
    """The `Attempt` of an httpx, requests or aiohttp exception; None when forbear can't read it.

    An HTTP status error (``raise_for_status()``) is read as its response; a transport error
    as its kind (`error_kind`).
    """
    modules = sys.modules
    httpx = modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        if isinstance(exc, httpx.HTTPStatusError):
            return _httpx_response(exc.response)
        return _with_request(_httpx_kind(httpx, exc), _httpx_request(exc), str)
    requests = modules.get("requests")
    if requests is not None and isinstance(exc, requests.RequestException):
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return _requests_response(exc.response)
        return _with_request(_requests_kind(requests.exceptions, exc), exc.request, _url_or_empty)
    aiohttp = modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        if isinstance(exc, aiohttp.ClientResponseError) and not _unparsed(aiohttp, exc):
            info = exc.request_info
            outcome = Outcome.response(exc.status, exc.headers)
            return Attempt(outcome, info.method, str(info.url), info.headers)
        # aiohttp's connection errors name neither the method nor the URL.
        return _with_request(_aiohttp_kind(aiohttp, exc), None, str)
    return None


def _with_request(kind: ErrorKind | None, request: Any, url: Any) -> Attempt | None:
    """The `Attempt` of a transport error of ``kind``, with what its ``request`` says."""
    if kind is None:
        return None
    if request is None:
        return Attempt(Outcome.error(kind))
    return Attempt(Outcome.error(kind), request.method, url(request.url), request.headers)


def _url_or_empty(url: str | None) -> str:
    return url or ""


# -- httpx ---------------------------------------------------------------------------------


def _httpx_kind(httpx: ModuleType, exc: BaseException) -> ErrorKind | None:
    kind = _match(httpx, HTTPX_ERROR_KINDS, exc)[1]
    if kind is _PROTOCOL and str(exc).startswith(_HTTPX_DISCONNECTED):
        return _DISCONNECT  # httpcore's wording for a connection closed before any byte
    return kind


def _httpx_request(holder: Any) -> Any:
    try:
        return holder.request  # a property that raises when no request is attached
    except RuntimeError:
        return None


def _httpx_response(response: Any) -> Attempt:
    request = _httpx_request(response)
    if request is None:
        return Attempt(Outcome.response(response.status_code, response.headers), response=response)
    return Attempt(
        Outcome.response(response.status_code, response.headers),
        request.method,
        str(request.url),
        request.headers,
        response,
    )


# -- requests ------------------------------------------------------------------------------


def _requests_kind(exceptions: ModuleType, exc: BaseException) -> ErrorKind | None:
    matched, kind = _match(exceptions, REQUESTS_ERROR_KINDS, exc)
    if matched or not isinstance(exc, exceptions.ConnectionError):
        return kind
    # What lies under a ConnectionError: urllib3's error, or the standard library's.
    causes = _causes(exc)
    for names, kind in REQUESTS_CAUSE_KINDS:
        types = _types(None, names)
        if any(isinstance(cause, types) for cause in causes):
            return kind
    return None


def _requests_response(response: Any) -> Attempt:
    outcome = Outcome.response(response.status_code, response.headers)
    request = response.request
    if request is None:
        return Attempt(outcome, None, response.url or "", None, response)
    return Attempt(outcome, request.method, request.url or "", request.headers, response)


def _causes(exc: BaseException) -> list[BaseException]:
    """What lies under ``exc``: ``__cause__``, ``__context__``, ``.reason`` and exception args."""
    seen = {id(exc)}
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < _MAX_CAUSES:
        current = pending.pop()
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        for cause in linked:
            if isinstance(cause, BaseException) and id(cause) not in seen:
                seen.add(id(cause))
                found.append(cause)
                pending.append(cause)
    return found


# -- aiohttp -------------------------------------------------------------------------------


def _aiohttp_kind(aiohttp: ModuleType, exc: BaseException) -> ErrorKind | None:
    if isinstance(exc, aiohttp.ClientResponseError):
        return _PROTOCOL if _unparsed(aiohttp, exc) else None
    return _match(aiohttp, AIOHTTP_ERROR_KINDS, exc)[1]


def _unparsed(aiohttp: ModuleType, exc: BaseException) -> bool:
    """Whether a ``ClientResponseError`` says the response head could not be parsed."""
    return type(exc) is aiohttp.ClientResponseError and isinstance(
        exc.__cause__, aiohttp.http_exceptions.HttpProcessingError
    )


# -- shared --------------------------------------------------------------------------------


def _match(
    module: ModuleType | None, table: Table, exc: BaseException
) -> tuple[bool, ErrorKind | None]:
    """Whether ``exc`` is one of the table's types, and its kind."""
    for names, kind in table:
        if isinstance(exc, _types(module, names)):
            return True, kind
    return False, None


def _types(
    module: ModuleType | None, names: tuple[str | type[BaseException], ...]
) -> tuple[type[BaseException], ...]:
    """The exception types ``names`` stand for: classes as they are, a plain name found in
    ``module``, a dotted one (``http.client.IncompleteRead``) in its module if imported."""
    resolved: list[type[BaseException]] = []
    for name in names:
        if isinstance(name, str):
            where, dot, attr = name.rpartition(".")
            found = getattr(sys.modules.get(where) if dot else module, attr, None)
        else:
            found = name
        if isinstance(found, type) and issubclass(found, BaseException):
            resolved.append(found)
    return tuple(resolved)


def release(response: Any) -> bool:
    """Release a discarded response by the one release policy; never raises.

    A small body of known length (`drain_length`) is read so its connection is reused; any
    other is closed unread. False when only `arelease` can do it (an open httpx response of
    an ``AsyncClient``, an aiohttp response worth reading).
    """
    if response is None:
        return True
    httpx = sys.modules.get("httpx")
    try:
        if httpx is not None and isinstance(response, httpx.Response):
            if response.is_closed:
                return True
            if not isinstance(response.stream, httpx.SyncByteStream):
                return False
            try:
                if drain_length(response.headers) is not None and not response.is_stream_consumed:
                    for _ in response.iter_raw():
                        pass
            finally:
                response.close()
            return True
        aiohttp = sys.modules.get("aiohttp")
        if aiohttp is not None and isinstance(response, aiohttp.ClientResponse):
            if drain_length(response.headers) is not None and not response.closed:
                return False
            response.release()  # closes the connection when the body is not read to its end
            return True
        requests = sys.modules.get("requests")
        if requests is not None and isinstance(response, requests.Response):
            try:
                if drain_length(response.headers) is not None and not response._content_consumed:
                    response.raw.read(decode_content=False)  # its connection goes back to the pool
            finally:
                response.close()
    except Exception:
        pass  # the connection is dropped instead of reused
    return True


async def arelease(response: Any) -> None:
    """The async twin of `release`: reads for at most `RELEASE_SECONDS`; never raises."""
    if release(response):
        return
    try:
        with anyio.move_on_after(RELEASE_SECONDS):
            if hasattr(response, "aiter_raw"):  # httpx
                async for _ in response.aiter_raw():
                    pass
            else:  # aiohttp
                await response.read()
    except Exception:
        pass
    finally:
        with anyio.CancelScope(shield=True):
            if hasattr(response, "aclose"):
                await response.aclose()
            else:
                response.release()
