"""Running many logical requests through one candidate: bounded concurrency, bounded time.

`drive` opens a `peers.Candidate` with a `peers.Setup`, sends one logical request per URL with
``concurrency`` asyncio tasks (async clients) or threads (sync clients), and returns a `Run`:
the final status of each request (None when it raised), its latency, the wall time. A run
that passes ``time_limit`` stops taking new URLs; the ones never sent count as not done.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from benchmarks.peers import AsyncFetch, Candidate, Setup, SyncFetch


@dataclass
class Run:
    """What one candidate's run of a scenario gave."""

    #: Final status of each logical request that finished (None: it raised).
    statuses: list[int | None] = field(default_factory=list)
    #: Seconds from the first send to the final answer, per finished request.
    latencies: list[float] = field(default_factory=list)
    #: Exception type names of the requests that raised.
    errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    #: Logical requests never finished (the run hit its time limit).
    unfinished: int = 0

    def record(self, status: int | None, latency: float, error: str | None = None) -> None:
        self.statuses.append(status)
        self.latencies.append(latency)
        if error is not None:
            self.errors[error] += 1

    def count(self, status: int) -> int:
        """Logical requests whose final answer was ``status``."""
        return sum(1 for got in self.statuses if got == status)

    @property
    def median_latency(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


async def _drive_async(fetch: AsyncFetch, urls: Sequence[str], concurrency: int, run: Run) -> None:
    pending = iter(urls)

    async def worker() -> None:
        for url in pending:
            start = time.perf_counter()
            try:
                status: int | None = await fetch(url)
                error = None
            except Exception as exc:
                status, error = None, type(exc).__name__
            run.record(status, time.perf_counter() - start, error)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _drive_threads(fetch: SyncFetch, urls: Sequence[str], concurrency: int, deadline: float) -> Run:
    run = Run()
    pending = iter(urls)
    lock = threading.Lock()

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                url = next(pending, None)
            if url is None:
                return
            start = time.perf_counter()
            try:
                status: int | None = fetch(url)
                error = None
            except Exception as exc:
                status, error = None, type(exc).__name__
            with lock:
                run.record(status, time.perf_counter() - start, error)

    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return run


def drive(
    candidate: Candidate,
    setup: Setup,
    urls: Sequence[str],
    *,
    concurrency: int,
    time_limit: float,
) -> Run:
    """One logical request per URL through ``candidate``, ``concurrency`` at a time."""
    if candidate.is_async:

        async def main() -> Run:
            run = Run()
            async with candidate.open(setup) as fetch:
                start = time.perf_counter()
                # On timeout the tasks are cancelled; what finished by then is kept.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        _drive_async(fetch, urls, concurrency, run), timeout=time_limit
                    )
                run.wall = time.perf_counter() - start
            return run

        run = asyncio.run(main())
    else:
        with candidate.open(setup) as fetch:
            start = time.perf_counter()
            run = _drive_threads(fetch, urls, concurrency, time.monotonic() + time_limit)
            run.wall = time.perf_counter() - start
    run.unfinished = len(urls) - len(run.statuses)
    return run
