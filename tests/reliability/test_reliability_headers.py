"""Hostile wait headers: each adapter ends within `max_wait`, never raises, sends at most the cap.

Each row makes every request to the path answer the same status with the same hostile header,
so a client that retried past the cap would show an extra arrival. The policy is fast (a
10 ms backoff, two attempts, ``max_wait`` of one second), so the whole table is quick; the
expectations are the core's documented reading of each value: an invalid value falls back to
backoff, a valid one within ``max_wait`` is honoured, a longer one gives up at once. Waits are
checked where they happen: between two arrivals at the server.

Leading and trailing whitespace around a field value never reaches forbear over HTTP/1.1:
h11 refuses to send it and every client's parser strips it. The rows keep the whitespace a
value can still carry: inside a list (``0 ,<TAB>0``) and non-ASCII spaces (NBSP) around it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from forbear_testing import Arrival, FaultServer, Reply

from forbear import Backoff, Jitter, Policy

from .conftest import Events
from .drivers import Driver, Options

MAX_ATTEMPTS = 2
MAX_WAIT = 1.0
POLICY = Policy(
    max_attempts=MAX_ATTEMPTS,
    max_wait=MAX_WAIT,
    backoff=Backoff(initial=0.01, max=0.02, jitter=Jitter.NONE),
)
#: Scheduling noise allowed on top of a wait, on a loaded two-core machine.
SLACK = 0.25
PATH = "/hostile-header"


def _utf8(text: str) -> str:
    """``text`` as the UTF-8 bytes a server puts on the wire (Starlette encodes Latin-1)."""
    return text.encode().decode("latin-1")


@dataclass(frozen=True)
class Case:
    """One hostile response and what the core must make of it."""

    name: str
    status: int
    headers: tuple[tuple[str, str], ...]
    #: "backoff" (invalid: retried on backoff up to the cap), "honoured" (a valid wait within
    #: max_wait, retried up to the cap) or "too-long" (a valid wait past max_wait: given up).
    reading: str
    #: The reason a retry names when the wait is honoured.
    honoured_reason: str = "retry-after"

    def __str__(self) -> str:
        return self.name

    @property
    def sends(self) -> int:
        """How many requests reach the server."""
        return 1 if self.reading == "too-long" else MAX_ATTEMPTS

    @property
    def reasons(self) -> list[str]:
        """The decisions' reasons, in order."""
        if self.reading == "too-long":
            return ["wait-exceeds-max"]
        retry = "backoff" if self.reading == "backoff" else self.honoured_reason
        return [retry] * (MAX_ATTEMPTS - 1) + ["attempts-exhausted"]


def retry_after(name: str, value: str, reading: str) -> Case:
    """A 503 carrying one ``Retry-After`` field."""
    return Case(name, 503, (("Retry-After", value),), reading)


def rate_limit(name: str, reading: str, *fields: tuple[str, str]) -> Case:
    """A 429 carrying rate-limit fields and no ``Retry-After``."""
    return Case(name, 429, fields, reading, honoured_reason="rate-limit-reset")


BIG = "9" * 5000  # past Python's 4,300-digit limit for int(str)

CASES = (
    retry_after("minus-one", "-1", "backoff"),
    retry_after("plus-one", "+1", "backoff"),
    retry_after("fraction-past-max", "1.5", "too-long"),
    retry_after("exponent", "1e3", "backoff"),
    retry_after("inf", "inf", "backoff"),
    retry_after("nan", "nan", "backoff"),
    retry_after("empty", "", "backoff"),
    retry_after("garbage", "soon, maybe", "backoff"),
    retry_after("arabic-indic-five", _utf8("\u0665"), "backoff"),
    retry_after("huge-delta", "99999999", "too-long"),
    retry_after("5000-digits", BIG, "too-long"),
    retry_after("year-9999", "Fri, 31 Dec 9999 23:59:59 GMT", "too-long"),
    retry_after("past-date", "Sun, 06 Nov 1994 08:49:37 GMT", "honoured"),
    retry_after("rfc850-past", "Sunday, 06-Nov-94 08:49:37 GMT", "honoured"),
    retry_after("asctime-past", "Sun Nov  6 08:49:37 1994", "honoured"),
    retry_after("asctime-year-9999", "Fri Dec 31 23:59:59 9999", "too-long"),
    retry_after("february-31", "Sat, 31 Feb 2024 00:00:00 GMT", "backoff"),
    retry_after("two-values-joined", "1, 2", "backoff"),
    retry_after("whitespace-inside-list", "0 ,\t0", "honoured"),
    retry_after("nbsp-around", "\xa00\xa0", "backoff"),
    Case("two-fields-disagree", 503, (("Retry-After", "0"), ("Retry-After", "7")), "backoff"),
    Case("two-fields-agree", 503, (("Retry-After", "0"), ("Retry-After", "0")), "honoured"),
    # Draft-07's Dictionary names the reset ``reset``: a ``t`` there is malformed, ignored.
    rate_limit(
        "ratelimit-reset-huge", "backoff", ("RateLimit", "limit=10, remaining=0, t=99999999")
    ),
    rate_limit(
        "ratelimit-reset-huge-draft07", "too-long", ("RateLimit", "remaining=0, reset=99999999")
    ),
    rate_limit("ratelimit-reset-5000-digits", "backoff", ("RateLimit", f"r=0, t={BIG}")),
    rate_limit("ratelimit-garbage", "backoff", ("RateLimit", "r=abc, t=xyz;;==")),
    rate_limit("ratelimit-conflicting-resets", "backoff", ("RateLimit", "r=0;t=1, r=0;t=2")),
    rate_limit("ratelimit-remaining-5000-digits", "backoff", ("RateLimit", f"r={BIG}, t=0")),
    rate_limit("policy-quota-400-digits", "backoff", ("RateLimit-Policy", "9" * 400 + ";w=1")),
    rate_limit("policy-window-5000-digits", "backoff", ("RateLimit-Policy", f"10;w={BIG}")),
    rate_limit("policy-one-a-day", "backoff", ("RateLimit-Policy", "1;w=86400")),
    rate_limit("policy-window-zero", "backoff", ("RateLimit-Policy", "10;w=0")),
    rate_limit(
        "x-ratelimit-epoch-far",
        "too-long",
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "99999999999"),
    ),
    rate_limit(
        "x-ratelimit-5000-digits",
        "backoff",
        ("X-RateLimit-Remaining", BIG),
        ("X-RateLimit-Reset", BIG),
    ),
    rate_limit("x-ratelimit-negative", "backoff", ("X-RateLimit-Reset", "-5")),
    rate_limit("ratelimit-reset-zero", "honoured", ("RateLimit-Reset", "0")),
)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_wait_header(
    driver: Driver, case: Case, fault_server: FaultServer, events: Events
) -> None:
    """A hostile wait header ends within max_wait, never raises, and sends at most the cap."""
    fault_server.always(PATH, Reply(case.status, headers=case.headers))
    with driver.open(Options(POLICY, on_event=events)) as session:
        answer = session.send("GET", fault_server.url + PATH)
    assert answer.error is None, (answer.error, answer.notes)
    assert answer.status == case.status
    assert len(fault_server.arrivals(PATH)) == case.sends
    assert events.reasons() == case.reasons
    assert all(event.wait <= MAX_WAIT for event in events.events)
    assert max(_gaps(fault_server.arrivals(PATH)), default=0.0) <= MAX_WAIT + SLACK
    assert answer.elapsed <= (case.sends - 1) * MAX_WAIT + SLACK


def test_gate_pacing_wait_bounded_by_max_wait(driver: Driver, fault_server: FaultServer) -> None:
    """A 429 announcing one request a day paces later sends no longer than max_wait apart."""
    max_wait = 0.3
    policy = Policy(
        max_attempts=3,
        max_wait=max_wait,
        backoff=Backoff(initial=0.01, max=0.01, jitter=Jitter.NONE),
    )
    fault_server.always(PATH, Reply(429, headers={"RateLimit-Policy": "1;w=86400"}))
    with driver.open(Options(policy)) as session:
        answer = session.send("GET", fault_server.url + PATH)
    assert answer.status == 429
    arrivals = fault_server.arrivals(PATH)
    assert len(arrivals) == 3
    assert max(_gaps(arrivals)) <= max_wait + SLACK


def _gaps(arrivals: Sequence[Arrival]) -> list[float]:
    """Seconds between consecutive arrivals."""
    return [later.time - earlier.time for earlier, later in itertools.pairwise(arrivals)]
