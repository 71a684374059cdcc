"""The announced crawl: forbear's adapters against a token bucket that says its state.

The fault server's limiter (`forbear_testing.FaultServer.limit` with ``announce=``) allows
``rate`` requests a second with a burst of ``burst``, answers 429 with ``Retry-After`` when
empty, and announces the bucket's state on every answer, 200s and 429s, in one dialect per
run: ``ietf`` (``RateLimit-Policy`` + ``RateLimit``), ``draft`` (``RateLimit-Limit`` /
``-Remaining`` / ``-Reset``), ``x`` (``X-RateLimit-*``, the reset in Unix seconds) and
``openai`` (``x-ratelimit-*-requests``, the reset a duration). Each forbear transport adapter
(forbear-httpx async, forbear-aiohttp, forbear-requests threads, each with a fresh `HostGate`
and `RetryBudget`) crawls every URL once per dialect.

Reported per dialect and adapter: wall / ideal (ideal = N / rate), the 429s the server sent,
the 429s after the first response (to attempts sent after the client read the answer to its
first attempt: each adapter is built as in `benchmarks.peers`, with its inner transport, a
middleware or inner adapter noting when each attempt left and when its answer came), the
logical requests lost (final answer not 200, or an error), and the URLs not done when the run
hit ``time_limit``. The target: 0 429s after the first response, 0 lost.

The server runs in a child process of its own (`benchmarks._fault_child`), so it never shares
the clients' GIL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from benchmarks._drive import drive
from benchmarks._servers import FaultProcess
from benchmarks.peers import (
    CONNECTIONS,
    TIMEOUT,
    AsyncFetch,
    Candidate,
    Setup,
    SyncFetch,
    forbear_policy,
    forbear_scope,
)

#: The dialects, in the order run.
DIALECTS = ("ietf", "draft", "x", "openai")
PATH = "/announced/"


class AnnouncingServer(FaultProcess):
    """The fault server in a child process (`benchmarks._fault_child`), announcing its limit."""

    def fresh(self, *, rate: float, burst: int, dialect: str) -> None:
        """Forget every arrival; a full bucket announcing in ``dialect``."""
        self.command("reset")
        self.command("limit", path=PATH, rate=rate, burst=burst, announce=dialect)

    def refusals(self) -> int:
        """The 429s answered under `PATH` since `fresh`."""
        return int(self.statuses(PATH)[429])


class Attempts:
    """Every attempt an adapter sent: when it left, when its answer was read, its status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (sent, answered, status) per attempt, on the monotonic clock.
        self.seen: list[tuple[float, float, int]] = []

    def note(self, sent: float, status: int) -> None:
        answered = time.monotonic()
        with self._lock:
            self.seen.append((sent, answered, status))

    def late_429s(self) -> int:
        """429s to attempts sent after the first answer to any attempt was read."""
        if not self.seen:
            return 0
        first = min(answered for _, answered, _ in self.seen)
        return sum(1 for sent, _, status in self.seen if status == 429 and sent > first)


def _httpx(attempts: Attempts) -> Callable[[Setup], Any]:
    @contextlib.asynccontextmanager
    async def open_(setup: Setup) -> AsyncIterator[AsyncFetch]:
        import httpx
        from forbear_httpx import RetryTransport

        inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=CONNECTIONS))

        class Recorded(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                sent = time.monotonic()
                response = await inner.handle_async_request(request)
                attempts.note(sent, response.status_code)
                return response

            async def aclose(self) -> None:
                await inner.aclose()

        transport = RetryTransport(Recorded(), policy=forbear_policy(setup), **forbear_scope())
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:

            async def fetch(url: str) -> int:
                return int((await client.get(url)).status_code)

            yield fetch

    return open_


def _aiohttp(attempts: Attempts) -> Callable[[Setup], Any]:
    @contextlib.asynccontextmanager
    async def open_(setup: Setup) -> AsyncIterator[AsyncFetch]:
        import aiohttp
        from forbear_aiohttp import RetryMiddleware

        async def recorded(request: Any, handler: Any) -> Any:
            sent = time.monotonic()
            response = await handler(request)
            attempts.note(sent, response.status)
            return response

        retry = RetryMiddleware(policy=forbear_policy(setup), **forbear_scope())
        async with aiohttp.ClientSession(
            middlewares=[retry, recorded],  # the first is the outermost: one note per attempt
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
        ) as session:

            async def fetch(url: str) -> int:
                async with session.get(url) as response:
                    await response.read()
                    return int(response.status)

            yield fetch

    return open_


def _requests(attempts: Attempts) -> Callable[[Setup], Any]:
    @contextlib.contextmanager
    def open_(setup: Setup) -> Iterator[SyncFetch]:
        import requests
        from forbear_requests import RetryAdapter
        from requests.adapters import HTTPAdapter

        class Recorded(HTTPAdapter):
            def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
                sent = time.monotonic()
                response = super().send(request, *args, **kwargs)
                attempts.note(sent, response.status_code)
                return response

        adapter = RetryAdapter(
            Recorded(pool_connections=1, pool_maxsize=CONNECTIONS),
            policy=forbear_policy(setup),
            **forbear_scope(),
        )
        with requests.Session() as session:
            session.mount("http://", adapter)

            def fetch(url: str) -> int:
                return int(session.get(url, timeout=TIMEOUT).status_code)

            yield fetch

    return open_


#: The adapters run: a `peers.CANDIDATES` name and how to open it with its attempts noted.
ADAPTERS: dict[str, Callable[[Attempts], Callable[[Setup], Any]]] = {
    "forbear-httpx (async)": _httpx,
    "forbear-aiohttp": _aiohttp,
    "forbear-requests (threads)": _requests,
}


def run(
    candidates: Sequence[Candidate],
    server: AnnouncingServer,
    *,
    urls: int,
    concurrency: int,
    rate: float,
    burst: int,
    time_limit: float,
    log: Any = print,
) -> dict[str, Any]:
    """Crawl ``urls`` URLs with every forbear adapter in ``candidates``, once per dialect."""
    ideal = urls / rate
    chosen = [c for c in candidates if c.name in ADAPTERS and c.installed]
    rows: list[dict[str, Any]] = []
    for dialect in DIALECTS:
        for candidate in chosen:
            server.fresh(rate=rate, burst=burst, dialect=dialect)
            targets = [f"{server.url}{PATH}{dialect}/{index}" for index in range(urls)]
            attempts = Attempts()
            noted = dataclasses.replace(candidate, open=ADAPTERS[candidate.name](attempts))
            result = drive(noted, Setup(), targets, concurrency=concurrency, time_limit=time_limit)
            refused = server.refusals()
            late = attempts.late_429s()
            lost = len(result.statuses) - result.count(200)
            rows.append(
                {
                    "dialect": dialect,
                    "name": candidate.name,
                    "wall_s": result.wall,
                    "wall_over_ideal": result.wall / ideal,
                    "rejections_429": refused,
                    "rejections_429_after_first": late,
                    "attempts_noted": len(attempts.seen),
                    "lost": lost,
                    "unfinished": result.unfinished,
                    "errors": dict(result.errors),
                }
            )
            log(
                f"  announced {dialect:6} {candidate.name:28} {result.wall:6.2f} s "
                f"({result.wall / ideal:5.2f}x ideal), 429s {refused:4} "
                f"({late} after the first response), lost {lost}"
                + (f", cut off with {result.unfinished} not done" if result.unfinished else "")
            )
    return {
        "urls": urls,
        "concurrency": concurrency,
        "rate": rate,
        "burst": burst,
        "ideal_s": ideal,
        "time_limit_s": time_limit,
        "dialects": list(DIALECTS),
        "rows": rows,
    }


def markdown(data: dict[str, Any]) -> str:
    """The run as a Markdown table."""
    lines = [
        f"{data['urls']} URLs at concurrency {data['concurrency']}, {data['rate']:g} r/s burst "
        f"{data['burst']}, ideal {data['ideal_s']:.1f} s (a run is cut off at "
        f"{data['time_limit_s']:g} s).",
        "",
        "| dialect | adapter | wall / ideal | 429s | 429s after the first response | lost "
        "| not done |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        lines.append(
            f"| {row['dialect']} | {row['name']} | {row['wall_over_ideal']:.2f} "
            f"| {row['rejections_429']} | {row['rejections_429_after_first']} | {row['lost']} "
            f"| {row['unfinished']} |"
        )
    return "\n".join(lines)
