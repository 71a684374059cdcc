"""One synchronous interface over every forbear adapter, for the reliability suite and the soak.

A `Driver` opens a `Session`: one client of its library with forbear mounted the way a user
would mount it, built from `Options` (with ``bare=True``, the same client without forbear, as
a baseline). A session sends one request and reports an `Answer` (status, body and headers,
or the exception and its kind, and how long it took), sends several at once
(`Session.gather`), and cancels a request the moment a trigger fires (`Session.cancel_when`).
Async clients run on an event loop in a blocking-portal thread (asyncio or trio), so each test
is written once, synchronously, and run against every driver.

No retry rule and no adapter internals live here: only each library's public API and each
adapter's public constructor and the core's `error_kind` table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import anyio.from_thread
import forbear_aiohttp
import forbear_backoff
import forbear_httpx
import forbear_requests
import httpx
import requests
import trio

from forbear import EventHook, Policy, TokenSource, error_kind

__all__ = [
    "DRIVERS",
    "Answer",
    "Cancellation",
    "Driver",
    "Options",
    "Session",
]

#: How long a cancelled request may go on before the harness stops waiting for it.
_CANCEL_PATIENCE = 10.0
#: How often an async canceller looks at its (thread-safe) trigger.
_TRIGGER_POLL = 0.002
#: How often the watchdog repeats its signal until a sync request ends.
_SIGNAL_REPEAT = 0.005


@dataclass(frozen=True)
class Options:
    """How a session's client is built: the adapter's options and the client's timeout."""

    policy: Policy
    token: TokenSource | None = None
    idempotency_keys: bool = False
    request_ids: bool = False
    on_event: EventHook | None = None
    #: Connect and read timeout of each attempt, in seconds.
    timeout: float = 5.0
    #: The same client without forbear (a baseline): every other option is ignored.
    bare: bool = False


@dataclass(frozen=True)
class Answer:
    """What one logical request ended with, as its caller saw it."""

    #: The final status, or None when the request raised.
    status: int | None
    #: The body read (all of it, or at most ``read_limit`` bytes).
    body: bytes = b""
    #: Response headers, names lower-case, repeated fields joined by ``", "``.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The exception the request raised, unchanged.
    error: BaseException | None = None
    #: The core's `error_kind` of ``error`` (None: not a transport error it retries).
    kind: str | None = None
    #: Seconds from the call to its end, body read included.
    elapsed: float = 0.0

    @property
    def notes(self) -> list[str]:
        """The notes forbear added to ``error`` (its attempt history)."""
        return list(getattr(self.error, "__notes__", ()))


@dataclass(frozen=True)
class Cancellation:
    """How a cancelled request ended."""

    #: Seconds from the cancellation to the request's end (inf when it did not end in time).
    elapsed: float
    #: True when the request finished on its own instead of being cancelled.
    completed: bool


def _headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _failed(exc: BaseException, start: float) -> Answer:
    """The answer of a request that raised ``exc``, classified by the core's table."""
    kind = error_kind(exc)
    return Answer(
        None,
        error=exc,
        kind=None if kind is None else str(kind.value),
        elapsed=time.perf_counter() - start,
    )


class Session:
    """One client with forbear mounted. Use it as a context manager; it closes the client."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client (and its event loop, for an async session)."""
        self._stack.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        read_limit: int | None = None,
    ) -> Answer:
        """One logical request. ``read_limit`` streams it and reads at most that many bytes."""
        raise NotImplementedError

    def gather(
        self,
        count: int,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> list[Answer]:
        """``count`` identical requests at once (threads or tasks), in start order."""
        raise NotImplementedError

    def cancel_when(
        self,
        trigger: threading.Event,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Cancellation:
        """Send a request and cancel it as soon as ``trigger`` is set (from any thread)."""
        raise NotImplementedError


# -- sync sessions ---------------------------------------------------------------------------


class _Interrupted(BaseException):
    """Raised in the main thread by the watchdog's signal: a sync request's cancellation."""


_armed = threading.Event()


def _on_watchdog_signal(signum: int, frame: object) -> None:
    if _armed.is_set():
        _armed.clear()
        raise _Interrupted


class SyncSession(Session):
    """A session whose client is synchronous: threads for `gather`, a signal to cancel."""

    def gather(
        self,
        count: int,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> list[Answer]:
        """``count`` identical requests, each on its own thread."""
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            futures = [
                pool.submit(self.send, method, url, headers=headers, body=body)
                for _ in range(count)
            ]
            return [future.result() for future in futures]

    def cancel_when(
        self,
        trigger: threading.Event,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Cancellation:
        """A watchdog thread interrupts the (main) thread with SIGUSR1, as Ctrl-C would.

        A sync client has no other way to be stopped from outside: the signal handler raises
        in the main thread wherever it is, here inside the adapter's ``time.sleep``. The signal
        is repeated every few milliseconds until the request ends, because one that lands
        between the interpreter's last check for signals and the ``sleep`` system call is
        noticed only when the sleep ends (a CPython race, not the adapter's). The time taken
        counts from the first signal.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("a sync request can be cancelled only on the main thread")
        target = threading.get_ident()
        fired: list[float] = []
        ended_event = threading.Event()

        def watchdog() -> None:
            if not trigger.wait(_CANCEL_PATIENCE) or ended_event.is_set():
                return
            fired.append(time.perf_counter())
            while _armed.is_set() and not ended_event.is_set():
                signal.pthread_kill(target, signal.SIGUSR1)
                ended_event.wait(_SIGNAL_REPEAT)

        previous = signal.signal(signal.SIGUSR1, _on_watchdog_signal)
        thread = threading.Thread(target=watchdog, name="reliability-watchdog", daemon=True)
        _armed.set()
        thread.start()
        completed = False
        try:
            try:
                self.send(method, url, headers=headers)
                completed = True
            except _Interrupted:
                pass
            ended = time.perf_counter()
        finally:
            _armed.clear()
            ended_event.set()
            trigger.set()  # release the watchdog if the request ended first
            thread.join()
            signal.signal(signal.SIGUSR1, previous)
        elapsed = ended - fired[0] if fired and not completed else float("inf")
        return Cancellation(elapsed, completed)


def _read_limited(chunks: Iterator[bytes], limit: int) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


class HttpxSyncSession(SyncSession):
    """``httpx.Client(transport=RetryTransport(...))``."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        transport: httpx.BaseTransport = httpx.HTTPTransport()
        if not options.bare:
            transport = forbear_httpx.RetryTransport(
                transport,
                policy=options.policy,
                token=options.token,
                idempotency_keys=options.idempotency_keys,
                request_ids=options.request_ids,
                on_event=options.on_event,
            )
        self.client = self._stack.enter_context(
            httpx.Client(transport=transport, timeout=options.timeout, follow_redirects=True)
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        read_limit: int | None = None,
    ) -> Answer:
        """One request through the client."""
        start = time.perf_counter()
        try:
            with self.client.stream(method, url, headers=headers, content=body) as response:
                if read_limit is None:
                    data = response.read()
                else:
                    data = _read_limited(response.iter_raw(), read_limit)
                status, pairs = response.status_code, response.headers.multi_items()
        except Exception as exc:
            return _failed(exc, start)
        return Answer(status, data, _headers(pairs), elapsed=time.perf_counter() - start)


class RequestsSession(SyncSession):
    """``requests.Session()`` with ``RetryAdapter(...)`` mounted on ``http://``."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        adapter: requests.adapters.BaseAdapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        if not options.bare:
            adapter = forbear_requests.RetryAdapter(
                adapter,
                policy=options.policy,
                token=options.token,
                idempotency_keys=options.idempotency_keys,
                request_ids=options.request_ids,
                on_event=options.on_event,
            )
        self.client = self._stack.enter_context(requests.Session())
        self.client.mount("http://", adapter)

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        read_limit: int | None = None,
    ) -> Answer:
        """One request through the session (``stream=True`` only with a ``read_limit``)."""
        start = time.perf_counter()
        stream = read_limit is not None
        try:
            response = self.client.request(
                method,
                url,
                headers=dict(headers or {}),
                data=body,
                timeout=self.options.timeout,
                stream=stream,
            )
            with response:
                data = response.content if read_limit is None else response.raw.read(read_limit)
                status, pairs = response.status_code, list(response.headers.items())
        except Exception as exc:
            return _failed(exc, start)
        return Answer(status, data, _headers(pairs), elapsed=time.perf_counter() - start)


class BackoffSession(SyncSession):
    """A plain ``httpx.Client`` called from a ``forbear_backoff.on_exception`` function.

    The function streams the response and raises for its status, so backoff sees every
    attempt: status errors and transport errors alike, judged by forbear's core.
    """

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        if options.token is not None or options.idempotency_keys or options.request_ids:
            raise ValueError("forbear-backoff cannot add headers to the requests it retries")
        self.client = self._stack.enter_context(
            httpx.Client(timeout=options.timeout, follow_redirects=True)
        )
        client = self.client

        def fetch(request: httpx.Request) -> httpx.Response:
            response = client.send(request, stream=True)
            response.raise_for_status()
            return response

        if not options.bare:
            fetch = forbear_backoff.on_exception(
                httpx.HTTPError, policy=options.policy, on_event=options.on_event
            )(fetch)
        self._fetch = fetch

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        read_limit: int | None = None,
    ) -> Answer:
        """One call of the decorated function; a final status error is read as its answer."""
        start = time.perf_counter()
        request = self.client.build_request(method, url, headers=headers, content=body)
        try:
            response = self._fetch(request)
        except httpx.HTTPStatusError as exc:
            response = exc.response
        except Exception as exc:
            return _failed(exc, start)
        try:
            if read_limit is None:
                data = response.read()
            else:
                data = _read_limited(response.iter_raw(), read_limit)
        except Exception as exc:
            return _failed(exc, start)
        finally:
            response.close()
        pairs = response.headers.multi_items()
        return Answer(
            response.status_code, data, _headers(pairs), elapsed=time.perf_counter() - start
        )


# -- async sessions --------------------------------------------------------------------------


class AsyncSession(Session):
    """A session whose client lives on an event loop in a portal thread."""

    def __init__(self, options: Options, backend: str) -> None:
        super().__init__(options)
        #: The anyio backend the loop runs: "asyncio" or "trio".
        self.backend = backend
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal(backend))
        self.portal.call(self._open)
        self._stack.callback(self.portal.call, self._aclose)

    async def _open(self) -> None:
        raise NotImplementedError

    async def _aclose(self) -> None:
        raise NotImplementedError

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        read_limit: int | None,
    ) -> Answer:
        raise NotImplementedError

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        read_limit: int | None = None,
    ) -> Answer:
        """One request, run on the session's event loop."""
        return self.portal.call(self._send, method, url, headers, body, read_limit)

    def gather(
        self,
        count: int,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> list[Answer]:
        """``count`` identical requests as concurrent tasks of one task group."""

        async def run() -> list[Answer]:
            answers: list[Answer | None] = [None] * count

            async def one(index: int) -> None:
                answers[index] = await self._send(method, url, headers, body, None)

            async with anyio.create_task_group() as group:
                for index in range(count):
                    group.start_soon(one, index)
            return [answer for answer in answers if answer is not None]

        return self.portal.call(run)

    def cancel_when(
        self,
        trigger: threading.Event,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Cancellation:
        """The loop's own cancellation: one ``task.cancel()`` (asyncio) or a cancel scope (trio)."""
        run = self._cancel_asyncio if self.backend == "asyncio" else self._cancel_trio
        return self.portal.call(run, trigger, method, url, headers)

    async def _cancel_asyncio(
        self,
        trigger: threading.Event,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
    ) -> Cancellation:
        task = asyncio.ensure_future(self._send(method, url, headers, None, None))
        while not trigger.is_set() and not task.done():
            await asyncio.sleep(_TRIGGER_POLL)
        if task.done():
            return Cancellation(float("inf"), completed=True)
        cancelled_at = time.perf_counter()
        task.cancel()  # once, as a caller would: a swallowed cancellation shows as a late end
        done, _ = await asyncio.wait({task}, timeout=_CANCEL_PATIENCE)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return Cancellation(float("inf"), completed=False)
        ended = time.perf_counter()
        return Cancellation(ended - cancelled_at, completed=not task.cancelled())

    async def _cancel_trio(
        self,
        trigger: threading.Event,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
    ) -> Cancellation:
        finished: list[Answer] = []

        async def request() -> None:
            finished.append(await self._send(method, url, headers, None, None))

        cancelled_at = float("nan")
        with trio.move_on_after(_CANCEL_PATIENCE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(request)
                while not trigger.is_set() and not finished:
                    await trio.sleep(_TRIGGER_POLL)
                cancelled_at = time.perf_counter()
                nursery.cancel_scope.cancel()
        ended = time.perf_counter()
        return Cancellation(ended - cancelled_at, completed=bool(finished))


async def _aread_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


class HttpxAsyncSession(AsyncSession):
    """``httpx.AsyncClient(transport=RetryTransport(...))`` on asyncio or trio."""

    async def _open(self) -> None:
        options = self.options
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport()
        if not options.bare:
            transport = forbear_httpx.RetryTransport(
                transport,
                policy=options.policy,
                token=options.token,
                idempotency_keys=options.idempotency_keys,
                request_ids=options.request_ids,
                on_event=options.on_event,
            )
        self.client = httpx.AsyncClient(
            transport=transport, timeout=options.timeout, follow_redirects=True
        )
        await self.client.__aenter__()

    async def _aclose(self) -> None:
        await self.client.aclose()

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        read_limit: int | None,
    ) -> Answer:
        start = time.perf_counter()
        try:
            async with self.client.stream(method, url, headers=headers, content=body) as response:
                if read_limit is None:
                    data = await response.aread()
                else:
                    data = await _aread_limited(response.aiter_raw(), read_limit)
                status, pairs = response.status_code, response.headers.multi_items()
        except Exception as exc:
            return _failed(exc, start)
        return Answer(status, data, _headers(pairs), elapsed=time.perf_counter() - start)


class AiohttpSession(AsyncSession):
    """``aiohttp.ClientSession(middlewares=[RetryMiddleware(...)])`` on asyncio."""

    async def _open(self) -> None:
        options = self.options
        middleware = forbear_aiohttp.RetryMiddleware(
            policy=options.policy,
            token=options.token,
            idempotency_keys=options.idempotency_keys,
            request_ids=options.request_ids,
            on_event=options.on_event,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=options.timeout, sock_read=options.timeout
        )
        middlewares = () if options.bare else (middleware,)
        self.client = aiohttp.ClientSession(middlewares=middlewares, timeout=timeout)

    async def _aclose(self) -> None:
        await self.client.close()

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        read_limit: int | None,
    ) -> Answer:
        start = time.perf_counter()
        try:
            async with self.client.request(method, url, headers=headers, data=body) as response:
                if read_limit is None:
                    data = await response.read()
                else:
                    data = await _aread_limited(response.content.iter_any(), read_limit)
                status, pairs = response.status, list(response.headers.items())
        except Exception as exc:
            return _failed(exc, start)
        return Answer(status, data, _headers(pairs), elapsed=time.perf_counter() - start)


# -- the drivers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    """One way of mounting forbear: a name, what it supports, and how to open a session."""

    name: str
    factory: Callable[[Options], Session]
    #: Takes a `TokenSource` and adds ``Idempotency-Key`` / ``X-Request-Id`` headers itself.
    adds_headers: bool = True

    def __str__(self) -> str:
        return self.name

    def open(self, options: Options) -> Session:
        """A new session (one client) built from ``options``."""
        return self.factory(options)


def _async(cls: type[AsyncSession], backend: str) -> Callable[[Options], Session]:
    def factory(options: Options) -> Session:
        return cls(options, backend)

    return factory


#: Every adapter, as the suite runs it.
DRIVERS: tuple[Driver, ...] = (
    Driver("httpx-sync", HttpxSyncSession),
    Driver("httpx-asyncio", _async(HttpxAsyncSession, "asyncio")),
    Driver("httpx-trio", _async(HttpxAsyncSession, "trio")),
    Driver("requests", RequestsSession),
    Driver("aiohttp", _async(AiohttpSession, "asyncio")),
    Driver("backoff", BackoffSession, adds_headers=False),
)


# -- a scope of the test's own: its gate and budget ------------------------------------------


class _Scope:
    """The ``gate=`` and ``budget=`` a scoped session builds its adapter with."""

    gate: Any
    budget: Any

    def _retry_options(self, options: Options) -> dict[str, Any]:
        return {
            "policy": options.policy,
            "token": options.token,
            "gate": self.gate,
            "budget": self.budget,
            "idempotency_keys": options.idempotency_keys,
            "request_ids": options.request_ids,
            "on_event": options.on_event,
        }


class _ScopedHttpxSync(_Scope, HttpxSyncSession):
    def __init__(self, options: Options, gate: Any, budget: Any) -> None:
        self.gate, self.budget = gate, budget
        SyncSession.__init__(self, options)
        transport = forbear_httpx.RetryTransport(
            httpx.HTTPTransport(), **self._retry_options(options)
        )
        self.client = self._stack.enter_context(
            httpx.Client(transport=transport, timeout=options.timeout, follow_redirects=True)
        )


class _ScopedRequests(_Scope, RequestsSession):
    def __init__(self, options: Options, gate: Any, budget: Any) -> None:
        self.gate, self.budget = gate, budget
        SyncSession.__init__(self, options)
        adapter = forbear_requests.RetryAdapter(
            requests.adapters.HTTPAdapter(pool_maxsize=16), **self._retry_options(options)
        )
        self.client = self._stack.enter_context(requests.Session())
        self.client.mount("http://", adapter)


class _ScopedHttpxAsync(_Scope, HttpxAsyncSession):
    def __init__(self, options: Options, backend: str, gate: Any, budget: Any) -> None:
        self.gate, self.budget = gate, budget
        super().__init__(options, backend)

    async def _open(self) -> None:
        transport = forbear_httpx.RetryTransport(
            httpx.AsyncHTTPTransport(), **self._retry_options(self.options)
        )
        self.client = httpx.AsyncClient(
            transport=transport, timeout=self.options.timeout, follow_redirects=True
        )
        await self.client.__aenter__()


class _ScopedAiohttp(_Scope, AiohttpSession):
    def __init__(self, options: Options, backend: str, gate: Any, budget: Any) -> None:
        self.gate, self.budget = gate, budget
        super().__init__(options, backend)

    async def _open(self) -> None:
        middleware = forbear_aiohttp.RetryMiddleware(**self._retry_options(self.options))
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.options.timeout, sock_read=self.options.timeout
        )
        self.client = aiohttp.ClientSession(middlewares=(middleware,), timeout=timeout)


_SCOPED: dict[str, Callable[[Options, Any, Any], Session]] = {
    "httpx-sync": _ScopedHttpxSync,
    "httpx-asyncio": lambda o, g, b: _ScopedHttpxAsync(o, "asyncio", g, b),
    "httpx-trio": lambda o, g, b: _ScopedHttpxAsync(o, "trio", g, b),
    "requests": _ScopedRequests,
    "aiohttp": lambda o, g, b: _ScopedAiohttp(o, "asyncio", g, b),
}

#: The drivers whose adapters take ``gate=`` and ``budget=`` through `scoped`.
SCOPED_DRIVERS: tuple[Driver, ...] = tuple(d for d in DRIVERS if d.name in _SCOPED)


def scoped(driver: Driver, options: Options, *, gate: Any, budget: Any) -> Session:
    """A session of ``driver`` whose adapter shares ``gate`` and ``budget`` (a `HostGate` and
    `RetryBudget` of the test's own, a fleet's, or None) instead of the process's."""
    return _SCOPED[driver.name](options, gate, budget)


def crawl(session: Session, urls: Iterable[str], concurrency: int) -> list[Answer]:
    """GET every URL through ``session``, ``concurrency`` at a time (a crawler's workers, each a
    thread; an async session runs them as tasks on its loop); the answers in URL order."""
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda url: session.send("GET", url), urls))
