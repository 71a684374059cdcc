"""A deterministic crawl on a virtual clock: N clients run the core's flow against a simulated
rate limiter. No sockets, no real time.

Limiters: a token bucket (nginx ``limit_req`` style; its rate may change mid-crawl), a fixed
window, a cap on requests in flight, or none at all. Each may announce itself in a rate-limit
dialect (`DIALECTS`) on every response, or say nothing but ``Retry-After`` on its 429s.

A send travels for half the latency, is judged by the limiter on arrival, and its answer
travels back for the other half (a send in flight counts against an in-flight cap until then).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate

from forbear_testing._limits import TokenBucket as _FaultTokenBucket
from forbear_testing._limits import bucket_headers, retry_after_seconds

from forbear import HostGate, Outcome, Policy, Retrier, RetryBudget
from forbear.flow import Replayable, Send, Sleep

#: The Unix time the virtual clock's zero stands for (the servers' ``Date``).
EPOCH = 1_767_225_600.0

#: The dialects a simulated server can announce its limit in.
DIALECTS = ("ietf", "draft", "x", "github", "discord", "openai")


class VirtualClock:
    """Monotonic time that only moves when the simulation says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        """The Unix time of the virtual clock."""
        return EPOCH + self.now


@dataclass
class Limiter:
    """What a simulated server limits by. Subclasses say whether a request is admitted."""

    def admit(self, now: float) -> bool:
        raise NotImplementedError

    def depart(self, now: float) -> None:
        """A request admitted earlier has been answered."""

    def announce(self, now: float) -> tuple[int, int, int, float] | None:
        """(quota, window seconds, remaining, seconds to reset), or None: nothing to say."""
        return None


@dataclass
class TokenBucket(Limiter):
    """``rate`` tokens a second, at most ``burst`` banked; ``changes`` = [(at, new rate)]."""

    rate: float
    burst: int
    changes: list[tuple[float, float]] = field(default_factory=list)
    tokens: float = field(init=False)
    updated: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.changes = sorted(self.changes)

    def _refill(self, now: float) -> None:
        while self.changes and self.changes[0][0] <= now:
            at, rate = self.changes.pop(0)
            self.tokens = min(self.burst, self.tokens + (at - self.updated) * self.rate)
            self.updated, self.rate = at, rate
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def admit(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def announce(self, now: float) -> tuple[int, int, int, float] | None:
        self._refill(now)
        # The rate over one second; the reset is when the bucket is full again.
        return (round(self.rate), 1, int(self.tokens), (self.burst - self.tokens) / self.rate)


@dataclass
class FaultBucket(Limiter):
    """The fault server's token bucket (`forbear_testing`), announced as that server does.

    ``rate`` tokens a second, ``1 + burst`` at most; every answer carries
    `forbear_testing._limits.bucket_headers` in ``dialect`` (``ietf``, ``draft``, ``x``,
    ``openai``) and a whole-second ``Date`` (as uvicorn's), and a 429 the server's
    ``Retry-After``: the seconds until a token, rounded up. What a real-server crawl meets,
    on the virtual clock.
    """

    rate: float
    burst: int
    dialect: str
    bucket: _FaultTokenBucket = field(init=False)
    #: The seconds until a token, as the last refused request was told.
    wait: float = 0.0

    def __post_init__(self) -> None:
        self.bucket = _FaultTokenBucket(self.rate, self.burst, now=0.0)

    def admit(self, now: float) -> bool:
        self.wait = self.bucket.take(now)
        return self.wait == 0.0

    def headers(self, clock: VirtualClock) -> dict[str, str]:
        """The bucket's state now in its dialect, with the server's ``Date``."""
        headers = dict(bucket_headers(self.dialect, self.bucket, now=clock.now, wall=clock.wall()))
        headers["Date"] = formatdate(math.floor(clock.wall()), usegmt=True)
        return headers


@dataclass
class FixedWindow(Limiter):
    """At most ``quota`` requests in each window of ``window`` seconds (counted from zero)."""

    quota: int
    window: float
    index: int = -1
    count: int = 0

    def _roll(self, now: float) -> None:
        index = int(now // self.window)
        if index != self.index:
            self.index, self.count = index, 0

    def admit(self, now: float) -> bool:
        self._roll(now)
        if self.count < self.quota:
            self.count += 1
            return True
        return False

    def announce(self, now: float) -> tuple[int, int, int, float] | None:
        self._roll(now)
        reset = (self.index + 1) * self.window - now
        return (self.quota, round(self.window), self.quota - self.count, reset)


@dataclass
class InFlight(Limiter):
    """At most ``limit`` requests in flight; announces a ``concurrent-requests`` quota."""

    limit: int
    flying: int = 0

    def admit(self, now: float) -> bool:
        if self.flying < self.limit:
            self.flying += 1
            return True
        return False

    def depart(self, now: float) -> None:
        self.flying -= 1


@dataclass
class Unlimited(Limiter):
    """Admits everything and announces nothing."""

    def admit(self, now: float) -> bool:
        return True


def announcement(
    dialect: str, limiter: Limiter, clock: VirtualClock
) -> dict[str, str]:  # pragma: no cover - exercised by the crawl tests
    """The headers announcing ``limiter``'s state now, in ``dialect``."""
    if isinstance(limiter, InFlight):
        return {"RateLimit-Policy": f'"inflight";q={limiter.limit};qu="concurrent-requests"'}
    said = limiter.announce(clock.now)
    if said is None:
        return {}
    quota, window, remaining, reset = said
    # A bucket a fraction of a second from full says 0; a window's end is never said sooner.
    whole = math.floor(reset) if isinstance(limiter, TokenBucket) else math.ceil(reset - 1e-9)
    if dialect == "ietf":
        return {
            "RateLimit-Policy": f'"default";q={quota};w={window}',
            "RateLimit": f'"default";r={remaining};t={whole}',
        }
    if dialect == "draft":
        return {
            "RateLimit-Limit": f"{quota}, {quota};w={window}",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(whole),
        }
    if dialect == "x":
        return {
            "X-RateLimit-Limit": str(quota),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(whole),
        }
    if dialect == "github":
        return {
            "Date": formatdate(clock.wall(), usegmt=True),
            "X-RateLimit-Limit": str(quota),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(clock.wall() + reset)),
        }
    if dialect == "discord":
        return {
            "X-RateLimit-Limit": str(quota),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{clock.wall() + reset:.3f}",
            "X-RateLimit-Reset-After": f"{math.ceil(reset * 1000) / 1000:.3f}",
            "X-RateLimit-Bucket": "abcd1234",
        }
    if dialect == "openai":
        if isinstance(limiter, TokenBucket):  # the bucket's size, whole again at the reset
            quota = limiter.burst
        return {
            "x-ratelimit-limit-requests": str(quota),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{math.ceil(reset * 1000)}ms",
        }
    raise ValueError(f"unknown dialect {dialect!r}")


@dataclass
class Server:
    """Answers 200 when its limiter admits a request, else 429 with ``Retry-After``."""

    limiter: Limiter
    clock: VirtualClock
    retry_after: str = "1"
    #: Extra headers sent with every 429 (e.g. ``RateLimit-Policy``).
    limit_headers: dict[str, str] = field(default_factory=dict)
    #: The dialect every response announces the limit in, or None.
    dialect: str | None = None
    arrivals: int = 0
    rejected: int = 0
    #: (time, status) of every arrival, in order.
    log: list[tuple[float, int]] = field(default_factory=list)

    def handle(self) -> tuple[int, dict[str, str]]:
        now = self.clock.now
        self.arrivals += 1
        admitted = self.limiter.admit(now)
        retry_after = self.retry_after
        if isinstance(self.limiter, FaultBucket):
            headers = self.limiter.headers(self.clock)
            retry_after = str(retry_after_seconds(self.limiter.wait))
        elif self.dialect is None:
            headers = {}
        else:
            headers = announcement(self.dialect, self.limiter, self.clock)
        self.log.append((now, 200 if admitted else 429))
        if admitted:
            return 200, headers
        self.rejected += 1
        return 429, {"Retry-After": retry_after, **self.limit_headers, **headers}

    def rejected_after(self, moment: float) -> int:
        """429s answered after ``moment``."""
        return sum(1 for at, status in self.log if status == 429 and at > moment)


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
    server: Server | None = None
    #: The most requests in flight at once, at the server.
    most_in_flight: int = 0
    #: 429s to sends made after the crawl read its first answer (what no announcement read
    #: could have prevented comes before).
    late_429s: int = 0

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
            f"{self.ratio:.3f}x ideal, {self.rejected} 429s "
            f"({100 * self.rejected_share:.2f}%), lost {self.lost}, {self.arrivals} sends"
        )


class _Unconfirmed:
    """A `HostGate` without `HostGate.generation` and `HostGate.confirm` (what a gate of
    one's own may lack): the flow keeps every slot it waited out."""

    def __init__(self, gate: HostGate | None) -> None:
        assert gate is not None
        self.gate = gate
        self.key = gate.key
        self.free = gate.free
        self.delay = gate.delay
        self.succeeded = gate.succeeded
        self.observe = gate.observe


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
    limiter: Limiter | None = None,
    dialect: str | None = None,
    gate: HostGate | None = None,
    clock: VirtualClock | None = None,
    ideal: float | None = None,
    confirm: bool = True,
) -> CrawlResult:
    """Run the crawl to completion and report what the server saw.

    The limiter defaults to a token bucket of ``rate`` and ``burst``; ``ideal`` (the shortest
    possible crawl) to ``requests / rate``. Pass a ``gate`` (and its ``clock``) to start from
    what an earlier crawl taught it. ``confirm=False`` hides the gate's `HostGate.confirm`
    from the flow: a send woken on a slot keeps it, whatever the gate learned meanwhile.
    """
    clock = clock or VirtualClock()
    limiter = limiter or TokenBucket(rate, burst)
    server = Server(limiter, clock, retry_after, dict(limit_headers or {}), dialect)
    if gate is None and use_gate:
        gate = HostGate(clock=clock)
    rng = random.Random(seed)
    retrier = Retrier(
        policy=policy or Policy(max_wait=60.0),
        gate=(gate if confirm else _Unconfirmed(gate)) if use_gate else None,
        budget=RetryBudget(clock=clock),
        clock=clock,
        wall=clock.wall,
        rng=random.Random(rng.random()),
    )
    url = "http://limited.test/item"
    key = "http://limited.test"
    events: list[tuple[float, int, Iterator[float]]] = []
    order = itertools.count()
    pending = iter(range(requests))
    succeeded = lost = early = flying = most = 0
    started = clock.now
    first_answer = math.inf
    #: (sent at, status) of every send.
    sends: list[tuple[float, int]] = []

    def schedule(at: float, step: Iterator[float]) -> None:
        heapq.heappush(events, (at, next(order), step))

    def exchange() -> Generator[float, None, tuple[int, dict[str, str]]]:
        """One send: half the latency there, judged on arrival, half back (yields the times to
        resume at; returns the status and headers)."""
        nonlocal flying, most, first_answer
        sent_at = clock.now
        there = latency * (0.5 + rng.random()) / 2
        yield clock.now + there
        status, headers = server.handle()
        flying += 1
        most = max(most, flying)
        yield clock.now + there
        flying -= 1
        sends.append((sent_at, status))
        first_answer = min(first_answer, clock.now)
        if status == 200:
            limiter.depart(clock.now)
        return status, headers

    def worker() -> Iterator[float]:  # one per client: yields the time to resume at
        nonlocal succeeded, lost, early
        for _ in pending:
            not_before = clock.now
            value: object = None
            if gate is not None and gate.free(key):
                # The runners' first send when the gate holds nothing back: no slot asked for,
                # the flow started from its answer (a success only counts it).
                started = clock.now
                status, headers = yield from exchange()
                if status != 200:
                    not_before = clock.now + float(headers["Retry-After"])
                sent = ((status, headers), None, Outcome.response(status, headers))
                flow = retrier.flow(
                    "GET", url, {}, origin="http://limited.test", sent=sent, started=started
                )
            else:
                flow = retrier.flow("GET", url, {}, origin="http://limited.test")
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
                    status, headers = yield from exchange()
                    if status == 429:
                        not_before = clock.now + float(headers["Retry-After"])
                    value = ((status, headers), None, Outcome.response(status, headers))
            if response[0] == 200:
                succeeded += 1
            else:
                lost += 1

    for _ in range(concurrency):
        schedule(clock.now, worker())
    while events:
        at, _, step = heapq.heappop(events)
        clock.now = max(clock.now, at)
        try:
            resume = next(step)
        except StopIteration:
            continue
        schedule(resume, step)
    return CrawlResult(
        clock.now - started,
        succeeded,
        lost,
        server.arrivals,
        server.rejected,
        early,
        requests / rate if ideal is None else ideal,
        gate,
        server,
        most,
        sum(1 for at, status in sends if status == 429 and at > first_answer),
    )


@dataclass
class OutageResult:
    """What an always-failing origin saw from ``requests`` logical requests."""

    requests: int
    arrivals: int
    elapsed: float

    @property
    def amplification(self) -> float:
        """Arrivals per logical request (1.0: no retries at all)."""
        return self.arrivals / self.requests


def outage(
    *,
    requests: int = 200,
    concurrency: int = 20,
    latency: float = 0.001,
    failing: int | None = None,
    budget: RetryBudget | None = None,
    seed: int = 1,
) -> OutageResult:
    """``requests`` GETs at ``concurrency`` to an origin answering 503 without a wait (the
    first ``failing`` arrivals only, when given: a blip), with the benchmark's fast backoff
    (10 ms doubling, capped at 80 ms) and a `RetryBudget` on the virtual clock."""
    from forbear import Backoff

    clock = VirtualClock()
    rng = random.Random(seed)
    retrier = Retrier(
        policy=Policy(backoff=Backoff(initial=0.01, max=0.08)),
        gate=None,
        budget=budget if budget is not None else RetryBudget(clock=clock),
        clock=clock,
        wall=clock.wall,
        rng=random.Random(rng.random()),
    )
    events: list[tuple[float, int, Iterator[float]]] = []
    order = itertools.count()
    pending = iter(range(requests))
    arrivals = 0

    def worker() -> Iterator[float]:
        nonlocal arrivals
        for _ in pending:
            flow = retrier.flow("GET", "http://down.test/x", {}, origin="http://down.test")
            value: object = None
            while True:
                try:
                    effect = flow.send(value)
                except StopIteration:
                    break
                value = None
                if isinstance(effect, Sleep):
                    yield clock.now + effect.seconds
                elif isinstance(effect, Replayable):
                    value = True
                elif isinstance(effect, Send):
                    yield clock.now + latency * (0.5 + rng.random())
                    arrivals += 1
                    status = 503 if failing is None or arrivals <= failing else 200
                    value = (status, None, Outcome.response(status, {}))

    for _ in range(concurrency):
        heapq.heappush(events, (0.0, next(order), worker()))
    while events:
        at, _, step = heapq.heappop(events)
        clock.now = max(clock.now, at)
        try:
            resume = next(step)
        except StopIteration:
            continue
        heapq.heappush(events, (resume, next(order), step))
    return OutageResult(requests, arrivals, clock.now)
