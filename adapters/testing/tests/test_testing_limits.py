"""The rate limiters, driven with plain clock values."""

from __future__ import annotations

import pytest

from forbear_testing import EpochWindow, FixedWindow, InFlight, TokenBucket
from forbear_testing._limits import retry_after_seconds


def test_bucket_allows_one_plus_burst_at_once() -> None:
    """A full bucket lets 1 + burst requests through at the same instant."""
    bucket = TokenBucket(2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [0.0, 0.0, 0.0, 0.0, 0.5]


def test_bucket_refills_at_its_rate() -> None:
    """An empty bucket gains rate tokens a second, never more than its capacity."""
    bucket = TokenBucket(4.0, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.1) == pytest.approx(0.15)
    assert bucket.take(0.25) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(0.25)


def test_refused_request_takes_nothing() -> None:
    """A refused request does not push the next allowed moment further away."""
    bucket = TokenBucket(1.0, now=0.0)
    bucket.take(0.0)
    for _ in range(10):
        assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0


def test_bucket_tolerates_a_clock_going_back() -> None:
    """An earlier ``now`` than the last one refills nothing and never raises."""
    bucket = TokenBucket(1.0, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 0), (-1, 0), (float("inf"), 0), (1, -1)])
def test_bucket_refuses_bad_configuration(rate: float, burst: int) -> None:
    """A rate that is not positive and finite, or a negative burst, raises ValueError."""
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, now=0.0)


def test_fixed_window_counts_per_key() -> None:
    """Each key gets limit requests per window; the refusal says when the window resets."""
    window = FixedWindow(2, 60.0)
    assert [window.hit("alice", t) for t in (0.0, 1.0)] == [0.0, 0.0]
    assert window.hit("alice", 15.0) == 45.0
    assert window.hit("bob", 15.0) == 0.0
    assert window.hit("alice", 60.0) == 0.0


def test_fixed_window_clear_forgets() -> None:
    """clear starts every key afresh."""
    window = FixedWindow(1, 60.0)
    window.hit("a", 0.0)
    window.clear()
    assert window.hit("a", 1.0) == 0.0


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: int) -> None:
    """A wait becomes a whole number of seconds, rounded up, at least one."""
    assert retry_after_seconds(wait) == header


def test_bucket_rate_changes_from_now() -> None:
    """set_rate keeps the tokens earned so far and refills at the new rate from then on."""
    bucket = TokenBucket(10.0, now=0.0)
    assert bucket.take(0.0) == 0.0
    bucket.set_rate(1.0, now=0.05)  # half a token earned at the old rate, kept
    assert bucket.take(0.05) == pytest.approx(0.5)
    assert bucket.take(0.55) == 0.0
    bucket.set_rate(100.0, now=0.55)
    assert bucket.take(0.56) == 0.0
    with pytest.raises(ValueError):
        bucket.set_rate(0, now=1.0)


def test_epoch_window_is_aligned_to_unix_time() -> None:
    """Windows start at multiples of the window since the epoch; the reset is the window's end."""
    window = EpochWindow(2, 10.0)
    assert window.hit("a", 1_700_000_003.0) == (True, 1, 1_700_000_010.0)
    assert window.hit("a", 1_700_000_009.0) == (True, 0, 1_700_000_010.0)
    assert window.hit("a", 1_700_000_009.5) == (False, 0, 1_700_000_010.0)
    assert window.hit("b", 1_700_000_009.5) == (True, 1, 1_700_000_010.0)
    assert window.hit("a", 1_700_000_010.0) == (True, 1, 1_700_000_020.0)
    with pytest.raises(ValueError):
        EpochWindow(0, 10.0)


def test_in_flight_admits_up_to_its_limit() -> None:
    """enter admits while fewer than limit are in flight; leave frees a place."""
    flight = InFlight(2)
    assert [flight.enter() for _ in range(3)] == [True, True, False]
    flight.leave()
    assert flight.enter()
    assert flight.flying == 2
