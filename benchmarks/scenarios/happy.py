"""Scenario 1, the happy path: what each retry layer costs when nothing fails.

1. In-process: microseconds each layer adds per request over a zero-latency inner (no socket),
   per client family, forbear's layers next to the peers mounted at the same place:

   - httpx, sync and async: the inner is a stub transport answering ``httpx.Response(200)``.
     forbear-httpx's `RetryTransport` and httpx-retries' ``RetryTransport`` wrap it;
     tenacity, backoff, stamina, forbear-backoff and forbear-tenacity decorate a function
     calling it.
   - requests: the inner is urllib3's connection pool with ``_make_request`` stubbed to answer
     200 (so urllib3's own ``Retry`` runs as it does for real); a plain ``HTTPAdapter``, one
     with ``max_retries=Retry(...)`` and forbear's `RetryAdapter` each ``send`` and read it.
   - aiohttp: the inner is a handler returning a ready ``ClientResponse`` (as in
     `benchmarks.bench_aiohttp`); forbear's middleware wraps it, aiohttp-retry's
     ``RetryClient`` calls it as its session's ``request``.

   Every candidate of a family is timed in every round, the order rotating; the figure is the
   median over rounds of (candidate - bare) and its interquartile range. Every forbear layer
   gets a gate and a budget of its own (`peers.forbear_scope`), not the process's shared pair.
2. Loopback: requests per second against a real server in another process (nginx when
   installed, else a minimal uvicorn app), bare client vs each layer, sequential and 32 at a
   time (asyncio tasks, or threads for requests), interleaved the same way; the figure is the
   median per-round slowdown against the bare client, with its interquartile range.

The timing loops are `benchmarks.bench_backoff`'s, `benchmarks.bench_httpx`'s,
`benchmarks.bench_requests`'s and `benchmarks.bench_aiohttp`'s.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import httpx

from benchmarks import bench_backoff, bench_httpx
from benchmarks.peers import (
    ATTEMPTS,
    RETRY_STATUSES,
    available,
    backoff_retry,
    forbear_scope,
    stamina_retry,
    tenacity_retry,
)

_URL = "http://127.0.0.1:8000/items?page=1"
#: Every httpx client keeps its connections, all of them, for good. With httpx's defaults
#: (20 of 100 kept, for 5 s) 32 concurrent tasks keep reopening connections, and an httpx
#: pool's speed depends on how many it holds (about 480 req/s with 32, 1,100 once some have
#: expired, on the reference machine): the figures then swing by half from round to round.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=None)


@dataclass
class Row:
    """One layer's cost in one family and mode."""

    family: str
    mode: str
    layer: str
    library: str
    #: The bare figure and the layer's (µs per request, or requests per second).
    bare: float
    layered: float
    unit: str
    #: µs added per request (in-process) or percent slower than bare (loopback).
    overhead: float
    spread: tuple[float, float]
    #: Every round's figures, bare and with the layer, in round order.
    bare_runs: list[float]
    runs: list[float]


def _iqr(values: list[float]) -> tuple[float, float]:
    low, high = bench_httpx._iqr(values)
    return (low, high)


#: Seconds a forbear layer runs before it is timed: past a new origin's first two seconds in
#: its fresh gate (`forbear.HostGate`'s ``learn_for``), when sends in flight are counted and a
#: crowd meets a slow start. Those are a process's first seconds at an origin (the crawl
#: scenario's subject); these rows give what every request after them costs.
SETTLE = 2.5


def _settles(name: str) -> bool:
    return name.startswith("forbear")


def _warm(call: Callable[[], object], seconds: float) -> None:
    """Run ``call`` once, and again until ``seconds`` have passed."""
    until = time.monotonic() + seconds
    call()
    while time.monotonic() < until:
        call()


async def _warm_async(call: Callable[[], Awaitable[object]], seconds: float) -> None:
    until = time.monotonic() + seconds
    await call()
    while time.monotonic() < until:
        await call()


def _interleave(
    timers: dict[str, Callable[[], float]], rounds: int, settle: float = SETTLE
) -> dict[str, list[float]]:
    """Every timer once per round, the order rotating; ``"bare"`` must be one of them."""
    names = list(timers)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        # Warm up: code paths hot, connections made (forbear's layers past `SETTLE`).
        _warm(timers[name], settle if _settles(name) else 0.0)
    for index in range(rounds):
        shift = index % len(names)
        for name in [*names[shift:], *names[:shift]]:
            figures[name].append(timers[name]())
    return figures


def _added_rows(
    family: str, mode: str, figures: dict[str, list[float]], libraries: dict[str, str]
) -> list[Row]:
    bare = figures["bare"]
    rows = []
    for name, values in figures.items():
        if name == "bare":
            continue
        added = [value - base for value, base in zip(values, bare, strict=True)]
        rows.append(
            Row(
                family,
                mode,
                name,
                libraries[name],
                statistics.median(bare),
                statistics.median(values),
                "µs/req",
                statistics.median(added),
                _iqr(added),
                bare,
                values,
            )
        )
    return rows


def _slower_rows(
    family: str, mode: str, figures: dict[str, list[float]], libraries: dict[str, str]
) -> list[Row]:
    bare = figures["bare"]
    rows = []
    for name, values in figures.items():
        if name == "bare":
            continue
        slower = [(base - value) / base * 100.0 for value, base in zip(values, bare, strict=True)]
        rows.append(
            Row(
                family,
                mode,
                name,
                libraries[name],
                statistics.median(bare),
                statistics.median(values),
                "req/s",
                statistics.median(slower),
                _iqr(slower),
                bare,
                values,
            )
        )
    return rows


# -- in-process: httpx --------------------------------------------------------------------


class _Stub(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A zero-latency inner transport: 200 at once, naming its request (raise_for_status)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, request=request)


def _httpx_layers(
    is_async: bool,
) -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """Zero-argument callables (async ones when ``is_async``), one per layer, and libraries."""
    from forbear_httpx import RetryTransport

    stub = _Stub()
    request = httpx.Request("GET", _URL)
    transports: dict[str, tuple[Any, str]] = {
        "bare": (stub, "httpx"),
        "forbear-httpx RetryTransport": (RetryTransport(stub, **forbear_scope()), "forbear"),
    }
    if available("httpx-retries"):
        from httpx_retries import Retry
        from httpx_retries import RetryTransport as PeerTransport

        retry = Retry(total=ATTEMPTS - 1, backoff_factor=0.5, status_forcelist=RETRY_STATUSES)
        transports["httpx-retries RetryTransport"] = (
            PeerTransport(transport=stub, retry=retry),
            "httpx-retries",
        )
    calls: dict[str, Callable[[], Any]] = {}
    libraries: dict[str, str] = {}
    for name, (transport, library) in transports.items():
        calls[name] = (
            _bound(transport.handle_async_request, request)
            if is_async
            else _bound(transport.handle_request, request)
        )
        libraries[name] = library

    plain = calls["bare"]

    async def raising_async() -> httpx.Response:
        response: httpx.Response = await plain()
        return response.raise_for_status()

    def raising_sync() -> httpx.Response:
        response: httpx.Response = plain()
        return response.raise_for_status()

    decorators = _decorators()
    for name, library, decorator, raises in decorators:
        if is_async:
            calls[name] = decorator(_as_coroutine_function(raising_async if raises else plain))
        else:
            calls[name] = decorator(_as_function(raising_sync if raises else plain))
        libraries[name] = library
    return calls, libraries


def _decorators() -> list[tuple[str, str, Callable[[Any], Any], bool]]:
    """(name, library, decorator, raises) for every decorator installed; forbear's next to
    the library it runs in, each with a gate and a budget of its own."""
    decorators: list[tuple[str, str, Callable[[Any], Any], bool]] = []
    if available("forbear-backoff") and available("backoff"):
        import forbear_backoff

        decorators.append(
            (
                "forbear-backoff on_response",
                "forbear",
                forbear_backoff.on_response(**forbear_scope()),
                False,
            )
        )
    if available("forbear-tenacity") and available("tenacity"):
        import forbear_tenacity

        decorators.append(
            ("forbear-tenacity retry", "forbear", forbear_tenacity.retry(**forbear_scope()), False)
        )
    for library, make, raises in (
        ("tenacity", tenacity_retry, False),
        ("backoff", backoff_retry, False),
        ("stamina", stamina_retry, True),
    ):
        if available(library):
            decorators.append((f"{library} decorator", library, make(), raises))
    return decorators


def _bound(method: Callable[[httpx.Request], Any], request: httpx.Request) -> Callable[[], Any]:
    def call() -> Any:
        return method(request)

    return call


def _as_function(call: Callable[[], Any]) -> Callable[[], Any]:
    def function() -> Any:
        return call()

    return function


def _as_coroutine_function(call: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
    async def function() -> Any:
        return await call()

    return function


def micro_httpx(rounds: int, n: int, settle: float = SETTLE) -> list[Row]:
    """µs added per request by each httpx layer, sync and async."""
    rows = []
    for mode, is_async, timer in (
        ("in-process sync", False, bench_backoff._time_sync),
        ("in-process async", True, bench_backoff._time_async),
    ):
        calls, libraries = _httpx_layers(is_async)
        timers = {name: _timer(timer, call, n) for name, call in calls.items()}
        rows += _added_rows("httpx", mode, _interleave(timers, rounds, settle), libraries)
    return rows


def _timer(timer: Callable[[Any, int], float], call: Any, n: int) -> Callable[[], float]:
    return lambda: timer(call, n)


# -- in-process: requests -----------------------------------------------------------------


def _stub_pool_class() -> type:
    import urllib3

    class StubPool(urllib3.HTTPConnectionPool):
        """urllib3's pool, all of it, except that no byte is sent: every request gets 200."""

        def _make_request(  # type: ignore[override]
            self, conn: Any, method: str, url: str, **kwargs: Any
        ) -> urllib3.HTTPResponse:
            return urllib3.HTTPResponse(
                body=io.BytesIO(b"ok"),
                headers={"Content-Type": "text/plain", "Content-Length": "2"},
                status=200,
                version=11,
                reason="OK",
                preload_content=kwargs.get("preload_content", True),
                decode_content=kwargs.get("decode_content", True),
                pool=self,
                connection=kwargs.get("response_conn"),
                retries=kwargs.get("retries"),
                request_method=method,
                request_url=url,
            )

    return StubPool


def micro_requests(rounds: int, n: int, settle: float = SETTLE) -> list[Row]:
    """µs added per request by forbear's `RetryAdapter` and by urllib3's ``Retry``."""
    import requests
    from forbear_requests import RetryAdapter
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    pool_class = _stub_pool_class()
    retry = Retry(
        total=ATTEMPTS - 1,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,
    )
    adapters: dict[str, tuple[Any, str]] = {
        "bare": (HTTPAdapter(), "requests"),
        "urllib3 Retry": (HTTPAdapter(max_retries=retry), "urllib3"),
        "forbear-requests RetryAdapter": (RetryAdapter(**forbear_scope()), "forbear"),
    }
    prepared = requests.Request("GET", _URL).prepare()
    timers = {}
    for name, (adapter, _) in adapters.items():
        # forbear's adapter sends through its inner HTTPAdapter: stub that one's pool.
        pooled = adapter.inner if isinstance(adapter, RetryAdapter) else adapter
        pooled.poolmanager.pool_classes_by_scheme = {"http": pool_class, "https": pool_class}
        response = adapter.send(prepared)
        if response.status_code != 200 or response.content != b"ok":
            raise AssertionError(f"{name}: the stub pool did not answer 200 ok")

        def send(adapter: Any = adapter) -> bytes:
            return adapter.send(prepared).content

        timers[name] = _timer(bench_backoff._time_sync, send, n)
    figures = _interleave(timers, rounds, settle)
    for adapter, _ in adapters.values():
        adapter.close()
    libraries = {name: library for name, (_, library) in adapters.items()}
    return _added_rows("requests", "in-process sync", figures, libraries)


# -- in-process: aiohttp ------------------------------------------------------------------


def micro_aiohttp(rounds: int, n: int, settle: float = SETTLE) -> list[Row]:
    """µs added per request by forbear's middleware and by aiohttp-retry's ``RetryClient``."""
    from aiohttp import ClientRequest, ClientResponse
    from forbear_aiohttp import RetryMiddleware
    from yarl import URL

    from benchmarks import bench_aiohttp
    from benchmarks.peers import aiohttp_retry_options

    async def run() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        request = ClientRequest("GET", URL(_URL), loop=loop)
        response = bench_aiohttp._ready_response(request, loop)

        async def handler(_: ClientRequest) -> ClientResponse:
            return response

        middleware = RetryMiddleware(**forbear_scope())

        async def through_forbear(req: ClientRequest) -> ClientResponse:
            return await middleware(req, handler)

        calls: dict[str, Callable[[ClientRequest], Awaitable[ClientResponse]]] = {
            "bare": handler,
            "forbear-aiohttp RetryMiddleware": through_forbear,
        }
        if available("aiohttp-retry"):
            from aiohttp_retry import RetryClient

            async def session_request(method: str, url: Any, **kwargs: Any) -> ClientResponse:
                return response

            retry_client = RetryClient(
                client_session=SimpleNamespace(request=session_request),  # type: ignore[arg-type]
                retry_options=aiohttp_retry_options(),
            )

            async def through_peer(_: ClientRequest) -> ClientResponse:
                got: ClientResponse = await retry_client.get(_URL)
                return got

            calls["aiohttp-retry RetryClient"] = through_peer
        names = list(calls)
        figures: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            await _warm_async(
                lambda call=calls[name]: bench_aiohttp._per_request(call, request, max(n // 10, 1)),
                settle if _settles(name) else 0.0,
            )
        for index in range(rounds):
            shift = index % len(names)
            for name in [*names[shift:], *names[:shift]]:
                figures[name].append(await bench_aiohttp._per_request(calls[name], request, n))
        return figures

    figures = asyncio.run(run())
    libraries = {
        "bare": "aiohttp",
        "forbear-aiohttp RetryMiddleware": "forbear",
        "aiohttp-retry RetryClient": "aiohttp-retry",
    }
    return _added_rows("aiohttp", "in-process async", figures, libraries)


# -- loopback -------------------------------------------------------------------------------


def loopback_httpx(url: str, rounds: int, n: int, settle: float = SETTLE) -> list[Row]:
    """httpx.AsyncClient req/s, bare vs each layer, sequential and 32 concurrent."""
    from forbear_httpx import RetryTransport

    async def run(concurrency: int) -> tuple[dict[str, list[float]], dict[str, str]]:
        # Every candidate's own pool, opened below with as many connections as the tasks.
        pools: list[httpx.AsyncHTTPTransport] = []

        def pool() -> httpx.AsyncHTTPTransport:
            pools.append(httpx.AsyncHTTPTransport(limits=_LIMITS))
            return pools[-1]

        clients: dict[str, Any] = {"bare": httpx.AsyncClient(transport=pool())}
        libraries = {"bare": "httpx"}
        clients["forbear-httpx RetryTransport"] = httpx.AsyncClient(
            transport=RetryTransport(pool(), **forbear_scope())
        )
        libraries["forbear-httpx RetryTransport"] = "forbear"
        if available("httpx-retries"):
            from httpx_retries import Retry
            from httpx_retries import RetryTransport as PeerTransport

            retry = Retry(total=ATTEMPTS - 1, backoff_factor=0.5, status_forcelist=RETRY_STATUSES)
            clients["httpx-retries RetryTransport"] = httpx.AsyncClient(
                transport=PeerTransport(transport=pool(), retry=retry)
            )
            libraries["httpx-retries RetryTransport"] = "httpx-retries"
        decorated = _decorators()
        owned = list(clients.values())
        for name, library, decorator, raises in decorated:
            client = httpx.AsyncClient(transport=pool())
            owned.append(client)
            clients[name] = SimpleNamespace(get=decorator(_async_get(client, raises)))
            libraries[name] = library
        try:
            # An httpx pool's speed depends on how many connections it holds (a pool of 32
            # serves even one task at half the speed of a pool of one), and a pool keeps every
            # connection it opened: each is opened here with ``concurrency`` at once, straight
            # through its transport. (A layer whose gate paced the warm-up's first crowd would
            # otherwise hold fewer, and look faster than the bare client.)
            for transport in pools:
                await _open(transport, url, concurrency)
            names = list(clients)
            figures: dict[str, list[float]] = {name: [] for name in names}
            for name in names:
                await _warm_async(
                    lambda client=clients[name]: bench_httpx._async_rate(
                        client, url, max(n // 4, 1), concurrency
                    ),
                    settle if _settles(name) else 0.0,
                )
            for index in range(rounds):
                shift = index % len(names)
                for name in [*names[shift:], *names[:shift]]:
                    rate = await bench_httpx._async_rate(clients[name], url, n, concurrency)
                    figures[name].append(rate)
            return figures, libraries
        finally:
            for client in owned:
                await client.aclose()

    rows = []
    for mode, concurrency in (("loopback async, sequential", 1), ("loopback async, 32 tasks", 32)):
        figures, libraries = asyncio.run(run(concurrency))
        rows += _slower_rows("httpx", mode, figures, libraries)
    return rows


async def _open(transport: httpx.AsyncHTTPTransport, url: str, connections: int) -> None:
    """``connections`` requests at once straight through ``transport``: its pool opens as many."""

    async def one() -> None:
        response = await transport.handle_async_request(httpx.Request("GET", url))
        await response.aread()
        await response.aclose()

    await asyncio.gather(*(one() for _ in range(connections)))


def _async_get(client: httpx.AsyncClient, raises: bool) -> Callable[[str], Awaitable[Any]]:
    async def get(url: str) -> httpx.Response:
        response = await client.get(url)
        if raises:
            response.raise_for_status()
        return response

    return get


def loopback_requests(url: str, rounds: int, n: int, settle: float = SETTLE) -> list[Row]:
    """requests.Session req/s, bare vs urllib3 Retry vs `RetryAdapter`, sequential, 32 threads."""
    from forbear_requests import RetryAdapter
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from benchmarks import bench_requests

    threads = bench_requests._THREADS
    retry = Retry(
        total=ATTEMPTS - 1,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,
    )
    sessions = {
        "bare": bench_requests._session(HTTPAdapter(pool_maxsize=threads)),
        "urllib3 Retry": bench_requests._session(
            HTTPAdapter(pool_maxsize=threads, max_retries=retry)
        ),
        "forbear-requests RetryAdapter": bench_requests._session(
            RetryAdapter(HTTPAdapter(pool_maxsize=threads), **forbear_scope())
        ),
    }
    libraries = {"bare": "requests", "urllib3 Retry": "urllib3"}
    libraries["forbear-requests RetryAdapter"] = "forbear"
    rows = []
    with ThreadPoolExecutor(threads) as pool:
        sequential = {
            name: _session_timer(bench_requests._sequential_rate, session, url, n)
            for name, session in sessions.items()
        }
        rows += _slower_rows(
            "requests", "loopback, sequential", _interleave(sequential, rounds, settle), libraries
        )
        threaded: dict[str, Callable[[], float]] = {
            name: _threaded_timer(bench_requests._threaded_rate, session, url, n, pool)
            for name, session in sessions.items()
        }
        rows += _slower_rows(
            "requests",
            f"loopback, {threads} threads",
            _interleave(threaded, rounds, settle),
            libraries,
        )
    for session in sessions.values():
        session.close()
    return rows


def _session_timer(rate: Any, session: Any, url: str, n: int) -> Callable[[], float]:
    return lambda: float(rate(session, url, n))


def _threaded_timer(rate: Any, session: Any, url: str, n: int, pool: Any) -> Callable[[], float]:
    return lambda: float(rate(session, url, n, pool))


#: How many times more requests each aiohttp loopback figure sends (see `loopback_aiohttp`).
_AIOHTTP_MORE = 5


def loopback_aiohttp(url: str, rounds: int, n: int, settle: float = SETTLE) -> list[Row]:
    """aiohttp req/s, bare vs forbear's middleware vs aiohttp-retry, sequential and 32 tasks."""
    import aiohttp
    from forbear_aiohttp import RetryMiddleware

    from benchmarks import bench_aiohttp
    from benchmarks.peers import aiohttp_retry_options

    # aiohttp answers several times faster than httpx and requests here: each of its figures
    # sends `_AIOHTTP_MORE` times as many requests, so that it lasts about as long as theirs
    # (200 requests at 11,000 req/s are 18 ms, within the reach of one scheduler hiccup).
    n *= _AIOHTTP_MORE

    async def run(concurrency: int) -> dict[str, list[float]]:
        bare = aiohttp.ClientSession()
        ours = aiohttp.ClientSession(middlewares=[RetryMiddleware(**forbear_scope())])
        peer_session = aiohttp.ClientSession()
        sessions: dict[str, Any] = {"bare": bare, "forbear-aiohttp RetryMiddleware": ours}
        if available("aiohttp-retry"):
            from aiohttp_retry import RetryClient

            sessions["aiohttp-retry RetryClient"] = RetryClient(
                client_session=peer_session, retry_options=aiohttp_retry_options()
            )
        try:
            names = list(sessions)
            figures: dict[str, list[float]] = {name: [] for name in names}
            for name in names:
                await _warm_async(
                    lambda session=sessions[name]: bench_aiohttp._rate(
                        session, url, max(n // 4, 1), concurrency
                    ),
                    settle if _settles(name) else 0.0,
                )
            for index in range(rounds):
                shift = index % len(names)
                for name in [*names[shift:], *names[:shift]]:
                    rate = await bench_aiohttp._rate(sessions[name], url, n, concurrency)
                    figures[name].append(rate)
            return figures
        finally:
            for session in (bare, ours, peer_session):
                await session.close()

    libraries = {
        "bare": "aiohttp",
        "forbear-aiohttp RetryMiddleware": "forbear",
        "aiohttp-retry RetryClient": "aiohttp-retry",
    }
    rows = []
    for mode, concurrency in (("loopback, sequential", 1), ("loopback, 32 tasks", 32)):
        rows += _slower_rows("aiohttp", mode, asyncio.run(run(concurrency)), libraries)
    return rows


def run(
    url: str,
    server: str,
    *,
    micro_rounds: int,
    micro_n: int,
    rounds: int,
    n: int,
    settle: float = SETTLE,
    log: Any = print,
) -> dict[str, Any]:
    """Every family, in-process then loopback; rows as dicts."""
    rows: list[Row] = []
    for family, measure in (
        ("httpx", micro_httpx),
        ("requests", micro_requests),
        ("aiohttp", micro_aiohttp),
    ):
        got = measure(micro_rounds, micro_n, settle)
        for row in got:
            log(f"  {family:8} {row.mode:18} {row.layer:34} +{row.overhead:6.2f} µs/req")
        rows += got
    for family, loop in (
        ("httpx", loopback_httpx),
        ("requests", loopback_requests),
        ("aiohttp", loopback_aiohttp),
    ):
        got = loop(url, rounds, n, settle)
        for row in got:
            log(
                f"  {family:8} {row.mode:28} {row.layer:34} {row.layered:7.0f} req/s "
                f"({row.overhead:+5.1f} % slower)"
            )
        rows += got
    return {
        "server": server,
        "micro_rounds": micro_rounds,
        "micro_n": micro_n,
        "rounds": rounds,
        "n": n,
        "aiohttp_n": n * _AIOHTTP_MORE,
        "settle": settle,
        "rows": [asdict(row) for row in rows],
    }
