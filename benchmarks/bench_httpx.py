"""What `forbear_httpx.RetryTransport` costs on the happy path, measured two ways.

1. In-process: microseconds added per request over a zero-latency inner transport (a stub
   returning ``httpx.Response(200)``), sync and async, calling the transport directly so the
   client's own cost does not drown the figure. Median over many interleaved rounds.
2. End-to-end: requests per second through ``httpx.Client`` / ``httpx.AsyncClient`` with and
   without `RetryTransport` against a minimal uvicorn app on 127.0.0.1 (in a subprocess, so the
   server does not share the client's GIL): sequential sync, sequential async, and 32
   concurrent async requests. Bare and forbear clients alternate round by round; the table
   gives medians and the spread (interquartile range) of the per-round slowdown.

Run ``python -m benchmarks.bench_httpx`` from the repository root (``--smoke`` for a tiny run
that only checks numbers come out, ``--json PATH`` to keep the figures).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import httpx
from forbear_httpx import RetryTransport

from benchmarks import _loopback
from benchmarks._loopback import Row
from benchmarks._loopback import iqr as _iqr
from benchmarks._loopback import ok_server as _server
from benchmarks.peers import forbear_scope

_URL_PATH = "/items?page=1"


# -- 1. in-process ---------------------------------------------------------------------------


class _Stub(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A zero-latency inner transport: every request answers 200 at once."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)


def _micro_sync(transport: httpx.BaseTransport, n: int) -> float:
    request = httpx.Request("GET", "http://127.0.0.1:8000" + _URL_PATH)
    handle = transport.handle_request
    start = time.perf_counter()
    for _ in range(n):
        handle(request)
    return (time.perf_counter() - start) / n * 1e6


def _micro_async(transport: httpx.AsyncBaseTransport, n: int) -> float:
    async def loop() -> float:
        request = httpx.Request("GET", "http://127.0.0.1:8000" + _URL_PATH)
        handle = transport.handle_async_request
        start = time.perf_counter()
        for _ in range(n):
            await handle(request)
        return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(loop())


def micro(rounds: int, n: int) -> list[Row]:
    """Microseconds per request, stub alone vs stub wrapped in `RetryTransport`."""
    stub = _Stub()
    wrapped = RetryTransport(stub, **forbear_scope())
    rows = []
    runners: list[tuple[str, Callable[[RetryTransport | _Stub, int], float]]] = [
        ("in-process sync", _micro_sync),
        ("in-process async", _micro_async),
    ]
    for name, run in runners:
        run(wrapped, n)  # warm up
        bare, ours, added = [], [], []
        for _ in range(rounds):
            b, f = run(stub, n), run(wrapped, n)
            bare.append(b)
            ours.append(f)
            added.append(f - b)
        rows.append(
            Row(
                name,
                statistics.median(bare),
                statistics.median(ours),
                "µs/req",
                statistics.median(added),
                _iqr(added),
            )
        )
    return rows


# -- 2. end-to-end ---------------------------------------------------------------------------


def _sync_rate(client: httpx.Client, url: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        client.get(url)
    return n / (time.perf_counter() - start)


async def _async_rate(client: httpx.AsyncClient, url: str, n: int, concurrency: int) -> float:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.get(url)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


def _compare(name: str, bare: list[float], ours: list[float]) -> Row:
    slower = [(b - f) / b * 100.0 for b, f in zip(bare, ours, strict=True)]
    return Row(
        name,
        statistics.median(bare),
        statistics.median(ours),
        "req/s",
        statistics.median(slower),
        _iqr(slower),
    )


def end_to_end(rounds: int, n: int) -> list[Row]:
    """Requests per second, bare client vs `RetryTransport`, alternating round by round."""
    rows = []
    with _server() as base:
        url = base + _URL_PATH
        with (
            httpx.Client() as bare,
            httpx.Client(transport=RetryTransport(**forbear_scope())) as ours,
        ):
            _sync_rate(bare, url, n // 4)
            _sync_rate(ours, url, n // 4)
            bare_rates: list[float] = []
            our_rates: list[float] = []
            for index in range(rounds):
                # Alternate who goes first, so a drift in machine load favours neither.
                for client in (bare, ours) if index % 2 == 0 else (ours, bare):
                    rate = _sync_rate(client, url, n)
                    (bare_rates if client is bare else our_rates).append(rate)
            rows.append(_compare("loopback sync, sequential", bare_rates, our_rates))

        async def run_async(concurrency: int) -> tuple[list[float], list[float]]:
            async with (
                httpx.AsyncClient() as bare,
                httpx.AsyncClient(transport=RetryTransport(**forbear_scope())) as ours,
            ):
                await _async_rate(bare, url, n // 4, concurrency)
                await _async_rate(ours, url, n // 4, concurrency)
                bare_rates: list[float] = []
                our_rates: list[float] = []
                for index in range(rounds):
                    for client in (bare, ours) if index % 2 == 0 else (ours, bare):
                        rate = await _async_rate(client, url, n, concurrency)
                        (bare_rates if client is bare else our_rates).append(rate)
                return bare_rates, our_rates

        rows.append(_compare("loopback async, sequential", *asyncio.run(run_async(1))))
        rows.append(_compare("loopback async, 32 concurrent", *asyncio.run(run_async(32))))
    return rows


# -- report ----------------------------------------------------------------------------------


def measure(smoke: bool) -> list[Row]:
    """Every row: tiny sizes when ``smoke``."""
    if smoke:
        return micro(rounds=3, n=500) + end_to_end(rounds=2, n=50)
    return micro(rounds=31, n=20_000) + end_to_end(rounds=40, n=300)


def main(argv: list[str] | None = None) -> None:
    _loopback.main(__doc__.splitlines()[0] if __doc__ else None, argv, measure)


if __name__ == "__main__":
    main()
