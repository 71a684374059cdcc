"""Cancellation during a 30 s back-off: the request ends at once and is never sent again.

A 503 makes the adapter sleep 30 s before its retry; the test cancels the request the moment
the RETRY decision is emitted. Async clients are cancelled by their own loop: one
``task.cancel()`` on asyncio (httpx, aiohttp), a cancel scope on trio (httpx). A sync client
(httpx, requests, backoff) has no cancellation of its own: a watchdog thread interrupts the
main thread with a signal, as Ctrl-C would, and the handler raises inside the adapter's
``time.sleep``. Either way the request must end within 0.1 s (with slack for a loaded
two-core machine), the server must see no second arrival, and the client must stay usable.
"""

from __future__ import annotations

from forbear_testing import FaultServer, Reply

from forbear import Backoff, Jitter, Policy

from .conftest import Events
from .drivers import Driver, Options

BACKOFF = 30.0
POLICY = Policy(
    max_attempts=3,
    max_wait=60.0,
    backoff=Backoff(initial=BACKOFF, max=BACKOFF, jitter=Jitter.NONE),
)
#: The promise is 0.1 s; the rest is slack for a loaded two-core machine.
CANCEL_LIMIT = 0.25
PATH = "/slow-to-recover"


def test_cancel_during_backoff(driver: Driver, fault_server: FaultServer, events: Events) -> None:
    """Cancelled in a 30 s back-off, the request ends at once and is never sent again."""
    fault_server.always(PATH, Reply(503))
    with driver.open(Options(POLICY, on_event=events)) as session:
        cancellation = session.cancel_when(events.retrying, "GET", fault_server.url + PATH)
        assert not cancellation.completed
        assert cancellation.elapsed < CANCEL_LIMIT
        after = session.send("GET", fault_server.url + "/after")
        assert (after.status, after.body) == (200, b"ok")
    # One decision for the cancelled request, then the next request's success.
    decisions = [(event.reason, event.wait) for event in events.events]
    assert decisions == [("backoff", BACKOFF), ("success", 0.0)]
    assert len(fault_server.arrivals(PATH)) == 1
    assert len(fault_server.arrivals("/after")) == 1
