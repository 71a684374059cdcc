"""Reading httpx, requests and aiohttp objects without importing those libraries.

For the plugins of retry libraries (forbear-backoff, forbear-tenacity), whose decorated
functions hand back a response or raise an exception of any of the three clients. A response
or exception is recognised only through its library's module already in `sys.modules`: a
library that was never imported cannot have made the object, so nothing here imports one (the
core depends on none of them). A reader gives an `Attempt`: the `Outcome` to judge, what the
object says of its request (method, URL, headers), and the response to release if the request
is retried. `release` and `arelease` release a discarded one by the one release policy
(`drain_length`).

The error tables are data, not logic: a kind only says whether the request may have reached
the server, and the core decides what that means. An exception that maps to no kind (a TLS or
proxy failure, an invalid URL, anything forbear does not know) is never retried.
"""

from __future__ import annotations

import http.client
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, NamedTuple

import anyio

from ._flow import RELEASE_SECONDS, drain_length
from ._state import ErrorKind, Outcome

__all__ = [
    "AIOHTTP_ERROR_KINDS",
    "HTTPX_ERROR_KINDS",
    "REQUESTS_CAUSE_KINDS",
    "REQUESTS_ERROR_KINDS",
    "Attempt",
    "arelease",
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

#: httpx exception names and their kind, most specific first (None: never retried).
HTTPX_ERROR_KINDS: tuple[tuple[str, ErrorKind | None], ...] = (
    ("ConnectTimeout", _CONNECT_TIMEOUT),
    ("ConnectError", _CONNECT),
    ("ReadTimeout", _READ_TIMEOUT),
    ("WriteTimeout", _WRITE_TIMEOUT),
    ("ReadError", _DISCONNECT),
    ("WriteError", _DISCONNECT),
    ("RemoteProtocolError", _PROTOCOL),
)

#: requests exception names and their kind, most specific first (None: never retried).
#: A ``ConnectionError`` is judged by what lies under it (`REQUESTS_CAUSE_KINDS`).
REQUESTS_ERROR_KINDS: tuple[tuple[str, ErrorKind | None], ...] = (
    ("ConnectTimeout", _CONNECT_TIMEOUT),
    ("ReadTimeout", _READ_TIMEOUT),
    ("ChunkedEncodingError", _DISCONNECT),  # the body was cut short after the headers
    ("SSLError", None),
)

#: Causes found under a requests ``ConnectionError`` (urllib3's, by name, or the standard
#: library's) and their kind, first match wins; a cause matching none (a closed pool, a proxy
#: failure) is never retried.
REQUESTS_CAUSE_KINDS: tuple[tuple[tuple[str | type[BaseException], ...], ErrorKind], ...] = (
    (("NewConnectionError", ConnectionRefusedError), _CONNECT),
    (("ConnectTimeoutError",), _CONNECT_TIMEOUT),
    (("ReadTimeoutError",), _READ_TIMEOUT),
    (
        (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.IncompleteRead),
        _DISCONNECT,
    ),
    (("ProtocolError", http.client.HTTPException), _PROTOCOL),
)

#: aiohttp exception names and their kind, most specific first (None: never retried). A bare
#: ``asyncio.TimeoutError`` (``ClientTimeout.total`` ran out) is the caller's own deadline,
#: not the server's failure: it is not retried.
AIOHTTP_ERROR_KINDS: tuple[tuple[str, ErrorKind | None], ...] = (
    ("ClientConnectorCertificateError", None),  # verification fails the same way again
    ("ServerFingerprintMismatch", None),
    ("ConnectionTimeoutError", _CONNECT_TIMEOUT),
    ("ClientConnectorError", _CONNECT),
    ("SocketTimeoutError", _READ_TIMEOUT),
    ("ServerTimeoutError", _READ_TIMEOUT),
    ("ServerDisconnectedError", _DISCONNECT),
    ("ClientOSError", _DISCONNECT),
    ("ClientPayloadError", _PROTOCOL),
    ("ClientConnectionError", _DISCONNECT),
)

#: How httpcore words a connection closed before any byte of the response arrived.
_HTTPX_DISCONNECTED = "Server disconnected without sending a response"
#: How many linked exceptions are looked at under a requests ``ConnectionError``.
_MAX_CAUSES = 16


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
    as its kind.
    """
    modules = sys.modules
    httpx = modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        return _httpx_exception(httpx, exc)
    requests = modules.get("requests")
    if requests is not None and isinstance(exc, requests.RequestException):
        return _requests_exception(requests, exc)
    aiohttp = modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        return _aiohttp_exception(aiohttp, exc)
    return None


# -- httpx ---------------------------------------------------------------------------------


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


def _httpx_exception(httpx: ModuleType, exc: Any) -> Attempt | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return _httpx_response(exc.response)
    kind = _match(httpx, HTTPX_ERROR_KINDS, exc)[1]
    if kind is None:
        return None
    if kind is _PROTOCOL and str(exc).startswith(_HTTPX_DISCONNECTED):
        kind = _DISCONNECT
    request = _httpx_request(exc)
    if request is None:
        return Attempt(Outcome.error(kind))
    return Attempt(Outcome.error(kind), request.method, str(request.url), request.headers)


# -- requests ------------------------------------------------------------------------------


def _requests_response(response: Any) -> Attempt:
    outcome = Outcome.response(response.status_code, response.headers)
    request = response.request
    if request is None:
        return Attempt(outcome, None, response.url or "", None, response)
    return Attempt(outcome, request.method, request.url or "", request.headers, response)


def _requests_exception(requests: ModuleType, exc: Any) -> Attempt | None:
    exceptions = requests.exceptions
    if isinstance(exc, exceptions.HTTPError) and exc.response is not None:
        return _requests_response(exc.response)
    matched, kind = _match(exceptions, REQUESTS_ERROR_KINDS, exc)
    if not matched and isinstance(exc, exceptions.ConnectionError):
        kind = _requests_cause_kind(exc)
    if kind is None:
        return None
    request = exc.request
    if request is None:
        return Attempt(Outcome.error(kind))
    return Attempt(Outcome.error(kind), request.method, request.url or "", request.headers)


def _requests_cause_kind(exc: BaseException) -> ErrorKind | None:
    """The kind of a requests ``ConnectionError``, from the urllib3 error wrapped under it."""
    urllib3_errors = getattr(sys.modules.get("urllib3"), "exceptions", None)
    causes = _causes(exc)
    for names, kind in REQUESTS_CAUSE_KINDS:
        types = _types(urllib3_errors, names)
        if any(isinstance(cause, types) for cause in causes):
            return kind
    return None


def _types(
    module: Any, names: tuple[str | type[BaseException], ...]
) -> tuple[type[BaseException], ...]:
    """The exception types ``names`` stand for: classes as they are, names found in ``module``."""
    resolved: list[type[BaseException]] = []
    for name in names:
        found = getattr(module, name, None) if isinstance(name, str) else name
        if isinstance(found, type) and issubclass(found, BaseException):
            resolved.append(found)
    return tuple(resolved)


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


def _aiohttp_exception(aiohttp: ModuleType, exc: Any) -> Attempt | None:
    if isinstance(exc, aiohttp.ClientResponseError):
        if type(exc) is aiohttp.ClientResponseError and isinstance(
            exc.__cause__, aiohttp.http_exceptions.HttpProcessingError
        ):
            return Attempt(Outcome.error(_PROTOCOL))  # the response head could not be parsed
        info = exc.request_info
        outcome = Outcome.response(exc.status, exc.headers)
        return Attempt(outcome, info.method, str(info.url), info.headers)
    kind = _match(aiohttp, AIOHTTP_ERROR_KINDS, exc)[1]
    # aiohttp's connection errors name neither the method nor the URL.
    return None if kind is None else Attempt(Outcome.error(kind))


# -- shared --------------------------------------------------------------------------------


def _match(
    module: ModuleType, table: tuple[tuple[str, ErrorKind | None], ...], exc: BaseException
) -> tuple[bool, ErrorKind | None]:
    """Whether ``exc`` is one of the table's types (by name in ``module``), and its kind."""
    for name, kind in table:
        exc_type = getattr(module, name, None)
        if exc_type is not None and isinstance(exc, exc_type):
            return True, kind
    return False, None


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
