"""A refill learnt from what successive announcements show (see `forbear._gate`).

The fault server's token bucket announced in the ``X-RateLimit-*`` dialect says only what is
left and the whole Unix second it is full again: read alone, "10 left within a second" is
what a fixed window of 11 a second says too. The gate learns the refill from readings that
name the same reset: what is left does not fall as the successes between them spent it.
"""

from __future__ import annotations

from email.utils import formatdate

import pytest
from simulation import FaultBucket, FixedWindow, VirtualClock, crawl

from forbear import HostGate
from forbear._gate import Again

KEY = "http://limited.test"


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("latency", [0.001, 0.02])
def test_an_x_dialect_bucket_is_paced_at_the_refill_it_shows(latency: float, seed: int) -> None:
    """The fault server's bucket (200/s, burst 10) in the ``x`` dialect: 1,000 requests at
    concurrency 50 within 1.9x the ideal (1.30-1.31x measured at 1 ms, 1.64-1.84x at 20 ms,
    where the refill shown is read low by the sends in flight; 27-33x when paced at what is
    left over the reset), 0 lost, and no 429 after the first tenth of a second (the crowd
    that went before the first answer drains the bucket; 2-8 429s, all in the first 30 ms)."""
    result = crawl(
        requests=1000,
        rate=200,
        limiter=FaultBucket(200, 10, "x"),
        latency=latency,
        seed=seed,
    )
    assert result.lost == 0, result
    assert result.ratio <= 1.9, result
    assert result.server is not None
    assert result.server.rejected_after(0.1) == 0, result


@pytest.mark.parametrize("dialect", ["github", "x", "discord"])
def test_a_fixed_window_shows_no_refill(dialect: str) -> None:
    """A window of 100 per 2 s: what is left falls by exactly the sends, so the crawl is
    paced at what is left over the reset and waits for each reset: no 429 after the first
    answer, never faster than the windows allow."""
    result = crawl(dialect=dialect, limiter=FixedWindow(100, 2.0), requests=400, rate=50, ideal=8.0)
    assert result.lost == 0, result
    assert result.server is not None
    assert result.server.rejected_after(0.0025) == 0, result
    assert result.elapsed >= 6.0, result  # four windows: the last begins at 6 s


def _headers(clock: VirtualClock, remaining: int, reset_in: int) -> dict[str, str]:
    """An ``X-RateLimit-*`` reading with the reset ``reset_in`` whole seconds after the
    current one, against a whole-second ``Date`` (as the fault server sends)."""
    second = int(clock.wall())
    return {
        "Date": formatdate(second, usegmt=True),
        "X-RateLimit-Limit": "11",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(second + reset_in),
    }


def _feed(gate: HostGate, clock: VirtualClock, readings: list[tuple[float, int]]) -> None:
    for at, remaining in readings:
        clock.now = at
        gate.succeeded(KEY, _headers(clock, remaining, 1), at)


def test_the_gate_learns_a_refill_from_readings_naming_the_same_reset() -> None:
    """What is left holds at 10 while 10 successes come back in each tenth of a second: the
    quota refilled at least (0 + 10 - 1) / 0.1 = 90 a second (one unit is allowed for answers
    overtaking one another), so the pace is what is left over the reset plus that, doubled
    while the quota stays whole (a probe), after ``hold``."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    _feed(gate, clock, [(0.01, 10)])
    assert gate.rate(KEY) == pytest.approx(9.7)  # 10 left, reset within the second
    _feed(gate, clock, [(0.01 + 0.01 * n, 10) for n in range(1, 21)])
    rate = gate.rate(KEY)
    assert rate is not None
    assert rate == pytest.approx(0.97 * (10 + 2 * 90))
    # Spent after that: paced at the refill shown, not paused until the reset.
    _feed(gate, clock, [(0.25, 0)])
    assert gate.paused_until(KEY) is None
    rate = gate.rate(KEY)
    assert rate == pytest.approx(0.97 * 90)


def test_a_window_boundary_is_no_refill() -> None:
    """What is left falls by one a success, then is whole again under the next reset: a new
    window, not a refill. The pace stays what is left over the reset, and a spent window
    pauses the origin until its reset."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    _feed(gate, clock, [(0.1 * n, 10 - n) for n in range(10)])
    rate = gate.rate(KEY)
    assert rate is not None and rate <= 0.97 * 10
    clock.now = 0.95
    gate.succeeded(KEY, _headers(clock, 0, 1), 0.95)
    # The reset is the next whole second, read against a ``Date`` of this one: a second.
    assert gate.paused_until(KEY) == pytest.approx(1.95)
    # The next window: whole again under a later reset, then counting down again.
    _feed(gate, clock, [(1.95 + 0.1 * n, 10 - n) for n in range(5)])
    rate = gate.rate(KEY)
    assert rate is not None and rate <= 0.97 * 10


def test_no_slot_is_given_out_far_past_a_dated_reset_at_the_pace_read_before_it() -> None:
    """A crowd of 40 reserving at "5 left within the second" would sleep on slots up to 8 s
    ahead, which a refill learnt a moment later cannot shorten. Slots go out only up to the
    reset (and a short step past it); the rest are told to wait for the reset and ask again
    (`Again`), and then get slots at the pace known by then."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    gate.generation(KEY)  # a flow that asks again after waiting
    _feed(gate, clock, [(0.01, 5)])
    waits = [gate.delay(KEY) for _ in range(40)]
    slots = [wait for wait in waits if type(wait) is not Again]
    agains = [wait for wait in waits if type(wait) is Again]
    assert agains, waits
    assert max(slots) <= 1.0 + 0.25  # the reset (a second after the reading) and a step
    assert {round(wait, 6) for wait in agains} == {round(1.0, 6)}
    # By the reset, the quota has shown a refill: the sends asking again go at its pace.
    _feed(gate, clock, [(0.01 + 0.02 * n, 5) for n in range(1, 40)])
    clock.now = 1.01
    later = [gate.delay(KEY) for _ in range(len(agains))]
    assert max(later) < 1.0, later  # at the first reading's pace (5/s): 6 s and more
    # While the refill is learnt, slots go out half a second ahead at most (and a step).
    assert all(wait <= 0.75 for wait in later if type(wait) is not Again)
    without = HostGate(clock=VirtualClock())  # no flow asks again: slots as before
    without._clock.now = 0.01  # type: ignore[attr-defined]
    without.succeeded(KEY, _headers(without._clock, 5, 1), 0.01)  # type: ignore[arg-type]
    assert not any(type(without.delay(KEY)) is Again for _ in range(40))


def test_sends_in_flight_beyond_what_a_window_has_left_wait_for_its_reset_not_past_it() -> None:
    """Five sends in flight when the window reads one left: the next send waits for the
    reset (the window's budget), not for five more units at "one left within the second"
    (what is left of a dated window is read as the pace itself: the sends in flight are no
    units to wait for at it; read so, the next slot was five seconds away)."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    gate.generation(KEY)  # a flow that asks again after waiting
    _feed(gate, clock, [(0.01, 9)])
    for _ in range(5):
        gate.delay(KEY)
    _feed(gate, clock, [(0.02, 1)])
    wait = gate.delay(KEY)
    assert type(wait) is not Again
    assert wait == pytest.approx(1.0)  # the reset, a second after the reading


def test_a_quota_read_whole_all_along_shows_its_refill_across_resets() -> None:
    """A slow client of a fast bucket: one reading a second, each whole and naming the next
    second's reset, with successes between. No two readings name the same reset, but a quota
    read whole all along refilled what was spent, whichever window it was in: the pace grows
    past what is left over the reset instead of staying there."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    for second in range(3):
        _feed(gate, clock, [(second + 0.5, 10)])
        for n in range(6):
            gate.succeeded(KEY, None, second + 0.55 + 0.07 * n)
    _feed(gate, clock, [(3.5, 10)])
    rate = gate.rate(KEY)
    assert rate is not None and rate > 0.97 * 10 / 0.5 + 1.0, rate


def test_answers_read_one_after_another_do_not_each_let_a_send_go() -> None:
    """The first crowd's answers come back together, each saying one fewer is left: each is a
    cut of the pace, and a cut restarts the schedule. It restarts one interval of the new pace
    from now, so the send asking after each reading waits its turn instead of going at once
    into a bucket the crowd has drained (one 429 per reading, 6-10 in aiohttp's `x` crawl)."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)
    gate.generation(KEY)  # a flow that asks again after waiting
    _feed(gate, clock, [(0.0250, 10)])
    assert gate.delay(KEY) == 0.0  # the first send after the first reading
    waits = []
    for n, left in enumerate(range(9, 2, -1)):
        _feed(gate, clock, [(0.0252 + 0.0003 * n, left)])
        waits.append(gate.delay(KEY))
    assert min(waits) > 0.05, waits


def test_an_origin_announcing_a_full_bucket_is_read_on_every_answer() -> None:
    """A new origin's first answer says its bucket is full: no pace yet (what is left of a
    full bucket says nothing about its rate). The answers after it in the same second are read
    too, not skipped as a calm origin's are, so the pace starts as what is left falls, before
    the bucket is spent (requests' threads met 2-6 429s after the first answer otherwise)."""
    clock = VirtualClock()
    gate = HostGate(clock=clock)

    def answer(at: float, remaining: int, reset: str) -> None:
        clock.now = at
        headers = {"RateLimit-Limit": "11", "RateLimit-Remaining": str(remaining)}
        gate.succeeded(KEY, {**headers, "RateLimit-Reset": reset}, at)

    answer(0.006, 10, "0.005")
    assert gate.rate(KEY) is None
    answer(0.008, 9, "0.01")
    answer(0.010, 6, "0.025")
    assert gate.rate(KEY) is not None
