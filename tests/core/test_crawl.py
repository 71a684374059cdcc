"""The gate's start-up and pacing, pinned on the virtual-clock crawl (see ``simulation.py``).

Figures are the simulation's, deterministic per seed: 2,000 requests at concurrency 50 against
a 400 r/s bucket with a burst of 20 unless a test says otherwise.
"""

from __future__ import annotations

import pytest
from simulation import (
    FaultBucket,
    FixedWindow,
    InFlight,
    TokenBucket,
    Unlimited,
    VirtualClock,
    crawl,
    outage,
)

from forbear import HostGate

KEY = "http://limited.test"


def rejected_after_first_response(result: object, latency: float) -> int:
    """429s for sends made after the crawl's first response was read."""
    server = result.server  # type: ignore[attr-defined]
    return server.rejected_after(2.5 * latency)  # type: ignore[no-any-return]


@pytest.mark.parametrize("latency", [0.001, 0.02])
@pytest.mark.parametrize("dialect", ["ietf", "draft", "openai"])
def test_an_announced_bucket_meets_no_429_after_the_first_response(
    dialect: str, latency: float
) -> None:
    """A bucket announcing itself is paced from its first response: no 429 after it."""
    result = crawl(dialect=dialect, latency=latency)
    assert result.lost == 0, result
    assert rejected_after_first_response(result, latency) == 0, result
    assert result.ratio <= 1.05, result


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("latency", [0.001, 0.02])
@pytest.mark.parametrize("dialect", ["ietf", "draft", "openai"])
def test_the_fault_servers_bucket_is_paced_from_what_it_announces(
    dialect: str, latency: float, seed: int
) -> None:
    """The fault server's bucket (200/s, burst 10) as it announces itself (whole-second ``t``
    after ``r=0``; a reset to the millisecond near a full bucket; a refill the reset rounds
    up): 1,000 requests at concurrency 50 meet at most one 429 once the first answer is read
    (0-1 measured), within 12 % of the ideal (1.01-1.10x measured)."""
    result = crawl(
        requests=1000,
        rate=200,
        limiter=FaultBucket(200, 10, dialect),
        latency=latency,
        seed=seed,
    )
    assert result.lost == 0, result
    assert result.late_429s <= 1, result
    assert result.ratio <= 1.12, result


@pytest.mark.parametrize("dialect", ["ietf", "draft", "x", "github", "discord"])
def test_an_announced_window_meets_no_429_after_the_first_response(dialect: str) -> None:
    """1,000 requests per 10 s window, in each dialect (GitHub's an epoch reset against
    ``Date``, Discord's ``Reset-After``): what is left is spent evenly until the reset."""
    result = crawl(
        dialect=dialect, limiter=FixedWindow(1000, 10.0), requests=2500, rate=100, ideal=20.0
    )
    assert result.lost == 0, result
    assert rejected_after_first_response(result, 0.001) == 0, result
    assert result.ratio <= 1.35, result


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_an_origin_that_never_limits_is_never_paced(concurrency: int) -> None:
    """No announcement, no 429, and no crowd (at most `crowd` sends in flight): the origin
    stays on the free path the whole crawl, as fast as without a gate."""
    result = crawl(limiter=Unlimited(), ideal=1.0, concurrency=concurrency, requests=500)
    bare = crawl(
        limiter=Unlimited(), ideal=1.0, concurrency=concurrency, requests=500, use_gate=False
    )
    assert result.lost == 0 == result.rejected
    assert result.gate is not None
    assert result.gate.rates() == {}
    assert result.gate.free(KEY)
    assert result.gate.delay(KEY) == 0.0
    assert result.elapsed == bare.elapsed


@pytest.mark.parametrize("latency", [0.001, 0.02])
def test_a_crowd_against_an_origin_that_never_limits_is_paced_briefly(latency: float) -> None:
    """A crowd of 50 against a new origin meets a slow start: it doubles every 0.1 s from
    200/s and ends once it outgrows the client (or after six doublings), then the origin is
    free for good. What it costs is bounded: at most 0.6 s over the unpaced crawl."""
    result = crawl(limiter=Unlimited(), ideal=1.0, latency=latency, requests=4000)
    bare = crawl(limiter=Unlimited(), ideal=1.0, latency=latency, requests=4000, use_gate=False)
    assert result.lost == 0 == result.rejected
    assert result.gate is not None
    assert result.gate.rates() == {}
    assert result.gate.free(KEY)
    assert result.elapsed - bare.elapsed <= 0.6, (result.elapsed, bare.elapsed)


@pytest.mark.parametrize("latency", [0.001, 0.02])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_unannounced_bucket_first_crawl(seed: int, latency: float) -> None:
    """Nothing known, nothing announced: the crowd meets a slow start instead of the burst;
    where it crosses the server's rate it holds at half, and the run of 429s that follows
    measures the rate. The slots the slow start had given out ahead when the first 429 came
    back are void: their holders ask again instead of going out on them, so the 429s are the
    sends already in flight then (1-2 at 1 ms, 14-20 at 20 ms), and a probe's few later."""
    result = crawl(seed=seed, latency=latency)
    assert result.lost == 0, result
    assert result.early_retries == 0, result  # Retry-After stays a floor
    assert result.ratio <= 1.05, result
    assert result.rejected <= 30, result
    rate = result.gate.rate(KEY) if result.gate else None
    assert rate is not None
    assert 0.9 * 400 <= rate <= 1.05 * 400


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_client_that_is_no_crowd_meets_a_slow_start_at_its_first_429(seed: int) -> None:
    """Eight workers (3 ms) never put more than a crowd in flight, so the first 429 is the
    first the gate hears of a limit. It starts a slow start from what the origin accepted
    (doubling every tenth of a second, as a crowd's) rather than a guess doubling every half
    second: 1.08-1.11x with 11-19 429s (seeds 1-4; 1.45x with seed 5), where the half-second
    doubling took 1.17-1.21x with 30-35 (forbear-requests' 50 threads on the nginx crawl,
    whose sends start too far apart to form a crowd: 1.08-1.10x with 26-31 429s before,
    1.00-1.01x with 18 now)."""
    result = crawl(requests=2000, concurrency=8, rate=400, burst=20, latency=0.003, seed=seed)
    assert result.lost == 0, result
    assert result.ratio <= 1.15, result
    assert result.rejected <= 25, result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_later_crawl_starts_at_the_learned_rate(seed: int) -> None:
    """A minute after a crawl the key is still paced at what it learned: the next crawl of
    the same origin sends no crowd, runs within 5 % of the ideal and meets few 429s."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    crawl(seed=seed, gate=gate, clock=clock)
    clock.now += 60.0
    result = crawl(seed=seed, gate=gate, clock=clock)
    assert gate.learned(KEY) is not None
    assert result.lost == 0, result
    assert result.ratio <= 1.05, result
    assert result.rejected <= 30, result


def test_a_learned_rate_is_forgotten_after_remember() -> None:
    """After ``remember`` seconds of calm the key is free again."""
    clock = VirtualClock()
    gate = HostGate(clock=clock, remember=100.0)
    crawl(gate=gate, clock=clock)
    clock.now += 60.0
    assert gate.delay(KEY) == 0.0  # calm: kept at the learned rate from here
    assert gate.rate(KEY) is not None
    clock.now += 101.0
    assert gate.delay(KEY) == 0.0
    assert gate.rate(KEY) is None
    assert gate.free(KEY)


def test_a_rate_that_drops_mid_crawl() -> None:
    """400 -> 100 r/s two seconds in: the pacer follows it down, nothing lost."""
    result = crawl(limiter=TokenBucket(400, 20, [(2.0, 100.0)]), ideal=2.0 + 1200 / 100)
    assert result.lost == 0, result
    assert result.ratio <= 1.1, result
    rate = result.gate.rate(KEY) if result.gate else None
    assert rate is not None
    assert 0.9 * 100 <= rate <= 1.1 * 100


def test_a_rate_that_rises_mid_crawl() -> None:
    """100 -> 400 r/s two seconds in: the probe finds the new rate, nothing lost."""
    result = crawl(limiter=TokenBucket(100, 20, [(2.0, 400.0)]), ideal=2.0 + 1800 / 400)
    assert result.lost == 0, result
    assert result.ratio <= 1.45, result
    rate = result.gate.rate(KEY) if result.gate else None
    assert rate is not None
    assert rate >= 0.9 * 400


def test_an_announced_in_flight_cap() -> None:
    """At most 10 in flight (``concurrent-requests``), 20 ms a send: the announced cap runs
    faster than learning it from 429s, nothing lost."""
    ideal = 2000 / (10 / 0.02)
    announced = crawl(limiter=InFlight(10), dialect="ietf", latency=0.02, ideal=ideal)
    unannounced = crawl(limiter=InFlight(10), latency=0.02, ideal=ideal)
    assert announced.lost == 0 == unannounced.lost
    # The sends a slow start let go before the cap was heard count from their own slots, and
    # those it gave out ahead are void at the announcement (1.03x).
    assert announced.ratio <= 1.1, announced
    assert announced.elapsed < unannounced.elapsed


@pytest.mark.parametrize("latency", [0.001, 0.005, 0.02])
def test_outage_amplification_stays_under_1_3(latency: float) -> None:
    """200 requests to an always-503 origin, 20 at a time, the benchmark's fast backoff: the
    budget lets at most 1.3 arrivals per logical request through."""
    result = outage(latency=latency)
    assert result.amplification <= 1.3, result


def test_a_blip_is_retried_in_full() -> None:
    """A few failures (a blip) are all retried at once: every request then succeeds."""
    result = outage(failing=5)
    assert result.arrivals == 200 + 5


@pytest.mark.parametrize("latency", [0.001, 0.02])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sends_woken_on_void_slots_ask_again(seed: int, latency: float) -> None:
    """The same first crawl with the flow keeping every slot it waited out (a gate without
    `HostGate.confirm`): the slots given out ahead of a rate cut go out into the server's
    empty bucket. Asking again spares 15 429s or more (39-40 down to 11-12 at 1 ms, 43-44 down
    to 22-26 at 20 ms), and costs no time worth the name."""
    asked = crawl(seed=seed, latency=latency)
    kept = crawl(seed=seed, latency=latency, confirm=False)
    assert asked.lost == 0 == kept.lost
    assert asked.rejected <= kept.rejected - 15, (asked, kept)
    assert asked.ratio <= kept.ratio + 0.025, (asked, kept)


def test_a_gate_without_confirm_keeps_its_pace() -> None:
    """A gate that hides `HostGate.confirm` (a wrapper of its own) is not voided under its
    holders: the crawl runs as it did before sends asked again."""
    kept = crawl(confirm=False)
    assert kept.lost == 0, kept
    assert kept.ratio <= 1.05, kept
    assert kept.rejected <= 45, kept


@pytest.mark.parametrize("confirm", [True, False], ids=["asked", "kept"])
def test_a_pause_holds_the_sends_already_sleeping_on_slots(confirm: bool) -> None:
    """A long ``Retry-After`` (6 s: past `pause_after`) pauses the origin while much of the crowd
    sleeps on slots the slow start gave out: asked again, none of them goes out into the pause
    (kept, they do), and no request parked on its 429 goes before its Retry-After."""
    result = crawl(retry_after="6", confirm=confirm, requests=1000)
    server = result.server
    assert server is not None
    assert result.lost == 0, result
    assert result.early_retries == 0, result
    first = min(at for at, status in server.log if status == 429)
    during = [at for at, _ in server.log if first + 0.01 < at < first + 6.0 - 0.01]
    assert (len(during) == 0) is confirm, len(during)
