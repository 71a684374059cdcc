"""`RetryTransport`: one httpx transport, sync and async, on forbear's one retry loop.

The loop is the core's (`forbear.Retrier.run_sync` / `run_async`); this module only says how
httpx sends a request with extra headers, how its responses and errors read as outcomes,
whether a body can be sent again, and how a discarded response is released.
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine, Mapping
from types import EllipsisType, TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from forbear import (
    Budget,
    EventHook,
    Gate,
    Policy,
    Retrier,
    TokenSource,
    drain_length,
    error_kind,
)
from forbear.flow import Reading
from forbear.rules import RELEASE_SECONDS

__all__ = ["RetryTransport"]

T = TypeVar("T", bound="RetryTransport")
_WHERE = 'extensions["forbear"]'


class RetryTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that retries the way the server asks, for sync and async clients.

    Wraps ``inner`` (by default an `httpx.HTTPTransport` for a sync client and an
    `httpx.AsyncHTTPTransport` for an async one, each made on first use) and delegates
    ``close``/``aclose`` and the context managers to it. ``gate`` and ``budget`` default to the
    process's (shared by every client in it); pass objects to narrow or widen the scope, or
    None to go without. Per request, ``extensions={"forbear": {...}}`` takes ``"policy"`` (a
    `Policy`) and ``"retries"`` (False: one send, no retry and no re-exchange).
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: Gate | EllipsisType | None = ...,
        budget: Budget | EllipsisType | None = ...,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
    ) -> None:
        if inner is not None and not isinstance(
            inner, (httpx.BaseTransport, httpx.AsyncBaseTransport)
        ):
            raise TypeError(
                "inner must be an httpx.BaseTransport or httpx.AsyncBaseTransport, "
                f"got {type(inner).__name__}"
            )
        #: The retry loop and what it shares: policy, gate, budget, token source, events.
        self.retrier = Retrier(
            policy=policy,
            token=token,
            gate=gate,
            budget=budget,
            idempotency_keys=idempotency_keys,
            request_ids=request_ids,
            on_event=on_event,
        )
        self.inner = inner
        self._sync = _SyncSide(inner) if isinstance(inner, httpx.BaseTransport) else None
        self._async = _AsyncSide(inner) if isinstance(inner, httpx.AsyncBaseTransport) else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        inner = "default" if self.inner is None else type(self.inner).__name__
        return f"RetryTransport({inner}, policy={self.retrier.policy!r})"

    # -- the wrapped transports ----------------------------------------------------------

    def _sync_side(self) -> _SyncSide:
        side = self._sync
        if side is None:
            if self.inner is not None:
                raise TypeError(
                    f"RetryTransport wraps {type(self.inner).__name__}, an async transport; "
                    "a sync httpx.Client needs a sync one, e.g. httpx.HTTPTransport()"
                )
            with self._lock:
                if self._sync is None:
                    self._sync = _SyncSide(httpx.HTTPTransport())
                side = self._sync
        return side

    def _async_side(self) -> _AsyncSide:
        side = self._async
        if side is None:
            if self.inner is not None:
                raise TypeError(
                    f"RetryTransport wraps {type(self.inner).__name__}, a sync transport; "
                    "an httpx.AsyncClient needs an async one, e.g. httpx.AsyncHTTPTransport()"
                )
            with self._lock:
                if self._async is None:
                    self._async = _AsyncSide(httpx.AsyncHTTPTransport())
                side = self._async
        return side

    def __enter__(self: T) -> T:
        self._sync_side().transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self._sync is not None:
            self._sync.transport.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        """Close the wrapped sync transport (its connection pool), if one was made."""
        if self._sync is not None:
            self._sync.transport.close()

    async def __aenter__(self: T) -> T:
        await self._async_side().transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self._async is not None:
            await self._async.transport.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        """Close the wrapped async transport (its connection pool), if one was made."""
        if self._async is not None:
            await self._async.transport.aclose()

    # -- the loop ------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying as the core decides; the final response is unread."""
        url = request.url
        return self.retrier.run_sync(
            self._sync or self._sync_side(),
            request,
            request.method,
            url,
            request.headers,
            _origin(url),  # (positional: a call with keywords is not specialized)
            request.extensions.get("forbear"),
            _WHERE,
        )

    def handle_async_request(self, request: httpx.Request) -> Coroutine[Any, Any, httpx.Response]:
        """The async twin of `handle_request` (asyncio and trio), to be awaited.

        A plain function handing back the core's coroutine: awaited alike, one coroutine
        frame fewer per request than an ``async def`` around it.
        """
        url = request.url
        return self.retrier.run_async(
            self._async or self._async_side(),
            request,
            request.method,
            url,
            request.headers,
            _origin(url),  # (positional: a call with keywords is not specialized)
            request.extensions.get("forbear"),
            _WHERE,
        )


#: Origins already spelled, by (scheme, host, port): a crawler meets few origins many times.
_ORIGINS: dict[tuple[str, str, int | None], str] = {}


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of an httpx URL, from its parsed parts.

    httpx keeps them parsed (and normalised: lower-case scheme and host, no default port) in
    its ``_uri_reference``: read there, the key costs three attribute loads instead of three
    properties; an httpx without it gets the public properties.
    """
    try:
        ref = url._uri_reference
        parts = (ref.scheme, ref.host, ref.port)
    except AttributeError:  # pragma: no cover - every httpx the metadata allows has it
        parts = (url.scheme, url.raw_host.decode("ascii"), url.port)
    origin = _ORIGINS.get(parts)
    if origin is None:
        if len(_ORIGINS) >= 1024:
            _ORIGINS.clear()
        origin = _ORIGINS[parts] = f"{url.scheme}://{url.netloc.decode('ascii').lower()}"
    return origin


# -- the adapter: httpx's part of the loop -------------------------------------------------


class _Side:
    """What both sides share: outcomes, error kinds, replayable bodies, headers on a copy."""

    __slots__ = ()

    def outcome(self, response: httpx.Response) -> Reading:
        # The plain tuple an `Outcome` would hold: the core reads it by position, and making
        # the `Outcome` subclass costs three times as much on every request. A method, not a
        # staticmethod: the core's call to it is then specialized by the interpreter.
        return (response.status_code, response.headers, None)

    failure = staticmethod(error_kind)

    @staticmethod
    def replayable(request: httpx.Request) -> bool:
        return _replayable(request.stream)


def _with_headers(request: httpx.Request, headers: Mapping[str, str] | None) -> httpx.Request:
    """``request``, or a copy carrying ``headers``: httpx builds a redirect from the caller's
    request, so what forbear adds (a token, say) never follows a hop to another origin."""
    if not headers:
        return request
    copy = httpx.Request(
        request.method,
        request.url,
        headers=request.headers,
        stream=request.stream,
        extensions=request.extensions,
    )
    copy.headers.update(headers)
    return copy


class _SyncSide(_Side):
    __slots__ = ("transport",)

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.transport = transport

    def send(self, request: httpx.Request, headers: Mapping[str, str] | None) -> httpx.Response:
        return self.transport.handle_request(
            _with_headers(request, headers) if headers else request
        )

    @staticmethod
    def release(response: httpx.Response) -> None:
        try:
            size = drain_length(response.headers)
            if size is not None and not response.is_stream_consumed:
                for _ in response.iter_raw():
                    pass
        except (httpx.HTTPError, httpx.StreamError):
            pass  # the connection is dropped instead of reused; the close below still runs
        finally:
            response.close()


class _AsyncSide(_Side):
    __slots__ = ("transport",)

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    def send(
        self, request: httpx.Request, headers: Mapping[str, str] | None
    ) -> Coroutine[Any, Any, httpx.Response]:
        # A plain function handing back the inner transport's coroutine: awaited alike by the
        # core, one coroutine frame fewer per request than an ``async def`` around it.
        return self.transport.handle_async_request(
            _with_headers(request, headers) if headers else request
        )

    @staticmethod
    async def release(response: httpx.Response) -> None:
        try:
            size = drain_length(response.headers)
            if size is not None and not response.is_stream_consumed:
                with anyio.move_on_after(RELEASE_SECONDS):
                    async for _ in response.aiter_raw():
                        pass
        except (httpx.HTTPError, httpx.StreamError):
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()


def _replayable(stream: Any) -> bool:
    """Whether a request body can be sent again: bytes, or multipart of bytes/seekable files."""
    if isinstance(stream, httpx.ByteStream):
        # content=bytes, json=, data=, an empty body, or a body already read into memory.
        return True
    # files=: httpx renders each file from offset 0 on every iteration, when it can seek.
    # httpx does not export MultipartStream, so it is recognised by name and duck-typed.
    fields = getattr(stream, "fields", None)
    if type(stream).__name__ != "MultipartStream" or not isinstance(fields, list):
        return False
    for field in fields:
        file = getattr(field, "file", None)
        if file is None or isinstance(file, (str, bytes)):
            continue
        seekable = getattr(file, "seekable", None)
        try:
            if seekable is None or not seekable():
                return False
        except ValueError:  # a closed file
            return False
    return True
