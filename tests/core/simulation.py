"""A deterministic crawl on a virtual clock: N clients run the core's flow against a
simulated token-bucket limiter (nginx ``limit_req`` style). No sockets, no real time."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from forbear import HostGate, Outcome, Policy, Replayable, Retrier, RetryBudget, Send, Sleep


class VirtualClock:
    """Monotonic time that only moves when the simulation says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TokenBucketServer:
    """Answers 200 while its bucket has a token, else 429 with ``Retry-After``."""

    rate: float
    burst: int
    clock: VirtualClock
    retry_after: str = "1"
    #: Extra headers sent with every 429 (e.g. ``RateLimit-Policy``).
    limit_headers: dict[str, str] = field(default_factory=dict)
    tokens: float = field(init=False)
    updated: float = 0.0
    arrivals: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def handle(self) -> tuple[int, dict[str, str]]:
        now = self.clock.now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.arrivals += 1
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 200, {}
        self.rejected += 1
        return 429, {"Retry-After": self.retry_after, **self.limit_headers}


@dataclass
class CrawlResult:
    elapsed: float
    succeeded: int
    lost: int
    arrivals: int
    rejected: int
    early_retries: int
    #: The shortest possible crawl: requests / server rate.
    ideal: float = 0.0
    gate: HostGate | None = None

    @property
    def ratio(self) -> float:
        """Elapsed time as a multiple of the ideal."""
        return self.elapsed / self.ideal

    @property
    def rejected_share(self) -> float:
        """The fraction of sends the server answered with 429."""
        return self.rejected / self.arrivals

    def __str__(self) -> str:
        return (
            f"{self.ratio:.3f}x ideal, {100 * self.rejected_share:.2f}% 429, "
            f"lost {self.lost}, {self.arrivals} sends"
        )


def crawl(
    *,
    requests: int = 2000,
    concurrency: int = 50,
    rate: float = 400.0,
    burst: int = 20,
    latency: float = 0.001,
    use_gate: bool = True,
    seed: int = 1,
    policy: Policy | None = None,
    retry_after: str = "1",
    limit_headers: dict[str, str] | None = None,
) -> CrawlResult:
    """Run the crawl to completion and report what the server saw."""
    clock = VirtualClock()
    server = TokenBucketServer(rate, burst, clock, retry_after, dict(limit_headers or {}))
    gate = HostGate(clock=clock) if use_gate else None
    rng = random.Random(seed)
    retrier = Retrier(
        policy=policy or Policy(max_wait=60.0),
        gate=gate,
        budget=RetryBudget(clock=clock),
        clock=clock,
        rng=random.Random(rng.random()),
    )
    url = "http://limited.test/item"
    events: list[tuple[float, int, Iterator[float]]] = []
    order = itertools.count()
    pending = iter(range(requests))
    succeeded = lost = early = 0

    def schedule(at: float, step: Iterator[float]) -> None:
        heapq.heappush(events, (at, next(order), step))

    def worker() -> Iterator[float]:  # one per client: yields the time to resume at
        nonlocal succeeded, lost, early
        for _ in pending:
            flow = retrier.flow("GET", url, {}, origin="http://limited.test")
            not_before = clock.now
            value: object = None
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration as stop:
                    response = stop.value
                    break
                value = None
                if isinstance(effect, Sleep):
                    yield clock.now + effect.seconds
                elif isinstance(effect, Replayable):
                    value = True
                elif isinstance(effect, Send):
                    if clock.now < not_before - 1e-9:
                        early += 1
                    yield clock.now + latency * (0.5 + rng.random())
                    status, headers = server.handle()
                    if status == 429:
                        not_before = clock.now + float(server.retry_after)
                    value = ((status, headers), None, Outcome.response(status, headers))
            if response[0] == 200:
                succeeded += 1
            else:
                lost += 1

    for _ in range(concurrency):
        schedule(0.0, worker())
    while events:
        at, _, step = heapq.heappop(events)
        clock.now = max(clock.now, at)
        try:
            resume = next(step)
        except StopIteration:
            continue
        schedule(resume, step)
    return CrawlResult(
        clock.now, succeeded, lost, server.arrivals, server.rejected, early, requests / rate, gate
    )
