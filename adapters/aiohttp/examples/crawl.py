"""Crawl 1,000 URLs with a bounded pool of tasks and one shared `RetryMiddleware`.

Every task sends through the same middleware, so they share one `HostGate`: when the host
answers 429, the gate paces every task to the rate the server allows instead of letting each
one find the limit by itself. Run it against forbear.testing's fault server, rate-limited
like nginx ``limit_req`` (needs ``pip install "forbear[testing]" forbear-aiohttp``)::

    python adapters/aiohttp/examples/crawl.py                      # 1,000 URLs, 50 tasks
    python adapters/aiohttp/examples/crawl.py --urls 200 --tasks 20 --rate 100 --burst 5
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from forbear import Action, Event
from forbear_aiohttp import RetryMiddleware


@dataclass
class Report:
    """What a crawl came to."""

    #: Final statuses, counted.
    statuses: Counter[int] = field(default_factory=Counter)
    #: Bytes of page bodies read.
    size: int = 0
    #: Answers that were retried, by status (a 429 here is one the gate did not prevent).
    retried: Counter[int] = field(default_factory=Counter)
    #: Seconds the crawl took.
    elapsed: float = 0.0

    def summary(self) -> str:
        """One paragraph for a terminal."""
        pages = sum(self.statuses.values())
        return (
            f"{pages} pages in {self.elapsed:.2f}s ({pages / max(self.elapsed, 1e-9):.0f}/s), "
            f"final statuses {dict(sorted(self.statuses.items()))}, {self.size} bytes; "
            f"retried answers {dict(sorted(self.retried.items()))}"
        )


async def crawl(
    urls: Sequence[str],
    *,
    tasks: int = 50,
    timeout: aiohttp.ClientTimeout | None = None,
    **retry_options: Any,
) -> Report:
    """Fetch every URL with at most ``tasks`` requests in flight, all through one middleware.

    ``retry_options`` go to `RetryMiddleware` (``gate=None`` shows the crawl without a gate).
    """
    report = Report()

    def on_event(event: Event) -> None:
        if event.action is Action.RETRY and event.status is not None:
            report.retried[event.status] += 1

    retry = RetryMiddleware(on_event=on_event, **retry_options)
    # Per attempt: connect and read bounds. The whole call is left to the policy: back-off
    # and Retry-After waits would count against a `total`.
    timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                url = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            async with session.get(url) as response:
                report.size += len(await response.read())
                report.statuses[response.status] += 1

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=tasks)
    async with aiohttp.ClientSession(
        middlewares=[retry], timeout=timeout, connector=connector
    ) as session:
        await asyncio.gather(*(worker(session) for _ in range(tasks)))
    report.elapsed = time.monotonic() - started
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    """Serve a rate-limited fault server on loopback and crawl it."""
    from forbear_testing import serve

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=1000, help="pages to fetch")
    parser.add_argument("--tasks", type=int, default=50, help="requests in flight at most")
    parser.add_argument("--rate", type=float, default=200.0, help="the server's requests/s")
    parser.add_argument("--burst", type=int, default=10, help="the server's burst")
    parser.add_argument("--no-gate", action="store_true", help="each task on its own")
    args = parser.parse_args(argv)
    with serve() as server:
        server.limit("/pages/", rate=args.rate, burst=args.burst, prefix=True)
        urls = [f"{server.url}/pages/{number}" for number in range(args.urls)]
        options: dict[str, Any] = {"gate": None} if args.no_gate else {}
        report = asyncio.run(crawl(urls, tasks=args.tasks, **options))
    gate = "no gate" if args.no_gate else "one shared gate"
    print(f"server limit {args.rate:g}/s burst {args.burst}, {args.tasks} tasks, {gate}:")
    print(report.summary())
    return report


if __name__ == "__main__":
    main()
