"""Limits that change under a running crawl, and limiters of other shapes, on every adapter.

Each case runs one crawl per adapter (httpx sync, httpx on asyncio and on trio, requests,
aiohttp; forbear-backoff takes no gate per request and is left out), all five at once against
the fault server, each on a path of its own with its own limiter, `HostGate` and `RetryBudget`
(the defaults a user gets), 8 workers at a time. Every logical request has a URL of its own,
so the server's log says exactly how often each was sent and what it was answered: "lost" is
a request whose final answer was not 200 (or that no 200 reached the server for), "429s" are
counted in the server's log.

Rates are the issue's 400/100 r/s scaled down ten times (40/10 r/s), so that five crawls fit
on two cores next to the server; the probe's growth is relative, so the time to find a rate
four times higher does not depend on the scale.

Figures measured (2 cores, five adapters at once; each cell the range over the adapters):

| case | requests per adapter | lost | 429s (or 503s) at the server |
|---|---|---|---|
| drop 40 -> 10 r/s at 1.5 s | 85 | 0 | 3-9 after the drop (20 runs), most within 0.7 s of it |
| rise 10 -> 40 r/s at 1.5 s | 190 | 0 | 3-4 after the rise; 36 r/s reached 4.5-6.2 s after it |
| fixed window 20 per 2 s, reset on 429 | 40 | 0 | 5-8 (at most one per worker per window) |
| fixed window 20 per 2 s, announced | 40 | 0 | 0; paced at 5.8-6.8 r/s of 10: 5.1-5.3 s |
| at most 4 in flight, 50 ms each | 60 | 0 | 3-6 |
| 503 + Retry-After past 20 r/s | 40 | 0 | 6-13 503s |
| per API key: alice 10 r/s, bob 200 | 30 + 30 | 0 | alice 7-14, bob 0 (done in 0.06-0.12 s) |

The bounds asserted below are looser than these figures (the gate's start-up is being reworked
and CI machines are slower), and each is stated next to its assertion.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from forbear_testing import Arrival, FaultServer

from forbear import HostGate, Policy, RetryBudget, origin_of

from .drivers import SCOPED_DRIVERS, Answer, Driver, Options, Session, crawl, scoped

#: The crawler's workers per adapter.
WORKERS = 8
#: The default policy: 5 attempts, Retry-After honoured, nothing lost unless forbear gives up.
POLICY = Policy()


@dataclass
class Run:
    """One adapter's crawl: its answers, what reached the server, and its gate."""

    driver: Driver
    path: str
    answers: list[Answer]
    arrivals: list[Arrival]
    gate: HostGate
    started: float
    ended: float

    def lost(self) -> list[str]:
        """The URLs whose request did not end in a 200 (by the client or by the server's log)."""
        bad = [str(answer.status or answer.kind) for answer in self.answers if answer.status != 200]
        ok_paths = [a.path for a in self.arrivals if a.status == 200]
        missing = len(self.answers) - len(set(ok_paths))
        doubled = len(ok_paths) - len(set(ok_paths))
        return bad + ["no 200 at the server"] * missing + ["two 200s"] * doubled

    def refused(self, status: int = 429, *, since: float = float("-inf")) -> int:
        """Answers of ``status`` the server sent from monotonic ``since`` on."""
        return sum(1 for a in self.arrivals if a.status == status and a.time >= since)

    def figures(self, **extra: object) -> str:
        """One line of figures for this run (shown with ``pytest -s``)."""
        statuses: dict[int | None, int] = {}
        for arrival in self.arrivals:
            statuses[arrival.status] = statuses.get(arrival.status, 0) + 1
        rate = self.gate.rates()
        shown = " ".join(f"{k}={v}" for k, v in extra.items())
        return (
            f"{self.driver.name:14} sent={len(self.arrivals)} statuses={statuses} "
            f"took={self.ended - self.started:.2f}s rates={rate} {shown}"
        )

    def ok_times(self) -> list[float]:
        """When each 200 was answered, sorted (monotonic)."""
        return sorted(a.time for a in self.arrivals if a.status == 200)


def run_all(
    server: FaultServer,
    case: str,
    count: int,
    setup: Callable[[str], None],
    *,
    during: Callable[[str], None] | None = None,
    gate: Callable[[], HostGate] = HostGate,
    query: str = "",
    drivers: tuple[Driver, ...] = SCOPED_DRIVERS,
) -> Iterator[Run]:
    """One crawl of ``count`` URLs per adapter, all at once; ``setup(path)`` sets its limiter
    up first, ``during(path)`` runs on a thread of its own beside the crawl."""
    runs: dict[str, Run] = {}
    errors: list[BaseException] = []

    def one(driver: Driver) -> None:
        path = f"/{case}/{driver.name}/"
        own_gate = gate()
        try:
            with scoped(driver, Options(POLICY), gate=own_gate, budget=RetryBudget()) as session:
                urls = [f"{server.url}{path}{index}{query}" for index in range(count)]
                helper = None if during is None else threading.Thread(target=during, args=(path,))
                started = time.monotonic()
                if helper is not None:
                    helper.start()
                answers = crawl(session, urls, WORKERS)
                ended = time.monotonic()
                if helper is not None:
                    helper.join()
        except BaseException as exc:
            errors.append(exc)
            return
        arrivals = [a for a in server.arrivals() if a.path.startswith(path)]
        runs[driver.name] = Run(driver, path, answers, arrivals, own_gate, started, ended)

    for driver in drivers:
        setup(f"/{case}/{driver.name}/")
    threads = [threading.Thread(target=one, args=(driver,)) for driver in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return iter(runs[driver.name] for driver in drivers)


def first_reaching(times: list[float], since: float, rate: float) -> float | None:
    """The first moment from ``since`` on that begins a second holding ``rate`` successes."""
    for index, moment in enumerate(times):
        if moment < since:
            continue
        ahead = index
        while ahead < len(times) and times[ahead] < moment + 1.0:
            ahead += 1
        if ahead - index >= rate:
            return moment
    return None


# -- the limit changes under a running crawl -------------------------------------------------

#: Seconds into the crawl when the server's limit changes.
CHANGE_AT = 1.5


def test_limit_drops_under_a_running_crawl(fault_server: FaultServer) -> None:
    """40 -> 10 r/s 1.5 s into the crawl: the pacer follows it down within a handful of 429s
    (measured 3-9 after the drop over 20 runs, 4-32 before a run of 429s went on across
    Retry-After and measured its last half second; bound 20), nothing lost. The moment of the
    drop is swept on the virtual clock in ``tests/core/test_crawl_drops.py``."""
    before, after = 40.0, 10.0
    count = int(before * CHANGE_AT + after * 2.5)
    changed: dict[str, float] = {}

    def drop(path: str) -> None:
        time.sleep(CHANGE_AT)  # the server's limit changes this far into the crawl
        changed[path] = time.monotonic()
        fault_server.set_rate(path, after)

    runs = run_all(
        fault_server,
        "drop",
        count,
        lambda path: fault_server.limit(path, rate=before, burst=4, prefix=True),
        during=drop,
    )
    for run in runs:
        after_drop = run.refused(since=changed[run.path])
        last = max((a.time for a in run.arrivals if a.status == 429), default=0.0)
        print(run.figures(after_drop=after_drop, last_429=f"{last - changed[run.path]:.2f}"))
        assert run.lost() == [], run.driver
        assert after_drop <= 20, (run.driver, after_drop)


def test_limit_rises_under_a_running_crawl(fault_server: FaultServer) -> None:
    """10 -> 40 r/s 1.5 s in: the crawl reaches 36 r/s (90 %) 4.5-6.2 s after the rise
    (bound 8 s), nothing lost, 6-11 429s after the rise as the probe crosses the new rate and
    then tries above it over the crawl's last 7-8 s (bound 20).

    Why not faster: the pacer only learns that the server allows more by sending more, and
    each probe that overshoots costs its request a full ``Retry-After`` (1 s here), so growth
    is cautious by design: flat for a second after the last 429, then cubic; four times the
    rate takes ~5 s whatever the scale (the prototype's probe took ~14 s to double)."""
    before, after = 10.0, 40.0
    # Enough URLs that a crawl already at the new rate still runs a second past the bound: a
    # rate reached late but within it is seen (with 190 the crawl could end first).
    count = int(before * CHANGE_AT + after * (8.0 + 1.0))
    changed: dict[str, float] = {}

    def rise(path: str) -> None:
        time.sleep(CHANGE_AT)  # the server's limit changes this far into the crawl
        changed[path] = time.monotonic()
        fault_server.set_rate(path, after)

    runs = run_all(
        fault_server,
        "rise",
        count,
        lambda path: fault_server.limit(path, rate=before, burst=4, prefix=True),
        during=rise,
    )
    for run in runs:
        reached = first_reaching(run.ok_times(), changed[run.path], 0.9 * after)
        took = None if reached is None else reached - changed[run.path]
        print(run.figures(after_rise=run.refused(since=changed[run.path]), reached=took))
        assert run.lost() == [], run.driver
        assert took is not None, (run.driver, "never reached the new rate")
        assert took <= 8.0, (run.driver, took)
        assert run.refused(since=changed[run.path]) <= 20, run.driver


# -- other limiter shapes --------------------------------------------------------------------


@pytest.mark.parametrize("announce", [False, True], ids=["reset-on-429", "announced"])
def test_fixed_window(fault_server: FaultServer, announce: bool) -> None:
    """20 requests per 2 s window aligned to Unix time, the reset in epoch seconds
    (``X-RateLimit-Reset``, no ``Retry-After``), 40 requests, nothing lost.

    With the reset only on 429s every window's end is a burst of 429s: the sends in flight
    when the first one comes back; that one pauses the origin until the reset. Measured 5-8
    in all (bound: one per worker, 8, in any window).

    When every answer announces what is left, no 429 at all (bound 2), but the pacer runs at
    5.8-6.8 r/s where 10 are allowed (5.1-5.3 s for 40 requests): without a policy header the
    window's length is taken from the reset, in whole Unix seconds against the whole-second
    ``Date`` header, so a 2 s window reads as up to 3 s. Windows of minutes lose little.
    Bound: three times the ideal.
    """
    count, limit, window = 40, 20, 2.0
    runs = run_all(
        fault_server,
        f"window-{int(announce)}",
        count,
        lambda path: fault_server.window(
            path, limit=limit, window=window, prefix=True, announce=announce
        ),
    )
    for run in runs:
        print(run.figures())
        assert run.lost() == [], run.driver
        if announce:
            assert run.refused() <= 2, (run.driver, run.refused())
            assert run.ended - run.started <= 3 * count / limit * window, run.driver
        else:
            per_window: dict[int, int] = {}
            for arrival in run.arrivals:
                if arrival.status == 429:
                    second = int(arrival.wall // window)
                    per_window[second] = per_window.get(second, 0) + 1
            assert max(per_window.values(), default=0) <= WORKERS, (run.driver, per_window)


def test_in_flight_limit(fault_server: FaultServer) -> None:
    """At most 4 in flight, 50 ms each; 8 workers: the fifth at once gets 429 + Retry-After: 1.
    Measured 5-20 429s for 60 requests (bound 30), nothing lost."""
    runs = run_all(
        fault_server,
        "flight",
        60,
        lambda path: fault_server.concurrency(path, limit=4, delay=0.05, prefix=True),
    )
    for run in runs:
        print(run.figures())
        assert run.lost() == [], run.driver
        assert run.refused() <= 30, (run.driver, run.refused())


def test_overload_503_with_retry_after(fault_server: FaultServer) -> None:
    """A server shedding load past 20 r/s with 503 and Retry-After: each 503 pauses the origin
    for its wait. Measured 4-12 503s for 40 requests (bound 20), nothing lost (the retry
    budget's floor covers them)."""
    runs = run_all(
        fault_server,
        "overload",
        40,
        lambda path: fault_server.limit(path, rate=20.0, burst=4, prefix=True, status=503),
    )
    for run in runs:
        print(run.figures())
        assert run.lost() == [], run.driver
        assert run.refused(503) <= 20, (run.driver, run.refused(503))


def api_key_of(url: str) -> str:
    """The gate key of a tenant: the origin and the ``api_key`` the URL carries."""
    keys = parse_qs(urlsplit(url).query).get("api_key", [""])
    return f"{origin_of(url)}#{keys[0]}"


def test_limit_per_api_key_keeps_tenants_apart(fault_server: FaultServer) -> None:
    """Two tenants of one origin, limited per API key: alice at 10 r/s, bob at 200 r/s. One
    gate keyed by API key serves both (one gate and two clients per adapter); bob starts once
    alice is being refused. Alice's 429s (measured 7-14 for 30 requests, bound 25) never slow
    bob: bob meets no 429, is never paced and ends in well under a second (measured
    0.06-0.12 s for 30 requests; bound 1 s, alice's crawl takes 4.4-5.7 s). Nothing lost."""
    count = 30
    limits = {"alice": (10.0, 25), "bob": (200.0, 0)}
    runs: dict[str, dict[str, Run]] = {}
    errors: list[BaseException] = []

    def tenants(driver: Driver) -> None:
        path = f"/tenants/{driver.name}/"
        gate = HostGate(key=api_key_of)
        answers: dict[str, list[Answer]] = {}
        times: dict[str, tuple[float, float]] = {}

        def tenant(session: Session, name: str, workers: int) -> None:
            urls = [f"{fault_server.url}{path}{name}/{i}?api_key={name}" for i in range(count)]
            started = time.monotonic()
            answers[name] = crawl(session, urls, workers)
            times[name] = (started, time.monotonic())

        try:
            with (
                scoped(driver, Options(POLICY), gate=gate, budget=RetryBudget()) as alice,
                scoped(driver, Options(POLICY), gate=gate, budget=RetryBudget()) as bob,
            ):
                thread = threading.Thread(target=tenant, args=(alice, "alice", WORKERS))
                thread.start()
                while not any(a.status == 429 for a in fault_server.arrivals(f"{path}alice/")):
                    if not thread.is_alive():
                        break
                    time.sleep(0.005)
                tenant(bob, "bob", 4)
                thread.join()
        except BaseException as exc:
            errors.append(exc)
            return
        runs[driver.name] = {
            name: Run(
                driver,
                f"{path}{name}/",
                answers[name],
                [a for a in fault_server.arrivals() if a.path.startswith(f"{path}{name}/")],
                gate,
                *times[name],
            )
            for name in limits
        }

    for driver in SCOPED_DRIVERS:
        for name, (rate, _) in limits.items():
            fault_server.limit(
                f"/tenants/{driver.name}/{name}/",
                rate=rate,
                burst=count if name == "bob" else 0,
                prefix=True,
                per="api_key",
            )
    threads = [threading.Thread(target=tenants, args=(driver,)) for driver in SCOPED_DRIVERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    for driver in SCOPED_DRIVERS:
        both = runs[driver.name]
        for name, (_, bound) in limits.items():
            print(name, both[name].figures())
            assert both[name].lost() == [], (driver, name)
            assert both[name].refused() <= bound, (driver, name, both[name].refused())
        bob, alice = both["bob"], both["alice"]
        assert bob.gate.rate(api_key_of(f"{fault_server.url}/?api_key=bob")) is None, driver
        assert alice.gate.rate(api_key_of(f"{fault_server.url}/?api_key=alice")) is not None
        assert bob.ended - bob.started < 1.0, (driver, bob.ended - bob.started)
        assert alice.ended - alice.started > 2.0, driver


def test_backoff_first_attempts_are_paced_under_the_api_key(fault_server: FaultServer) -> None:
    """A key paced at an announced 2 r/s (burst 1): from the second call on, a forbear-backoff
    function's calls for that key are sent 0.5 s apart, as an adapter's would be. (With the
    gate keyed by origin they are: 0.516 s gaps measured; keyed by API key: 0.001 s.)"""
    import forbear_backoff
    import httpx

    url = f"{fault_server.url}/backoff-keyed/item?api_key=alice"
    gate = HostGate(key=api_key_of, burst=1)
    gate.succeeded(api_key_of(url), {"RateLimit-Policy": '"k";q=2;w=1'}, time.monotonic())
    assert gate.rate(api_key_of(url)) is not None

    with httpx.Client() as client:

        @forbear_backoff.on_exception(httpx.HTTPError, policy=POLICY, gate=gate, budget=None)
        def fetch() -> httpx.Response:
            response = client.get(url)
            response.raise_for_status()
            return response

        assert [fetch().status_code for _ in range(4)] == [200] * 4
    times = [a.time for a in fault_server.arrivals("/backoff-keyed/item")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps[1:]) >= 0.4, gaps
