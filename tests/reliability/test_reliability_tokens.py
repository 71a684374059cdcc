"""Token exchanges that fail: they raise, or hang past their timeout.

A client holds a token the server has just expired; several requests at once meet the 401 and
share one re-exchange, which fails. Every waiter must fail promptly with the typed
`TokenExchangeError`, no refused request may be sent again, and once the exchange works again
the next request exchanges afresh and succeeds. Exchanges are sync or async functions, whatever
the client, since `TokenSource` runs either kind under either kind of client.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest
from forbear_testing import FaultServer

from forbear import Backoff, Jitter, Policy, TokenExchangeError, TokenSource

from .drivers import Driver, Options

POLICY = Policy(max_attempts=3, backoff=Backoff(initial=0.01, max=0.02, jitter=Jitter.NONE))
#: `TokenSource.timeout`: the longest an exchange (or a wait for one) may take.
EXCHANGE_TIMEOUT = 0.2
#: A waiter that joined a failed exchange fails within its own timeout of its 401; one that
#: came after starts (and loses) its own: at most two timeouts, plus scheduling slack.
PROMPT = 2 * EXCHANGE_TIMEOUT + 0.3
WAITERS = 4
PATH = "/api/items"


class Exchange:
    """The user's exchange: issues a token from the server, raises, or hangs, as told."""

    def __init__(self, server: FaultServer) -> None:
        self.server = server
        self.mode = "ok"
        self.calls = 0
        self._lock = threading.Lock()
        #: Set when the test ends, so a hung sync exchange's thread can finish.
        self.released = threading.Event()

    def _begin(self) -> str:
        with self._lock:
            self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("the identity provider is down")
        return self.mode

    def sync(self) -> str:
        """A sync exchange."""
        if self._begin() == "hang":
            # Abandoned by the token source; once released it must not issue a token, which
            # would expire the tokens of whatever test runs next.
            self.released.wait(30.0)
            raise RuntimeError("released")
        return self.server.issue_token()

    async def async_(self) -> str:
        """An async exchange (asyncio or trio)."""
        if self._begin() == "hang":
            await anyio.sleep(30.0)
            raise RuntimeError("not cancelled")
        return self.server.issue_token()


@pytest.fixture
def exchange(fault_server: FaultServer) -> Iterator[Exchange]:
    """An exchange issuing tokens from the fault server, released at the end of the test."""
    fault_server.require_token(PATH)
    exchange = Exchange(fault_server)
    yield exchange
    exchange.released.set()


@pytest.mark.parametrize("mode", ["raise", "hang"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_failed_exchange(
    header_driver: Driver, flavour: str, mode: str, exchange: Exchange, fault_server: FaultServer
) -> None:
    """A failed re-exchange fails every waiter promptly and typed; the next one works again."""
    function = exchange.sync if flavour == "sync" else exchange.async_
    token = TokenSource(function, origins=[fault_server.url], timeout=EXCHANGE_TIMEOUT)
    url = fault_server.url + PATH
    with header_driver.open(Options(POLICY, token=token)) as session:
        assert session.send("GET", url).status == 200
        assert (exchange.calls, len(fault_server.arrivals(PATH))) == (1, 1)

        fault_server.expire_tokens()
        exchange.mode = mode
        answers = session.gather(WAITERS, "GET", url)
        for answer in answers:
            assert isinstance(answer.error, TokenExchangeError), answer
            assert answer.elapsed < PROMPT
        # Each request went out once with the stale token; none was sent again.
        assert len(fault_server.arrivals(PATH)) == 1 + WAITERS
        failed_exchanges = exchange.calls - 1
        assert 1 <= failed_exchanges <= WAITERS

        exchange.mode = "ok"
        answer = session.send("GET", url)
        assert (answer.status, answer.body) == (200, b"ok"), answer.error
        assert exchange.calls == 1 + failed_exchanges + 1
        assert len(fault_server.arrivals(PATH)) == 1 + WAITERS + 2
    statuses = [arrival.status for arrival in fault_server.arrivals(PATH)]
    assert statuses == [200] + [401] * WAITERS + [401, 200]
