"""The fleet's store misbehaving: Redis down, killed, restarted empty, flushed, slow.

Five workers, one per adapter (httpx sync, httpx on asyncio and on trio, requests, aiohttp),
each with a `forbear_redis.Fleet` of its own on one namespace (as five processes would have),
crawl one rate-limited path of the fault server at once: 30 URLs each, 4 at a time, against
a shared limit of 100 r/s (burst 10), so the fleet paces the key through Redis. Mid-crawl
(0.4 s in) the store misbehaves. Counted at the fault server: every URL answered 200 exactly
once (nothing lost, nothing sent again after its 200); on the ``forbear.redis`` logger: one
warning per worker per outage, none when Redis never stopped answering. Redis is a real
``redis-server`` (the forbear-redis tests' fixture classes, imported), behind their delaying
loopback proxy for the slow case.

Figures measured (2 cores; 150 requests per case; a Redis call's bound is the Fleet's
``timeout``, 0.1 s):

| store fault | lost / doubled | 429s | warnings | slowest request | fleet back |
|---|---|---|---|---|---|
| down at start | 0 / 0 | 11-28 | 1 per worker | 1.7-2.4 s | n/a |
| killed mid-crawl | 0 / 0 | 19-28 | 1 per worker | 1.3-3.0 s | calls resume |
| restarted empty, same port | 0 / 0 | 18-37 | 1 (a worker calling in the gap) | | calls resume |
| FLUSHALL | 0 / 0 | 17-31 | 0 | | keys written again |
| namespace keys deleted | 0 / 0 | 17-36 | 0 | | keys written again |
| slow, 300 ms a hop, unlimited path | 0 / 0 | 0 | 1 per worker | 0.15-0.17 s | n/a |

Bounds: 429s <= 60 of 150 requests; the slowest request of a limited case < 5 s (a 429 costs
its request ``Retry-After: 1``, and a request may meet several); of the slow case < 0.5 s.
The slowest requests of the limited cases are the ones a 429 sent back for ``Retry-After: 1``.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from forbear_testing import FaultServer

from forbear import Policy

from .drivers import SCOPED_DRIVERS, Answer, Driver, Options, crawl, scoped

forbear_redis = pytest.importorskip("forbear_redis")


def _redis_fixtures() -> ModuleType:
    """forbear-redis's test fixtures module (RedisServer, SlowProxy, free_port), imported."""
    path = Path(__file__).parents[2] / "adapters" / "redis" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("forbear_redis_test_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures = _redis_fixtures()

PER_WORKER = 30
WORKERS = 4
#: The shared limit the fleet paces.
RATE, BURST = 100.0, 10
#: When the store misbehaves, seconds into the crawl.
FAULT_AT = 0.4
#: The Fleet's bound on every Redis call.
STORE_TIMEOUT = 0.1
POLICY = Policy()


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A fresh redis-server on a free port (skipped when the binary is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not found: apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="forbear-reliability-redis-") as directory:
        server = fixtures.RedisServer(binary, Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def warnings_logged(caplog: pytest.LogCaptureFixture) -> int:
    """Warnings on the ``forbear.redis`` logger so far."""
    return sum(
        1
        for record in caplog.records
        if record.name == "forbear.redis" and record.levelno == logging.WARNING
    )


@dataclass
class Worker:
    """One worker: its adapter, its fleet, and what its crawl answered."""

    driver: Driver
    fleet: Any
    answers: list[Answer]


def crawl_fleet(
    server: FaultServer,
    url: str,
    case: str,
    *,
    fault: Callable[[], None] | None = None,
    limited: bool = True,
    timeout: float = STORE_TIMEOUT,
) -> list[Worker]:
    """Every adapter crawls ``/case/`` at once, each through a Fleet of its own on ``url``;
    ``fault()`` runs FAULT_AT seconds in. The fleets are left open (the caller closes them)."""
    path = f"/{case}/"
    if limited:
        server.limit(path, rate=RATE, burst=BURST, prefix=True)
    workers: list[Worker] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(driver: Driver) -> None:
        fleet = forbear_redis.Fleet(url, namespace=case, timeout=timeout, probe_every=0.1)
        try:
            with scoped(driver, Options(POLICY), gate=fleet.gate, budget=fleet.budget) as session:
                urls = [f"{server.url}{path}{driver.name}/{i}" for i in range(PER_WORKER)]
                answers = crawl(session, urls, WORKERS)
        except BaseException as exc:
            fleet.close()
            errors.append(exc)
            return
        with lock:
            workers.append(Worker(driver, fleet, answers))

    threads = [threading.Thread(target=work, args=(driver,)) for driver in SCOPED_DRIVERS]
    for thread in threads:
        thread.start()
    if fault is not None:
        time.sleep(FAULT_AT)  # the store misbehaves this far into the crawl
        fault()
    for thread in threads:
        thread.join()
    if errors:
        for worker in workers:
            worker.fleet.close()
        raise errors[0]
    return workers


def check_counts(server: FaultServer, case: str, workers: list[Worker]) -> int:
    """Nothing lost or doubled, by the answers and by the server's log; the 429s sent."""
    arrivals = [a for a in server.arrivals() if a.path.startswith(f"/{case}/")]
    for worker in workers:
        bad = [answer.status or answer.kind for answer in worker.answers if answer.status != 200]
        assert bad == [], (worker.driver, bad)
    ok = [a.path for a in arrivals if a.status == 200]
    assert len(ok) == len(set(ok)) == PER_WORKER * len(SCOPED_DRIVERS)
    refused = sum(1 for a in arrivals if a.status == 429)
    assert refused + len(ok) == len(arrivals)  # nothing but 200s and 429s
    return refused


def slowest(workers: list[Worker]) -> float:
    return max(answer.elapsed for worker in workers for answer in worker.answers)


def close_all(workers: list[Worker]) -> None:
    for worker in workers:
        worker.fleet.close()


def resumed(workers: list[Worker], server: FaultServer, case: str) -> None:
    """Each fleet's store answers again, and a few more requests go through the fleet scope."""
    deadline = time.monotonic() + 5.0
    while not all(w.fleet.store.up for w in workers) and time.monotonic() < deadline:
        time.sleep(0.02)  # the flusher probes every 0.1 s
    for worker in workers:
        assert worker.fleet.store.up, worker.driver
        calls = worker.fleet.store.calls
        options = Options(POLICY)
        gate, budget = worker.fleet.gate, worker.fleet.budget
        with scoped(worker.driver, options, gate=gate, budget=budget) as session:
            urls = [f"{server.url}/{case}/after/{worker.driver.name}/{i}" for i in range(5)]
            assert [a.status for a in crawl(session, urls, 1)] == [200] * 5
        worker.fleet.flush()
        assert worker.fleet.store.calls > calls, worker.driver


# -- the cases ---------------------------------------------------------------------------------


def test_redis_down_at_start(fault_server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens where Redis should be: every worker paces on its own (the process
    scope), nothing lost, one warning per worker, no request held past the store's bound."""
    caplog.set_level(logging.INFO, logger="forbear.redis")
    url = f"redis://127.0.0.1:{fixtures.free_port()}/0"
    workers = crawl_fleet(fault_server, url, "down-at-start")
    try:
        refused = check_counts(fault_server, "down-at-start", workers)
        assert all(not w.fleet.store.up for w in workers)
    finally:
        close_all(workers)
    print("429s", refused, "slowest", round(slowest(workers), 2))
    assert warnings_logged(caplog) == len(workers)
    assert refused <= 60
    assert slowest(workers) < 5.0


def test_redis_killed_mid_crawl_then_back(
    redis_server: Any, fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed 0.4 s in: the crawl carries on on the process scope, nothing lost, one
    warning per worker; restarted, each fleet's scope resumes (its calls to Redis go on)."""
    caplog.set_level(logging.INFO, logger="forbear.redis")
    workers = crawl_fleet(fault_server, redis_server.url, "killed", fault=redis_server.stop)
    try:
        refused = check_counts(fault_server, "killed", workers)
        redis_server.start()
        resumed(workers, fault_server, "killed")
    finally:
        close_all(workers)
    outages = sum(w.fleet.store.outages for w in workers)
    print("429s", refused, "slowest", round(slowest(workers), 2), "outages", outages)
    # One outage per worker at most (a worker whose flusher had nothing to send in the gap
    # never noticed it), and one warning per outage.
    assert 1 <= outages <= len(workers)
    assert warnings_logged(caplog) == outages
    assert refused <= 60
    assert slowest(workers) < 5.0


def test_redis_restarted_empty(
    redis_server: Any, fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh, empty redis-server on the same port 0.4 s in: nothing lost, at most one
    warning per worker (one that called Redis in the gap), and the fleet scope goes on."""
    caplog.set_level(logging.INFO, logger="forbear.redis")

    def restart() -> None:
        redis_server.stop()
        redis_server.start()

    workers = crawl_fleet(fault_server, redis_server.url, "restarted", fault=restart)
    try:
        refused = check_counts(fault_server, "restarted", workers)
        resumed(workers, fault_server, "restarted")
        keys = redis_server.client().keys("forbear:restarted:*")
    finally:
        close_all(workers)
    print("429s", refused, "warnings", warnings_logged(caplog))
    assert warnings_logged(caplog) <= len(workers)
    assert keys  # the fleet wrote its state again into the empty server
    assert refused <= 60


@pytest.mark.parametrize("how", ["flushall", "del-namespace"])
def test_keys_evicted_mid_crawl(
    redis_server: Any, fault_server: FaultServer, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """The fleet's keys vanish 0.4 s in (FLUSHALL, or DEL of every key of the namespace):
    Redis never stopped answering, so no warning; nothing lost; the keys come back."""
    caplog.set_level(logging.INFO, logger="forbear.redis")
    case = f"evicted-{how}"
    client = redis_server.client()
    deleted: list[int] = []

    def evict() -> None:
        if how == "flushall":
            client.flushall()
        else:
            keys = client.keys(f"forbear:{case}:*")
            deleted.append(client.delete(*keys) if keys else 0)

    workers = crawl_fleet(fault_server, redis_server.url, case, fault=evict)
    try:
        refused = check_counts(fault_server, case, workers)
        for worker in workers:
            worker.fleet.flush()
        keys = client.keys(f"forbear:{case}:*")
    finally:
        close_all(workers)
    print("429s", refused, "deleted", deleted)
    assert warnings_logged(caplog) == 0
    assert keys
    assert refused <= 60


def test_slow_redis_bounds_every_request(
    redis_server: Any, fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis behind a proxy holding every chunk 300 ms, the Fleet's bound 100 ms: no request
    waits on Redis longer than that bound (slowest request measured < 0.25 s; bound 0.5 s),
    nothing lost, one warning per worker."""
    caplog.set_level(logging.INFO, logger="forbear.redis")
    with fixtures.SlowProxy(redis_server.port, 0.3) as proxy:
        workers = crawl_fleet(fault_server, proxy.url, "slow", limited=False)
        try:
            check_counts(fault_server, "slow", workers)
        finally:
            close_all(workers)
    print("slowest", round(slowest(workers), 3))
    assert slowest(workers) < 0.5
    assert warnings_logged(caplog) == len(workers)
