"""The POST matrix: a non-idempotent request meets every fault, with and without a key.

Without an ``Idempotency-Key`` a POST that may have reached the server is never sent again:
after a reset, a read timeout or a 503 the server's handler has run exactly once. A refused
connection (the request never left) and a 429 (the server refused it unprocessed) are retried
all the same. With a key, the caller's own or one forbear injects, every fault is retried up to
the cap and every arrival carries the same key and the same body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

from forbear import Backoff, Jitter, Policy

from .conftest import Events
from .drivers import Answer, Driver, Options

MAX_ATTEMPTS = 3
POLICY = Policy(
    max_attempts=MAX_ATTEMPTS, backoff=Backoff(initial=0.01, max=0.02, jitter=Jitter.NONE)
)
#: Each attempt's timeout when the fault is a read timeout (the server answers a second later),
#: and otherwise, when no answer should ever be late.
SHORT_TIMEOUT = 0.2
TIMEOUT = 5.0
PATH = "/orders"
BODY = b'{"order": 42, "amount": "12.50"}'
CALLER_KEY = "order-42-attempt-a"
_KEY_LINE = re.compile(rb"^idempotency-key:[ \t]*(.*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Fault:
    """One fault a POST can meet, and how it ends."""

    name: str
    #: Sends made (arrivals, or connection attempts for a refused port) without and with a key.
    sends_without_key: int
    sends_with_key: int
    #: The final status without and with a key (None: the request raised).
    status_without_key: int | None
    status_with_key: int | None
    #: The error kinds the final exception may have (when the request raised).
    kinds: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.name


FAULTS = (
    Fault("refused", MAX_ATTEMPTS, MAX_ATTEMPTS, None, None, frozenset({"connect"})),
    Fault("reset-after-send", 1, MAX_ATTEMPTS, None, None, frozenset({"disconnect", "protocol"})),
    Fault("read-timeout", 1, MAX_ATTEMPTS, None, None, frozenset({"read_timeout"})),
    Fault("503", 1, MAX_ATTEMPTS, 503, 200),
    Fault("429", 2, 2, 200, 200),
)


class Target:
    """Where one fault is served, and what arrived there."""

    def __init__(
        self, fault: Fault, server: FaultServer, raw: RawFaults, refused_port: int
    ) -> None:
        self.fault = fault
        self.server = server
        self.raw = raw
        self.timeout = SHORT_TIMEOUT if fault.name == "read-timeout" else TIMEOUT
        if fault.name == "refused":
            self.url = f"http://127.0.0.1:{refused_port}{PATH}"
        elif fault.name == "reset-after-send":
            raw.mode = RawMode.RESET_AFTER_REQUEST
            self.url = raw.url + PATH
        else:
            self.url = server.url + PATH
            if fault.name == "read-timeout":
                server.always(PATH, Reply(201, delay=1.0))
            elif fault.name == "503":
                server.script(PATH, [Reply(503)] * (MAX_ATTEMPTS - 1))
            else:
                server.script(PATH, [Reply(429, retry_after=0)])

    def arrivals(self) -> list[tuple[str | None, bytes]]:
        """Each request that reached the server: its ``Idempotency-Key`` and its body."""
        if self.fault.name == "refused":
            return []
        if self.fault.name == "reset-after-send":
            found = []
            for arrival in self.raw.arrivals():
                head, _, body = arrival.raw.partition(b"\r\n\r\n")
                match = _KEY_LINE.search(head)
                found.append((match[1].decode() if match else None, body))
            return found
        return [(a.header("Idempotency-Key"), a.body) for a in self.server.arrivals(PATH)]


@pytest.fixture(params=FAULTS, ids=str)
def target(
    request: pytest.FixtureRequest,
    fault_server: FaultServer,
    raw_faults: RawFaults,
    refused_port: int,
) -> Target:
    """Each fault in turn, served live."""
    return Target(request.param, fault_server, raw_faults, refused_port)


def send_post(
    driver: Driver, target: Target, events: Events, *, key: str | None, inject: bool = False
) -> Answer:
    """One POST of `BODY` through a fresh client."""
    options = Options(POLICY, idempotency_keys=inject, on_event=events, timeout=target.timeout)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    with driver.open(options) as session:
        return session.send("POST", target.url, headers=headers, body=BODY)


def assert_ended(answer: Answer, fault: Fault, status: int | None) -> None:
    """The request ended with ``status``, or raised one of the fault's kinds."""
    assert answer.status == status, answer.error
    if status is None:
        assert answer.kind in fault.kinds, answer.error


def test_post_without_key(driver: Driver, target: Target, events: Events) -> None:
    """Without a key, a POST that may have reached the server is sent exactly once."""
    fault = target.fault
    answer = send_post(driver, target, events, key=None)
    assert_ended(answer, fault, fault.status_without_key)
    arrivals = target.arrivals()
    if fault.name == "refused":
        assert len(events.events) == fault.sends_without_key
    else:
        assert len(arrivals) == fault.sends_without_key
    assert all(key is None and body == BODY for key, body in arrivals)


def test_post_with_caller_key(driver: Driver, target: Target, events: Events) -> None:
    """With the caller's key, every fault is retried to the cap, each send with that key."""
    fault = target.fault
    answer = send_post(driver, target, events, key=CALLER_KEY)
    assert_ended(answer, fault, fault.status_with_key)
    arrivals = target.arrivals()
    if fault.name == "refused":
        assert len(events.events) == fault.sends_with_key
    else:
        assert len(arrivals) == fault.sends_with_key
    assert all(key == CALLER_KEY and body == BODY for key, body in arrivals)


def test_post_with_injected_key(header_driver: Driver, target: Target, events: Events) -> None:
    """With forbear's key, every fault is retried to the cap, each send with one identical key."""
    fault = target.fault
    answer = send_post(header_driver, target, events, key=None, inject=True)
    assert_ended(answer, fault, fault.status_with_key)
    arrivals = target.arrivals()
    if fault.name == "refused":
        assert len(events.events) == fault.sends_with_key
    else:
        assert len(arrivals) == fault.sends_with_key
    keys = {key for key, _ in arrivals}
    assert len(keys) <= 1 and None not in keys
    assert all(body == BODY for _, body in arrivals)
