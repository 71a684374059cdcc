"""`RetryTransport`: one httpx transport, sync and async, that runs forbear's retry loop.

The loop itself is `forbear.RetryCall`'s (see its module docstring); this module only maps
httpx's types onto it: it sends through the wrapped transport, releases discarded responses,
sleeps (`time.sleep` / `anyio.sleep`, so asyncio and trio alike), and re-raises. No retry rule
lives here: which status, error, method or body may be retried, and how long to wait, is the
core's to say.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from forbear import (
    Action,
    EventHook,
    HostGate,
    Policy,
    Retrier,
    RetryBudget,
    RetryCall,
    TokenSource,
)

from ._errors import error_kind

__all__ = ["DRAIN_LIMIT", "OVERRIDE_KEYS", "RetryTransport"]

#: The keys `RetryTransport` reads from ``request.extensions["forbear"]``.
OVERRIDE_KEYS: frozenset[str] = frozenset({"policy", "retries"})

#: A discarded response whose ``Content-Length`` is at most this many bytes is read before it
#: is closed, so its connection goes back to the pool; a larger or unsized one is just closed.
DRAIN_LIMIT = 64 * 1024

_DEFAULT_POLICY = Policy()
_FINAL = (Action.RETURN, Action.GIVE_UP)

T = TypeVar("T", bound="RetryTransport")


class RetryTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that retries the way the server asks, for sync and async clients.

    Wraps ``transport`` (by default an `httpx.HTTPTransport` for a sync client and an
    `httpx.AsyncHTTPTransport` for an async one, each created on first use) and delegates
    ``close``/``aclose`` and the context managers to it. ``gate`` and ``budget`` default to a
    fresh `HostGate` / `RetryBudget` for this transport; pass the same objects to several
    transports to share them, or ``None`` to go without.

    Per request, ``extensions={"forbear": {...}}`` takes ``"policy"`` (a `Policy` for this
    request) and ``"retries"`` (``False``: one send, no retry and no re-exchange).
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        *,
        policy: Policy = _DEFAULT_POLICY,
        token: TokenSource | None = None,
        gate: HostGate | bool | None = True,
        budget: RetryBudget | bool | None = True,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
    ) -> None:
        if transport is not None and not isinstance(
            transport, (httpx.BaseTransport, httpx.AsyncBaseTransport)
        ):
            raise TypeError(
                "transport must be an httpx.BaseTransport or httpx.AsyncBaseTransport, "
                f"got {type(transport).__name__}"
            )
        self.retrier = Retrier(
            policy=policy,
            token=token,
            gate=gate,
            budget=budget,
            idempotency_keys=idempotency_keys,
            request_ids=request_ids,
            on_event=on_event,
        )
        self._given = transport
        self._sync = transport if isinstance(transport, httpx.BaseTransport) else None
        self._async = transport if isinstance(transport, httpx.AsyncBaseTransport) else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        inner = "default" if self._given is None else type(self._given).__name__
        return f"RetryTransport({inner}, policy={self.retrier.policy!r})"

    # -- the wrapped transports ----------------------------------------------------------

    @property
    def transport(self) -> httpx.BaseTransport | httpx.AsyncBaseTransport | None:
        """The transport given to the constructor (None when forbear makes its own)."""
        return self._given

    def _sync_transport(self) -> httpx.BaseTransport:
        transport = self._sync
        if transport is None:
            if self._given is not None:
                raise TypeError(
                    f"RetryTransport wraps {type(self._given).__name__}, an async transport; "
                    "a sync httpx.Client needs a sync one, e.g. httpx.HTTPTransport()"
                )
            with self._lock:
                if self._sync is None:
                    self._sync = httpx.HTTPTransport()
                transport = self._sync
        return transport

    def _async_transport(self) -> httpx.AsyncBaseTransport:
        transport = self._async
        if transport is None:
            if self._given is not None:
                raise TypeError(
                    f"RetryTransport wraps {type(self._given).__name__}, a sync transport; "
                    "an httpx.AsyncClient needs an async one, e.g. httpx.AsyncHTTPTransport()"
                )
            with self._lock:
                if self._async is None:
                    self._async = httpx.AsyncHTTPTransport()
                transport = self._async
        return transport

    def __enter__(self: T) -> T:
        self._sync_transport().__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self._sync is not None:
            self._sync.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        """Close the wrapped sync transport (its connection pool), if one was made."""
        if self._sync is not None:
            self._sync.close()

    async def __aenter__(self: T) -> T:
        await self._async_transport().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self._async is not None:
            await self._async.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        """Close the wrapped async transport (its connection pool), if one was made."""
        if self._async is not None:
            await self._async.aclose()

    # -- the loop ------------------------------------------------------------------------

    def _begin(self, request: httpx.Request) -> tuple[RetryCall, httpx.Request]:
        """The call for ``request``, and the request to send: a copy when forbear adds headers.

        httpx builds a redirect's request from the caller's, so the token and the headers added
        here go on a copy: they never follow a redirect (to another origin, perhaps); each hop
        is a logical request of its own and gets its own.
        """
        overrides = request.extensions.get("forbear")
        policy = None if overrides is None else _override_policy(overrides, self.retrier.policy)
        call = self.retrier.begin(
            request.method,
            str(request.url),
            request.headers,
            replayable=_replayable(request.stream),
            policy=policy,
        )
        added = call.headers()
        if added or call.uses_token:
            request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                stream=request.stream,
                extensions=request.extensions,
            )
            request.headers.update(added)
        return call, request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying as the core decides; the final response is unread."""
        transport = self._sync_transport()
        call, request = self._begin(request)
        while True:
            delay = call.gate_delay()
            if delay > 0.0:
                time.sleep(delay)
            if call.uses_token:
                auth = call.auth_sync()
                if auth is not None:
                    request.headers[auth[0]] = auth[1]
            try:
                response = transport.handle_request(request)
            except httpx.TransportError as exc:
                kind = error_kind(exc)
                decision = None if kind is None else call.on_error(kind)
                if decision is None or decision.action in _FINAL:
                    call.annotate(exc)
                    raise
            else:
                try:
                    decision = call.on_response(response.status_code, response.headers)
                except BaseException:
                    response.close()
                    raise
                if decision.action in _FINAL:
                    return response
                _release(response)
            if decision.action is Action.REAUTH:
                call.reauth_sync()
            elif decision.wait > 0.0:
                time.sleep(decision.wait)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The async twin of `handle_request`: sleeps with `anyio.sleep` (asyncio and trio)."""
        transport = self._async_transport()
        call, request = self._begin(request)
        while True:
            delay = call.gate_delay()
            if delay > 0.0:
                await anyio.sleep(delay)
            if call.uses_token:
                auth = await call.auth_async()
                if auth is not None:
                    request.headers[auth[0]] = auth[1]
            try:
                response = await transport.handle_async_request(request)
            except httpx.TransportError as exc:
                kind = error_kind(exc)
                decision = None if kind is None else call.on_error(kind)
                if decision is None or decision.action in _FINAL:
                    call.annotate(exc)
                    raise
            else:
                try:
                    decision = call.on_response(response.status_code, response.headers)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
                    raise
                if decision.action in _FINAL:
                    return response
                await _arelease(response)
            if decision.action is Action.REAUTH:
                await call.reauth_async()
            elif decision.wait > 0.0:
                await anyio.sleep(decision.wait)


# -- helpers -------------------------------------------------------------------------------


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


def _override_policy(overrides: Any, default: Policy) -> Policy:
    """The policy for one request from its ``extensions["forbear"]`` mapping."""
    if not isinstance(overrides, Mapping):
        raise TypeError(f'extensions["forbear"] must be a mapping, got {type(overrides).__name__}')
    unknown = set(overrides) - OVERRIDE_KEYS
    if unknown:
        known = ", ".join(sorted(OVERRIDE_KEYS))
        raise ValueError(f'unknown extensions["forbear"] keys {sorted(unknown)}; known: {known}')
    policy = overrides.get("policy", default)
    if not isinstance(policy, Policy):
        raise TypeError(
            f'extensions["forbear"]["policy"] must be a forbear.Policy, got {type(policy).__name__}'
        )
    retries = overrides.get("retries", True)
    if not isinstance(retries, bool):
        raise TypeError(
            f'extensions["forbear"]["retries"] must be a bool, got {type(retries).__name__}'
        )
    return policy if retries else _single_send(policy)


@functools.lru_cache(maxsize=32)
def _single_send(policy: Policy) -> Policy:
    return dataclasses.replace(policy, max_attempts=1, max_reauths=0)


def _drainable(response: httpx.Response) -> bool:
    if response.is_stream_consumed or response.is_closed:
        return False
    length = response.headers.get("Content-Length")
    return length is not None and length.isdigit() and int(length) <= DRAIN_LIMIT


def _release(response: httpx.Response) -> None:
    """Close a discarded response; a small one is read first so its connection is reused."""
    try:
        if _drainable(response):
            for _ in response.iter_raw():
                pass
    except (httpx.HTTPError, httpx.StreamError):
        pass  # the connection is dropped instead of reused; the close below still runs
    finally:
        response.close()


async def _arelease(response: httpx.Response) -> None:
    """The async twin of `_release`."""
    try:
        if _drainable(response):
            async for _ in response.aiter_raw():
                pass
    except (httpx.HTTPError, httpx.StreamError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()
