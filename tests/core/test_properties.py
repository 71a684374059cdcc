"""Properties of the decision core that must hold for every input, checked with hypothesis.

- A wait is never negative, never above `Policy.max_wait`, and 0 unless the action is RETRY.
- No sequence of outcomes gets a sixth counted send or a second re-exchange from `Policy()`.
- A valid Retry-After is never shortened.
- Nothing a server sends makes `decide` or `parse_retry_after` raise.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from forbear import (
    Action,
    Backoff,
    ErrorKind,
    Jitter,
    Outcome,
    Policy,
    RetryState,
    decide,
    parse_retry_after,
)
from forbear._retry_after import parse_http_date
from forbear.rules import REASONS

FAST = settings(max_examples=150, deadline=None)
NOW = 10_000.0

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

RATE_LIMIT_NAMES = [
    "Retry-After",
    "retry-after",
    "RateLimit",
    "RateLimit-Reset",
    "RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Remaining",
]


def imf_fixdate(when: float) -> str:
    t = time.gmtime(when)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def rfc850_date(when: float) -> str:
    t = time.gmtime(when)
    return (
        f"{_LONG_DAYS[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def asctime_date(when: float) -> str:
    t = time.gmtime(when)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year:04d}"
    )


#: Unix times from 1970 to the end of 9999.
instants = st.integers(min_value=0, max_value=253_402_300_799).map(float)
walls = st.floats(min_value=0.0, max_value=4e9)

#: Header text as a server might send it: valid forms, near misses and arbitrary junk.
header_values = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.from_regex(r"\A[ \t]?[0-9]{1,5}(\.[0-9]{1,3})?[ \t]?\Z"),
    st.from_regex(r"\A[0-9]{1,3}(, ?[0-9]{1,3}){1,3}\Z"),
    st.from_regex(r"\A(\"[a-z]+\";)?(r=[0-9]{1,3};)?t=[0-9]{1,10}\Z"),
    instants.map(imf_fixdate),
    instants.map(asctime_date),
    instants.map(rfc850_date),
)
header_maps = st.dictionaries(
    st.one_of(st.sampled_from(RATE_LIMIT_NAMES), st.text(max_size=12)),
    header_values,
    max_size=6,
)
outcomes = st.one_of(
    st.builds(Outcome.response, st.integers(min_value=100, max_value=599), header_maps),
    st.sampled_from(list(ErrorKind)).map(Outcome.error),
)
methods = st.sampled_from(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", "POST", "PATCH"])


@st.composite
def backoffs(draw: st.DrawFn) -> Backoff:
    initial = draw(st.floats(min_value=0.0, max_value=100.0))
    extra = draw(st.floats(min_value=0.0, max_value=1e4))
    return Backoff(
        initial=initial,
        multiplier=draw(st.floats(min_value=1.0, max_value=1e6)),
        max=initial + extra,
        jitter=draw(st.sampled_from(list(Jitter))),
    )


policies = st.builds(
    Policy,
    max_attempts=st.integers(min_value=1, max_value=12),
    max_reauths=st.integers(min_value=0, max_value=3),
    backoff=backoffs(),
    max_wait=st.floats(min_value=0.0, max_value=1e4),
    deadline=st.none() | st.floats(min_value=0.0, max_value=1e5),
    retry_after_jitter=st.floats(min_value=0.0, max_value=1.0),
    rate_limit_headers=st.booleans(),
)


@st.composite
def states(draw: st.DrawFn) -> RetryState:
    headers = {"Idempotency-Key": "k"} if draw(st.booleans()) else {}
    state = RetryState.start(
        draw(methods),
        headers=headers,
        can_reauth=draw(st.booleans()),
        replayable=draw(st.booleans()),
        now=NOW,
    )
    return state._replace(
        attempts=draw(st.integers(min_value=1, max_value=10**6)),
        reauths=draw(st.integers(min_value=0, max_value=4)),
        last_wait=draw(st.floats(min_value=0.0, max_value=1e6)),
    )


@FAST
@given(
    policy=policies,
    state=states(),
    outcome=outcomes,
    elapsed=st.floats(min_value=0.0, max_value=1e6),
    wall=walls,
    seed=st.integers(),
)
def test_wait_is_never_negative_nor_above_max_wait(
    policy: Policy, state: RetryState, outcome: Outcome, elapsed: float, wall: float, seed: int
) -> None:
    """Any policy, state and outcome gives a finite wait in [0, max_wait], 0 unless RETRY."""
    decision = decide(policy, state, outcome, now=NOW + elapsed, wall=wall, rng=random.Random(seed))
    assert math.isfinite(decision.wait)
    assert 0.0 <= decision.wait <= policy.max_wait
    if decision.action is not Action.RETRY:
        assert decision.wait == 0.0
    assert decision.reason in REASONS
    assert decision.attempt == state.sends
    if decision.retry_after is not None:
        assert math.isfinite(decision.retry_after)
        assert decision.retry_after >= 0.0


@FAST
@given(
    script=st.lists(outcomes, min_size=1, max_size=12),
    method=methods,
    keyed=st.booleans(),
    can_reauth=st.booleans(),
    seed=st.integers(),
)
def test_default_policy_never_allows_a_sixth_attempt_or_second_reauth(
    script: list[Outcome], method: str, keyed: bool, can_reauth: bool, seed: int
) -> None:
    """Under `Policy()`, any run of outcomes ends within 5 counted sends and 1 re-exchange."""
    policy, rng = Policy(), random.Random(seed)
    headers = {"Idempotency-Key": "k"} if keyed else {}
    state = RetryState.start(method, headers=headers, can_reauth=can_reauth, now=NOW)
    sends = 1
    for step in range(100):
        decision = decide(policy, state, script[step % len(script)], now=NOW, wall=0.0, rng=rng)
        state = state.next(decision)
        if decision.action in (Action.RETURN, Action.GIVE_UP):
            break
        sends += 1
    else:
        raise AssertionError(f"no final decision after 100 steps: {state.note()}")
    assert state.attempts <= 5
    assert state.reauths <= (1 if can_reauth else 0)
    assert sends == state.sends <= 5 + state.reauths
    assert len(state.history) == sends


@FAST
@given(policy=policies, state=states(), outcome=outcomes, seed=st.integers())
def test_one_shot_body_is_never_resent(
    policy: Policy, state: RetryState, outcome: Outcome, seed: int
) -> None:
    """A request whose body cannot be replayed is never retried nor re-exchanged."""
    state = state._replace(replayable=False)
    decision = decide(policy, state, outcome, now=NOW, wall=0.0, rng=random.Random(seed))
    assert decision.action in (Action.RETURN, Action.GIVE_UP)


@FAST
@given(
    whole=st.integers(min_value=0, max_value=10**5),
    fraction=st.none() | st.from_regex(r"\A[0-9]{1,6}\Z"),
    status=st.sampled_from([429, 500, 502, 503, 504]),
    policy=policies,
    seed=st.integers(),
)
def test_retry_after_seconds_is_never_shortened(
    whole: int, fraction: str | None, status: int, policy: Policy, seed: int
) -> None:
    """A valid delta-seconds Retry-After is waited in full, or the request gives up."""
    value = str(whole) if fraction is None else f"{whole}.{fraction}"
    named = float(value)
    policy = dataclasses.replace(policy, max_attempts=max(policy.max_attempts, 2), deadline=None)
    state = RetryState.start("GET", headers={}, now=NOW)
    outcome = Outcome.response(status, {"Retry-After": value})
    decision = decide(policy, state, outcome, now=NOW, wall=0.0, rng=random.Random(seed))
    assert decision.retry_after == named
    if named > policy.max_wait:
        assert (decision.action, decision.reason) == (Action.GIVE_UP, "wait-exceeds-max")
    else:
        assert (decision.action, decision.reason) == (Action.RETRY, "retry-after")
        assert named <= decision.wait <= named + min(named * policy.retry_after_jitter, 1.0)


@FAST
@given(
    delay=st.integers(min_value=0, max_value=120),
    wall=st.integers(min_value=1_000_000_000, max_value=4_000_000_000),
    form=st.sampled_from([imf_fixdate, rfc850_date, asctime_date]),
    seed=st.integers(),
)
def test_retry_after_date_is_never_shortened(delay: int, wall: int, form: Any, seed: int) -> None:
    """An HTTP-date Retry-After, in any of its three forms, is waited until that instant."""
    outcome = Outcome.response(429, {"Retry-After": form(wall + delay)})
    state = RetryState.start("POST", headers={}, now=NOW)
    decision = decide(Policy(), state, outcome, now=NOW, wall=float(wall), rng=random.Random(seed))
    assert decision.retry_after == float(delay)
    if delay > 60:
        assert decision.action is Action.GIVE_UP
    else:
        assert decision.action is Action.RETRY
        assert delay <= decision.wait <= min(delay + min(delay * 0.1, 1.0), 60.0)


@FAST
@given(value=header_values, wall=walls)
def test_parse_retry_after_never_raises(value: str, wall: float) -> None:
    """Any header text gives None or one finite, non-negative number of seconds."""
    seconds = parse_retry_after(value, wall=wall)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0.0)
    when = parse_http_date(value, wall=wall)
    assert when is None or math.isfinite(when)


@FAST
@given(value=st.text(), wall=walls)
def test_parse_retry_after_accepts_only_ascii_numbers_or_dates(value: str, wall: float) -> None:
    """Whatever parses is ASCII digits (with a fraction) or an HTTP-date, never other text."""
    seconds = parse_retry_after(value, wall=wall)
    if seconds is not None:
        stripped = value.strip(" \t")
        assert stripped.isascii()
        assert stripped[:1].isdigit() or stripped[:3] in _DAYS


@FAST
@given(
    seconds=st.integers(min_value=0, max_value=10**9), pad=st.sampled_from(["", " ", "\t", "  "])
)
def test_delta_seconds_round_trip(seconds: int, pad: str) -> None:
    """Every whole number of seconds up to 10**9, however padded, parses to itself."""
    assert parse_retry_after(f"{pad}{seconds}{pad}", wall=0.0) == float(seconds)


@FAST
@given(when=instants)
def test_http_date_round_trip(when: float) -> None:
    """Every instant formatted in each HTTP-date form parses back to itself."""
    assert parse_http_date(imf_fixdate(when)) == when
    assert parse_http_date(asctime_date(when)) == when
    # A two-digit year is read within 50 years of the wall clock.
    assert parse_http_date(rfc850_date(when), wall=when) == when
