"""What `forbear_aiohttp.RetryMiddleware` costs on the happy path, measured two ways.

1. In-process: microseconds added per request over a zero-latency inner handler (a stub
   returning a ready ``ClientResponse`` with status 200), calling ``middleware(request,
   handler)`` directly against ``handler(request)``, so the session's own cost does not drown
   the figure. Median over many interleaved rounds.
2. End-to-end: requests per second through a bare ``aiohttp.ClientSession`` and one with
   ``middlewares=[RetryMiddleware()]`` against a minimal uvicorn app on 127.0.0.1 (in a
   subprocess, so the server does not share the client's GIL): sequential, and 32 concurrent
   requests. Bare and forbear sessions alternate round by round; the table gives medians and
   the spread (interquartile range) of the per-round slowdown. A session with a no-op
   middleware runs in the same rounds: the floor any middleware costs.

Run ``python -m benchmarks.bench_aiohttp`` from the repository root (``--smoke`` for a tiny run
that only checks numbers come out, ``--json PATH`` to keep the figures).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from forbear_aiohttp import RetryMiddleware
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from benchmarks import _loopback
from benchmarks._loopback import Row
from benchmarks._loopback import iqr as _iqr
from benchmarks._loopback import ok_server as _server
from benchmarks.peers import forbear_scope

_URL_PATH = "/items?page=1"


# -- 1. in-process ---------------------------------------------------------------------------


def _ready_response(request: ClientRequest, loop: asyncio.AbstractEventLoop) -> ClientResponse:
    """A ``ClientResponse`` as the connector would hand it back: status 200, headers read."""
    response = ClientResponse(
        "GET",
        request.url,
        writer=None,
        continue100=None,
        timer=None,  # type: ignore[arg-type]
        request_info=request.request_info,
        traces=[],
        loop=loop,
        session=None,  # type: ignore[arg-type]
        stream_writer=SimpleNamespace(output_size=0),  # type: ignore[arg-type]
    )
    response.status = 200
    response._headers = CIMultiDictProxy(
        CIMultiDict({"Content-Type": "text/plain", "Content-Length": "2"})
    )
    return response


async def _per_request(call: Any, request: ClientRequest, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call(request)
    return (time.perf_counter() - start) / n * 1e6


def micro(rounds: int, n: int) -> list[Row]:
    """Microseconds per request, stub handler alone vs through `RetryMiddleware`."""

    async def run() -> Row:
        loop = asyncio.get_running_loop()
        request = ClientRequest("GET", URL("http://127.0.0.1:8000" + _URL_PATH), loop=loop)
        response = _ready_response(request, loop)

        async def handler(_: ClientRequest) -> ClientResponse:
            return response

        middleware = RetryMiddleware(**forbear_scope())

        async def through_forbear(req: ClientRequest) -> ClientResponse:
            return await middleware(req, handler)

        await _per_request(through_forbear, request, n)  # warm up
        bare, ours, added = [], [], []
        for index in range(rounds):
            pair = (handler, through_forbear) if index % 2 == 0 else (through_forbear, handler)
            figures = {call: await _per_request(call, request, n) for call in pair}
            bare.append(figures[handler])
            ours.append(figures[through_forbear])
            added.append(figures[through_forbear] - figures[handler])
        return Row(
            "in-process middleware",
            statistics.median(bare),
            statistics.median(ours),
            "µs/req",
            statistics.median(added),
            _iqr(added),
        )

    return [asyncio.run(run())]


# -- 2. end-to-end ---------------------------------------------------------------------------


async def _rate(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> float:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url) as response:
                await response.read()

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


async def _no_op(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    """A client middleware that only calls the handler: the floor any middleware costs."""
    return await handler(request)


def end_to_end(rounds: int, n: int) -> list[Row]:
    """Requests per second, bare session vs `RetryMiddleware`, alternating round by round.

    A session with a no-op middleware runs in the same rounds: what aiohttp's middleware
    machinery costs by itself, the floor no middleware can beat.
    """

    async def run(url: str, concurrency: int) -> dict[str, list[float]]:
        async with (
            aiohttp.ClientSession() as bare,
            aiohttp.ClientSession(middlewares=[_no_op]) as floor,
            aiohttp.ClientSession(middlewares=[RetryMiddleware(**forbear_scope())]) as ours,
        ):
            sessions = {"bare": bare, "floor": floor, "ours": ours}
            for session in sessions.values():
                await _rate(session, url, n // 4, concurrency)
            rates: dict[str, list[float]] = {name: [] for name in sessions}
            names = list(sessions)
            for index in range(rounds):
                # Rotate who goes first, so a drift in machine load favours none.
                shift = index % len(names)
                for name in names[shift:] + names[:shift]:
                    rates[name].append(await _rate(sessions[name], url, n, concurrency))
            return rates

    rows = []
    with _server() as base:
        url = base + _URL_PATH
        for mode, concurrency in (("sequential", 1), ("32 concurrent", 32)):
            rates = asyncio.run(run(url, concurrency))
            rows.append(_compare(f"loopback, {mode}", rates["bare"], rates["ours"]))
            rows.append(
                _compare(
                    f"loopback, {mode}: no-op middleware (floor)", rates["bare"], rates["floor"]
                )
            )
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
