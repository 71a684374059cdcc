"""`TokenSource`: the current bearer token and its single-flight re-exchange.

The user's ``exchange`` callable (sync, async, or a plain callable returning an awaitable)
returns a fresh token. Every caller refused with the same stale token shares one exchange,
whatever thread or event loop it runs on (plain threads, asyncio and trio loops, in any mix):
the first caller leads the exchange, the others wait for its outcome. A failing or hung
exchange fails every waiter with one `TokenExchangeError` that never contains the token, and
leaves the source usable: the next stale token exchanges again. The token is attached only to
requests whose origin is listed, so a redirect to another host never carries it. The token
itself never appears in `repr`, events or exceptions.

Coordination is loop-agnostic: one `threading.Lock` guards a `_Flight` record (the exchange
under way, its deadline and outcome), never held across an ``await``. Sync waiters block on
the flight's `threading.Event`; async waiters poll it with short ``anyio.sleep`` steps, so no
loop is blocked and no loop-bound primitive is shared between loops.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.to_thread

from ._gate import origin_of

__all__ = ["TokenExchangeError", "TokenSource"]

Exchange = Callable[[], "str | Awaitable[str]"]

#: An async waiter checks the exchange under way after this long, then twice as long each
#: time up to `_LAST_POLL`: a few milliseconds of latency, without blocking its event loop.
_FIRST_POLL = 0.001
_LAST_POLL = 0.005


class TokenExchangeError(Exception):
    """The token exchange raised, returned no token, or took longer than its timeout.

    The message names only the failure's type; the original exception is kept on
    ``original`` for debugging and deliberately not chained (its text may hold credentials).
    """

    def __init__(self, message: str, *, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_exchange_error, (str(self),))


def _rebuild_exchange_error(message: str) -> TokenExchangeError:
    return TokenExchangeError(message)


class _Flight:
    """One exchange under way and its outcome, shared by every caller that joined it.

    Written only under the source's lock; ``done`` is set once the outcome is in (a token, an
    error, or ``abandoned``: its leader was cancelled and the callers must try again).
    """

    __slots__ = (
        "abandoned",
        "deadline",
        "done",
        "error",
        "handoff",
        "leader_gone",
        "original",
        "token",
        "waiters",
    )

    def __init__(self, deadline: float) -> None:
        #: `time.monotonic` time at which the exchange counts as hung.
        self.deadline = deadline
        self.done = threading.Event()
        self.token: str | None = None
        self.error: str | None = None
        self.original: BaseException | None = None
        self.abandoned = False
        #: Callers that joined this flight, the leader included.
        self.waiters = 0
        #: An async leader is no longer there to await what a sync exchange returns.
        self.leader_gone = False
        #: The awaitable a sync exchange returned to its async leader, not yet settled.
        self.handoff: Awaitable[Any] | None = None


class TokenSource:
    """Holds the current token for ``origins`` and re-exchanges it at most once per stale token.

    ``exchange`` is called with no arguments and returns the new token (or an awaitable of it).
    The header sent is ``header: scheme token`` (``scheme=""`` sends the bare token, e.g. for
    ``header="X-API-Key"``). ``timeout`` bounds each exchange and each wait for one.

    One source may be shared by threads and by event loops in several threads at once: the
    callers refused with the same stale token share one exchange. Sync callers run the
    exchange on a helper thread (an awaitable it returns runs there under ``anyio.run``);
    async callers run a sync exchange on a worker thread and await an awaitable on their own
    loop.
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        origins: Iterable[str],
        header: str = "Authorization",
        scheme: str = "Bearer",
        timeout: float = 30.0,
        token: str | None = None,
    ) -> None:
        if isinstance(origins, str):
            origins = [origins]
        self._origins = frozenset(origin_of(origin) or origin for origin in origins)
        if not self._origins:
            raise ValueError("TokenSource.origins must name at least one origin")
        if timeout <= 0:
            raise ValueError(f"TokenSource.timeout must be > 0, got {timeout!r}")
        self._exchange = exchange
        self._is_async = inspect.iscoroutinefunction(exchange) or inspect.iscoroutinefunction(
            getattr(exchange, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.header = header
        self.scheme = scheme
        self.timeout = timeout
        self._token = token
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        #: Counts finished exchanges (successful, failed or timed out).
        self.exchanges = 0

    def __repr__(self) -> str:
        state = "set" if self._token is not None else "unset"
        return (
            f"TokenSource(origins={sorted(self._origins)!r}, header={self.header!r}, token={state})"
        )

    @property
    def origins(self) -> frozenset[str]:
        """The origins that receive the token."""
        return self._origins

    def applies_to(self, url: str) -> bool:
        """Whether a request to ``url`` should carry the token."""
        return origin_of(url) in self._origins

    def header_value(self, token: str) -> str:
        """The header value carrying ``token``."""
        return f"{self.scheme} {token}" if self.scheme else token

    # -- sync ----------------------------------------------------------------------------

    def get_sync(self) -> str:
        """The current token, exchanging for the first one if there is none yet."""
        token = self._token
        return token if token is not None else self.refresh_sync(None)

    def refresh_sync(self, stale: str | None) -> str:
        """A token newer than ``stale``: exchanges once, or joins the exchange under way."""
        while True:
            joined = self._join(stale)
            if isinstance(joined, str):
                return joined
            flight, leader = joined
            if leader:
                threading.Thread(
                    target=self._exchange_on_helper,
                    args=(flight,),
                    name="forbear-token-exchange",
                    daemon=True,
                ).start()
            if not flight.done.wait(max(flight.deadline - time.monotonic(), 0.0)):
                self._settle(flight, TimeoutError())
            token = self._outcome(flight)
            if token is not None:
                return token

    def _exchange_on_helper(self, flight: _Flight) -> None:
        """Runs the exchange for a sync leader, on a thread of its own, and settles ``flight``.

        A hung sync exchange keeps only this thread; its waiters leave at the deadline.
        """
        result: object
        try:
            if self._is_async:
                result = anyio.run(self._await_until_deadline, flight, self._exchange)
            else:
                value = self._exchange()
                if inspect.isawaitable(value):
                    result = anyio.run(self._await_until_deadline, flight, lambda: value)
                else:
                    result = value
        except BaseException as exc:  # handed to the waiters as the exchange's failure
            result = exc
        self._settle(flight, result)

    @staticmethod
    async def _await_until_deadline(flight: _Flight, call: Callable[[], Any]) -> object:
        with anyio.fail_after(max(flight.deadline - time.monotonic(), 0.0)):
            value = call()
            return await value if inspect.isawaitable(value) else value

    # -- async ---------------------------------------------------------------------------

    async def get_async(self) -> str:
        """The current token, exchanging for the first one if there is none yet."""
        token = self._token
        return token if token is not None else await self.refresh_async(None)

    async def refresh_async(self, stale: str | None) -> str:
        """A token newer than ``stale``: exchanges once, or joins the exchange under way."""
        while True:
            joined = self._join(stale)
            if isinstance(joined, str):
                return joined
            flight, leader = joined
            if leader:
                await self._lead_async(flight)
            await self._wait_async(flight)
            token = self._outcome(flight)
            if token is not None:
                return token

    async def _lead_async(self, flight: _Flight) -> None:
        """Runs the exchange on this task's loop (a sync one on a worker thread); settles it."""
        result: object
        try:
            with anyio.fail_after(max(flight.deadline - time.monotonic(), 0.0)):
                if self._is_async:
                    value: object = self._exchange()
                else:
                    boxed = await anyio.to_thread.run_sync(
                        self._exchange_on_worker, flight, abandon_on_cancel=True
                    )
                    if boxed is None:  # the worker settled the flight itself
                        return
                    value = boxed[0]
                result = await value if inspect.isawaitable(value) else value
        except TimeoutError:
            result = TimeoutError()
            with self._lock:
                pending, flight.handoff = flight.handoff, None
            if pending is not None:  # the worker's answer came back too late to be awaited
                _discard(pending)
        except Exception as exc:
            result = exc
        except BaseException:  # cancelled: the others must not wait on this task any longer
            self._leader_left(flight)
            raise
        self._settle(flight, result)

    def _exchange_on_worker(self, flight: _Flight) -> tuple[Awaitable[Any]] | None:
        """Calls a sync exchange for an async leader, on a worker thread.

        Settles ``flight`` with a plain answer or a failure, so it completes even if the
        leader was cancelled meanwhile; an awaitable goes back to the leader to await on its
        loop, or is dropped (and the flight abandoned) if the leader is gone. (It goes back in
        a tuple: trio refuses a worker function that returns a coroutine.)
        """
        try:
            value = self._exchange()
        except BaseException as exc:  # handed to the waiters as the exchange's failure
            self._settle(flight, exc)
            return None
        if not inspect.isawaitable(value):
            self._settle(flight, value)
            return None
        with self._lock:
            if not flight.leader_gone and not flight.done.is_set():
                flight.handoff = value
                return (value,)
        _discard(value)
        self._abandon(flight)
        return None

    def _leader_left(self, flight: _Flight) -> None:
        """An async leader was cancelled: abandon ``flight`` unless a worker still settles it."""
        with self._lock:
            flight.leader_gone = True
            pending, flight.handoff = flight.handoff, None
            if pending is None and not self._is_async:
                return  # the sync exchange is still running on its worker thread
        if pending is not None:
            _discard(pending)
        self._abandon(flight)

    async def _wait_async(self, flight: _Flight) -> None:
        """Waits for ``flight`` without blocking this loop, up to its deadline."""
        delay = _FIRST_POLL
        while not flight.done.is_set():
            remaining = flight.deadline - time.monotonic()
            if remaining <= 0.0:
                self._settle(flight, TimeoutError())
                return
            await anyio.sleep(min(delay, remaining))
            delay = min(delay * 2.0, _LAST_POLL)

    # -- shared --------------------------------------------------------------------------

    def _join(self, stale: str | None) -> str | tuple[_Flight, bool]:
        """The current token if it is newer than ``stale``; else the flight to wait on.

        The second item says whether this caller leads the flight (runs the exchange).
        """
        with self._lock:
            token = self._token
            if token is not None and token != stale:
                return token
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight(time.monotonic() + self.timeout)
            flight.waiters += 1
            return flight, leader

    def _settle(self, flight: _Flight, result: object) -> None:
        """Records the exchange's ``result`` on ``flight`` (the first one wins) and wakes it."""
        token: str | None = None
        message: str | None = None
        original: BaseException | None = None
        if isinstance(result, str) and result:
            token = result
        elif isinstance(result, TimeoutError):
            message, original = f"token exchange took longer than {self.timeout:g}s", result
        elif isinstance(result, BaseException):
            message, original = f"token exchange failed: {type(result).__name__}", result
        elif isinstance(result, str):
            message = "token exchange returned str, not a token string"
        else:
            original = TypeError(f"the exchange returned {type(result).__name__}, not a string")
            message = "token exchange failed: TypeError"
        with self._lock:
            if flight.done.is_set():
                return  # it timed out (or was abandoned) already: this late answer is dropped
            self.exchanges += 1
            if token is not None:
                self._token = flight.token = token
            else:
                flight.error, flight.original = message, original
            if self._flight is flight:
                self._flight = None
            flight.done.set()

    def _abandon(self, flight: _Flight) -> None:
        """Ends ``flight`` without an outcome: its waiters join or lead a new one."""
        with self._lock:
            if flight.done.is_set():
                return
            flight.abandoned = True
            if self._flight is flight:
                self._flight = None
            flight.done.set()

    @staticmethod
    def _outcome(flight: _Flight) -> str | None:
        """The token ``flight`` got; None if it was abandoned. Raises its error, unchained."""
        if flight.error is not None:
            raise TokenExchangeError(flight.error, original=flight.original)
        return flight.token


def _discard(value: Awaitable[Any]) -> None:
    """Closes a coroutine nobody will await, so it is not reported as never awaited."""
    if inspect.iscoroutine(value):
        value.close()
