"""Announced limits paced fleet-wide, and slots asked again (`generation` / `confirm`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import HOST, RedisServer, free_port

from forbear import Action, Backoff, Call, Decision, HostGate, Jitter, Policy, Reason
from forbear_redis import Fleet, Pacing

httpx = pytest.importorskip("httpx")
forbear_httpx = pytest.importorskip("forbear_httpx")
forbear_testing = pytest.importorskip("forbear_testing")

KEY = "http://announced.test"
FAST = Policy(backoff=Backoff(initial=0.01, max=0.02, jitter=Jitter.NONE))


def _announcing(quota: int, remaining: int = 5) -> dict[str, str]:
    """IETF fields announcing ``quota`` requests a second."""
    return {
        "RateLimit-Policy": f'"second";q={quota};w=1',
        "RateLimit": f'"second";r={remaining};t=0',
    }


def _perform(wait: float | Call) -> float:
    """What the core's sync runner does with a gate's answer."""
    if isinstance(wait, Call):
        result: float = wait.sync(*wait.args)
        return result
    return wait


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- announced limits ------------------------------------------------------------------------


def test_an_announced_rate_is_paced_fleet_wide(redis_server: RedisServer) -> None:
    """A worker whose process gate hears an announcement reserves its next send, which starts
    the fleet's pacing at that rate: the other worker's sends are paced at it too."""
    with (
        Fleet(redis_server.url, namespace="heard", interval=10.0) as first,
        Fleet(redis_server.url, namespace="heard", interval=10.0) as second,
    ):
        first.gate.succeeded(KEY, _announcing(10), time.monotonic())
        heard = first.gate.local.announced(KEY)
        assert heard is not None and heard == pytest.approx(9.7)
        assert not first.gate.free(KEY)  # the fleet is told with the next send's reservation
        assert isinstance(first.gate.delay(KEY), Call)
        first.gate.reserve_sync(KEY)
        assert first.gate.rate(KEY) == pytest.approx(heard)
        # The second worker heard nothing itself: its first send learns the fleet's pace.
        waits = [second.gate.reserve_sync(KEY) for _ in range(4)]
        assert second.gate.rate(KEY) == pytest.approx(heard)
        assert waits[-1] >= 2 / heard  # one slot every 1/9.7 s, fleet-wide


def test_the_tightest_announcement_wins_until_it_is_stale(redis_server: RedisServer) -> None:
    """Two workers hearing different rates: the fleet paces at the lower while it is fresh;
    once nobody reported it for `heard_for`, the looser one takes over."""
    pacing = Pacing(heard_for=0.3)
    with (
        Fleet(redis_server.url, namespace="tight", interval=10.0, pacing=pacing) as tight,
        Fleet(redis_server.url, namespace="tight", interval=10.0, pacing=pacing) as loose,
    ):
        tight.gate.succeeded(KEY, _announcing(10), time.monotonic())
        tight.gate.reserve_sync(KEY)
        loose.gate.succeeded(KEY, _announcing(40), time.monotonic())
        loose.gate.reserve_sync(KEY)
        assert loose.gate.rate(KEY) == pytest.approx(9.7)  # not 38.8
        # The same announcement heard again keeps it fresh.
        tight.gate.succeeded(KEY, _announcing(10), time.monotonic())
        tight.gate.reserve_sync(KEY)
        assert tight.gate.rate(KEY) == pytest.approx(9.7)
        time.sleep(0.5)  # Redis's clock: `heard_for` passes without a report of 9.7
        loose.gate.succeeded(KEY, _announcing(40), time.monotonic())
        loose.gate.reserve_sync(KEY)
        assert loose.gate.rate(KEY) == pytest.approx(38.8)


def test_two_workers_keep_to_an_announced_limit(
    redis_server: RedisServer, fault_server: Any
) -> None:
    """Two workers (8 threads each) against a server announcing 40 r/s (IETF fields): once the
    first answers are read they send at about 40 r/s together, not 2 x 40, and meet no 429
    (a process gate each, pacing at the announced rate: 15-20 429s after the first answers)."""
    rate, per_worker = 40, 60
    fault_server.limit("/ann/", rate=rate, burst=4, prefix=True, announce="ietf")
    fleets = [Fleet(redis_server.url, namespace="ann") for _ in range(2)]

    def crawl(fleet: Fleet) -> list[int]:
        transport = forbear_httpx.RetryTransport(gate=fleet.gate, budget=fleet.budget, policy=FAST)
        with httpx.Client(transport=transport) as client, ThreadPoolExecutor(8) as pool:
            return list(
                pool.map(
                    lambda n: int(
                        client.get(f"{fault_server.url}/ann/{id(fleet)}/{n}").status_code
                    ),
                    range(per_worker),
                )
            )

    try:
        with ThreadPoolExecutor(2) as pool:
            statuses = [status for run in pool.map(crawl, fleets) for status in run]
        rates = [fleet.gate.rate(fault_server.url) for fleet in fleets]
    finally:
        for fleet in fleets:
            fleet.close()
    assert statuses == [200] * (2 * per_worker)
    assert all(paced == pytest.approx(rate * 0.97, rel=0.01) for paced in rates)
    arrivals = sorted(fault_server.arrivals(), key=lambda arrival: arrival.time)
    start = arrivals[0].time
    # The first crowd goes before any answer is read (16 sends, 5 in the bucket).
    late_429s = [a for a in arrivals if a.status == 429 and a.time > start + 0.3]
    assert len(late_429s) <= 2
    settled = [a.time for a in arrivals if a.time > start + 0.3]
    achieved = (len(settled) - 1) / (settled[-1] - settled[0])
    # Sends, refused or not; slower than the announced rate is only a loaded machine.
    assert achieved <= rate * 1.25


# -- generation and confirm --------------------------------------------------------------------


def test_an_unchanged_generation_confirms_without_a_call(redis_server: RedisServer) -> None:
    """A slot the fleet still stands by confirms at 0.0, without I/O; so does Redis when
    asked with the generation it has (nothing more is reserved)."""
    with Fleet(redis_server.url, namespace="same", interval=10.0) as fleet:
        gate = fleet.gate
        assert gate.set_rate(KEY, 20.0)
        waits = [gate.reserve_sync(KEY) for _ in range(4)]
        seen = gate.generation(KEY)
        assert waits[-1] > 0.0 and seen < 0  # a fleet generation
        calls = fleet.store.calls
        assert gate.confirm(KEY, seen) == 0.0
        assert fleet.store.calls == calls
        assert gate.confirm_sync(KEY, -1 - seen) == 0.0  # Redis agrees: no slot taken
        assert gate.reserve_sync(KEY) == pytest.approx(waits[-1] + 1 / 20.0, abs=0.03)


def test_a_cut_elsewhere_voids_the_slots_given_out_ahead(redis_server: RedisServer) -> None:
    """Another worker hears a far lower announced rate: the fleet's generation moves, and a
    send woken on a slot from before asks Redis for a fresh one at the new pace."""
    with (
        Fleet(redis_server.url, namespace="cut", interval=10.0) as first,
        Fleet(redis_server.url, namespace="cut", interval=10.0) as second,
    ):
        gate = first.gate
        assert gate.set_rate(KEY, 50.0)
        gate.generation(KEY)  # this worker's sends ask again: a change restarts the schedule
        waits = [gate.reserve_sync(KEY) for _ in range(5)]
        seen = gate.generation(KEY)
        assert 0.0 < waits[-1] < 0.2
        second.gate.succeeded(KEY, _announcing(2), time.monotonic())
        second.gate.reserve_sync(KEY)
        assert second.gate.rate(KEY) == pytest.approx(1.94)
        # Not heard here yet: no I/O, the slot holds until this worker's next answer.
        assert gate.confirm(KEY, seen) == 0.0
        gate.reserve_sync(KEY)  # another send's reservation brings the new generation
        assert gate.generation(KEY) != seen
        wait = gate.confirm(KEY, seen)
        assert isinstance(wait, Call)
        assert _perform(wait) > 0.3  # a slot at 1.94/s after the ones given out since the cut


def test_a_pending_429_confirms_through_redis(redis_server: RedisServer) -> None:
    """A 429 this worker saw but did not report yet: a woken send asks Redis (carrying it)."""
    with Fleet(redis_server.url, namespace="pending", interval=10.0) as fleet:
        gate = fleet.gate
        assert gate.set_rate(KEY, 50.0)
        gate.reserve_sync(KEY)
        seen = gate.generation(KEY)
        decision = Decision(Action.RETRY, 1.0, Reason.RETRY_AFTER, 1, status=503, retry_after=1.0)
        gate.observe(KEY, decision)  # a 503 with a wait pauses the key
        wait = gate.confirm(KEY, seen)
        assert isinstance(wait, Call)
        assert _perform(wait) > 0.5  # the pause, fleet-wide
        assert gate.generation(KEY) != seen


def test_keys_paced_by_the_process_gate_confirm_there(fault_server: Any) -> None:
    """Redis down: `generation` and `confirm` are the process gate's, on its clock."""
    clock = Clock()
    local = HostGate(clock=clock)
    with Fleet(f"redis://{HOST}:{free_port()}/0", namespace="down", gate=local) as fleet:
        gate = fleet.gate
        gate.succeeded(KEY, _announcing(100), clock.now)  # paced by the process gate
        assert gate.reserve_sync(KEY) == 0.0  # Redis does not answer: the process gate's
        assert not fleet.store.up
        waits = [gate.delay(KEY) for _ in range(4)]
        seen = gate.generation(KEY)
        assert seen == local.generation(KEY) >= 0
        assert isinstance(waits[-1], float) and waits[-1] > 0.0
        assert gate.confirm(KEY, seen) == 0.0
        clock.now += 0.01
        gate.succeeded(KEY, _announcing(2), clock.now)  # the view tightens
        assert gate.generation(KEY) != seen
        # Two sends woken on void slots: fresh ones at 1.94/s, the first within one interval
        # of now (an announced cut restarts the schedule so, not at once).
        fresh = [gate.confirm(KEY, seen), gate.confirm(KEY, seen)]
        assert 0.0 < fresh[0] <= 1 / 1.94
        assert fresh[1] - fresh[0] == pytest.approx(1 / 1.94)
