"""The fleet across processes: atomic reservations and one token exchange for the whole fleet."""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from pathlib import Path

import fleet_workers
import pytest
from conftest import RedisServer

sys.path.insert(0, str(Path(__file__).parent))  # spawned children import fleet_workers

PROCESSES = 6


def test_reservations_are_atomic_across_processes(redis_server: RedisServer) -> None:
    """Processes reserving at once never share a slot, and the slots keep the fleet's spacing."""
    from forbear_redis import Fleet

    rate, per_process = 50.0, 12
    with Fleet(redis_server.url, namespace="atomic") as fleet:
        assert fleet.gate.set_rate(fleet_workers.KEY, rate)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    out = context.Queue()
    workers = [
        context.Process(
            target=fleet_workers.reserve_slots,
            args=(redis_server.url, "atomic", per_process, barrier, out),
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(up for _, _, up in reports)
    slots = [slot for _, worker_slots, _ in reports for slot in worker_slots]
    interval = 1.0 / rate
    # Two slots are close for certain when every time within their pairs is less than half an
    # interval apart (a process descheduled between a reply and reading the clock widens its
    # pair; it never makes two slots look shared). The schedule may release `burst` (2) at once
    # after a wait; every other slot is its own, one interval after the previous.
    close = [
        (first, second)
        for first, second in itertools.combinations(slots, 2)
        if max(second[1] - first[0], first[1] - second[0]) < interval * 0.5
    ]
    assert len(close) <= 1, close
    span = max(latest for _, latest in slots) - min(earliest for earliest, _ in slots)
    assert span >= (len(slots) - 2) * interval * 0.9


def test_one_token_exchange_for_the_fleet(redis_server: RedisServer, tmp_path: Path) -> None:
    """Processes sharing a fleet token exchange once at first, and once more when it is stale."""
    log = tmp_path / "exchanges.log"
    log.touch()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    out = context.Queue()
    workers = [
        context.Process(
            target=fleet_workers.refresh_token,
            args=(redis_server.url, "tokens", str(log), barrier, out),
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert {first for first, _ in results} == {"token-1"}
    assert {second for _, second in results} == {"token-2"}
    assert fleet_workers.exchange_log(str(log)) == 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
