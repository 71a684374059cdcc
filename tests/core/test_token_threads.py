"""`TokenSource` shared by plain threads and by event loops running in several threads at once.

One source serves sync threads, asyncio loops and trio loops together, each loop in its own
thread. Every caller refused with the same stale token shares one exchange, whichever thread or
loop leads it, and gets its token or its `TokenExchangeError`. The exchanges below hold still on
`threading.Event`s; the callers are lined up by counting those that joined the exchange under way,
so the only real waits are the short timeouts under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import anyio
import pytest

from forbear import TokenExchangeError, TokenSource

API = "https://api.example.test"
SECRET = "SENTINEL-exchange-secret-4711"
SYNC_THREADS = 6
LOOPS = ("asyncio", "asyncio", "trio", "trio")
TASKS_PER_LOOP = 8
CALLERS = SYNC_THREADS + len(LOOPS) * TASKS_PER_LOOP

Outcome = str | BaseException


class Exchange:
    """A sync exchange: counts its calls, holds until released; call n answers tokens[n - 1]."""

    def __init__(self, *tokens: str, fail: bool = False) -> None:
        self.tokens = list(tokens)
        self.fail = fail
        self.calls = 0
        self.threads: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            self.threads.append(threading.get_ident())
            answer = self.tokens[self.calls - 1] if self.calls <= len(self.tokens) else "spare"
        self.started.set()
        self.release.wait(timeout=10.0)
        if self.fail:
            raise ValueError(f"the identity provider said no to {SECRET}")
        return answer


class AsyncExchange(Exchange):
    """An ``async def`` exchange that holds on the same thread-safe release as `Exchange`."""

    async def __call__(self) -> str:  # type: ignore[override]
        with self._lock:
            self.calls += 1
            answer = self.tokens[self.calls - 1] if self.calls <= len(self.tokens) else "spare"
        self.started.set()
        # Wait without blocking the loop, on either backend, and give up at once if cancelled.
        await anyio.to_thread.run_sync(self.release.wait, 10.0, abandon_on_cancel=True)
        if self.fail:
            raise ValueError(f"the identity provider said no to {SECRET}")
        return answer


@pytest.fixture
def exchanges() -> Iterator[list[Exchange]]:
    """Exchanges registered here are released at teardown, so no thread lingers on them."""
    made: list[Exchange] = []
    yield made
    for exchange in made:
        exchange.release.set()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; a bounded wait, failing the test if it never does."""
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def joined(source: TokenSource, count: int) -> Callable[[], bool]:
    """Whether ``count`` callers have joined the exchange under way on ``source``."""

    def check() -> bool:
        flight = source._flight
        return flight is not None and flight.waiters >= count

    return check


class Callers:
    """Sync threads and event loops (each in its own thread) all calling ``refresh(stale)``.

    ``start`` releases them together; ``entered`` counts callers about to call; ``finish``
    joins every thread and returns each caller's token or error.
    """

    def __init__(
        self,
        source: TokenSource,
        stale: str | None,
        *,
        sync_threads: int = SYNC_THREADS,
        loops: tuple[str, ...] = LOOPS,
        tasks: int = TASKS_PER_LOOP,
    ) -> None:
        self.source = source
        self.stale = stale
        self.count = sync_threads + len(loops) * tasks
        self.results: list[Outcome] = []
        self.entered = 0
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._threads = [threading.Thread(target=self._sync_caller) for _ in range(sync_threads)]
        self._threads += [
            threading.Thread(target=self._loop, args=(backend, tasks)) for backend in loops
        ]

    def start(self) -> Callers:
        for thread in self._threads:
            thread.start()
        self._go.set()
        return self

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.results.append(outcome)

    def _enter(self) -> None:
        with self._lock:
            self.entered += 1

    def _sync_caller(self) -> None:
        self._go.wait()
        self._enter()
        try:
            outcome: Outcome = self.source.refresh_sync(self.stale)
        except BaseException as exc:
            outcome = exc
        self._record(outcome)

    def _loop(self, backend: str, tasks: int) -> None:
        recorded = 0

        async def caller() -> None:
            nonlocal recorded
            self._enter()
            try:
                outcome: Outcome = await self.source.refresh_async(self.stale)
            except Exception as exc:
                outcome = exc
            self._record(outcome)
            recorded += 1

        async def main() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(tasks):
                    group.start_soon(caller)

        self._go.wait()
        try:
            anyio.run(main, backend=backend)
        except BaseException as exc:  # a crashed loop fails every caller that had no outcome
            for _ in range(tasks - recorded):
                self._record(exc)

    def all_entered(self) -> bool:
        with self._lock:
            return self.entered == self.count

    def finish(self) -> list[Outcome]:
        for thread in self._threads:
            thread.join(timeout=10.0)
        assert not any(thread.is_alive() for thread in self._threads), "a caller hung"
        return self.results


def test_one_exchange_for_sync_threads_asyncio_and_trio_loops(
    exchanges: list[Exchange],
) -> None:
    """Sync threads and asyncio and trio loops in other threads share one sync exchange."""
    exchange = Exchange("t1", "t2")
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0")
    callers = Callers(source, "t0").start()
    wait_until(callers.all_entered, "every caller entered")
    exchange.release.set()
    results = callers.finish()
    assert results == ["t1"] * CALLERS
    assert exchange.calls == 1
    assert source.exchanges == 1


def test_waiters_on_every_loop_get_the_token_of_one_exchange(exchanges: list[Exchange]) -> None:
    """Every caller is waiting on the exchange before it answers, and all get its token."""
    exchange = Exchange("t1", "t2")
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0")
    callers = Callers(source, "t0").start()
    wait_until(joined(source, CALLERS), "every caller joined the exchange")
    assert exchange.started.wait(timeout=10.0)
    exchange.release.set()
    assert callers.finish() == ["t1"] * CALLERS
    assert exchange.calls == 1
    assert source.get_sync() == "t1"


@pytest.mark.parametrize("leader", ["sync", "asyncio", "trio"])
def test_async_exchange_led_from_any_loop_serves_every_other(
    leader: str, exchanges: list[Exchange]
) -> None:
    """An async exchange runs once on the leader's loop or thread; the other loops wait on it."""
    exchange = AsyncExchange("t1", "t2")
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0")
    lead = Callers(
        source,
        "t0",
        sync_threads=1 if leader == "sync" else 0,
        loops=() if leader == "sync" else (leader,),
        tasks=1,
    ).start()
    assert exchange.started.wait(timeout=10.0)
    others = Callers(source, "t0").start()
    wait_until(joined(source, CALLERS + 1), "every caller joined the exchange")
    exchange.release.set()
    assert lead.finish() == ["t1"]
    assert others.finish() == ["t1"] * CALLERS
    assert exchange.calls == 1


@pytest.mark.parametrize("kind", [Exchange, AsyncExchange])
def test_failing_exchange_fails_every_thread_and_loop_then_recovers(
    kind: type[Exchange], exchanges: list[Exchange]
) -> None:
    """One failing exchange fails every caller on every loop with one secret-free error."""
    exchange = kind("never", "t1", fail=True)
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0")
    callers = Callers(source, "t0").start()
    wait_until(joined(source, CALLERS), "every caller joined the exchange")
    exchange.release.set()
    results = callers.finish()
    assert len(results) == CALLERS
    for error in results:
        assert isinstance(error, TokenExchangeError), repr(error)
        assert str(error) == "token exchange failed: ValueError"
        assert SECRET not in repr(error)
        assert error.__cause__ is None
    assert exchange.calls == 1
    exchange.fail = False
    assert source.refresh_sync("t0") == "t1"
    assert exchange.calls == 2


@pytest.mark.parametrize("kind", [Exchange, AsyncExchange])
def test_hung_exchange_times_out_on_every_loop_then_recovers(
    kind: type[Exchange], exchanges: list[Exchange]
) -> None:
    """A hung exchange fails every thread and loop at its 0.3 s timeout; the next one works."""
    exchange = kind("late", "t2")
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0", timeout=0.3)
    started = time.monotonic()
    results = Callers(source, "t0").start().finish()
    assert time.monotonic() - started < 3.0
    assert len(results) == CALLERS
    for error in results:
        assert isinstance(error, TokenExchangeError), repr(error)
        assert str(error) == "token exchange took longer than 0.3s"
    assert exchange.calls == 1
    exchange.release.set()
    assert Callers(source, "t0").start().finish() == ["t2"] * CALLERS
    assert exchange.calls == 2


def lead_then_cancel(
    source: TokenSource, backend: str, cancel: threading.Event
) -> threading.Thread:
    """A thread whose loop (on ``backend``) refreshes ``t0`` until ``cancel`` is set."""

    async def leader() -> None:
        async with anyio.create_task_group() as group:

            async def cancel_when_told() -> None:
                await anyio.to_thread.run_sync(cancel.wait, 10.0)
                group.cancel_scope.cancel()

            group.start_soon(cancel_when_told)
            await source.refresh_async("t0")
            raise AssertionError("the leader was not cancelled")

    thread = threading.Thread(target=anyio.run, args=(leader,), kwargs={"backend": backend})
    thread.start()
    return thread


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelled_leader_leaves_the_sync_exchange_to_the_others(
    backend: str, exchanges: list[Exchange]
) -> None:
    """A leading task cancelled mid sync exchange costs no second exchange and fails no one."""
    exchange = Exchange("t1", "t2")
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0")
    cancel = threading.Event()
    lead = lead_then_cancel(source, backend, cancel)
    assert exchange.started.wait(timeout=10.0)
    callers = Callers(source, "t0").start()
    wait_until(joined(source, CALLERS + 1), "every caller joined the exchange")
    cancel.set()
    lead.join(timeout=10.0)
    assert not lead.is_alive()
    exchange.release.set()
    assert callers.finish() == ["t1"] * CALLERS
    assert exchange.calls == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelled_async_leader_hands_the_exchange_on(
    backend: str, exchanges: list[Exchange]
) -> None:
    """A leading task cancelled mid async exchange lets one waiter exchange again; none hang."""
    exchange = AsyncExchange("lost", "t2", "t3")
    exchanges.append(exchange)
    source = TokenSource(exchange, origins=[API], token="t0")
    cancel = threading.Event()
    lead = lead_then_cancel(source, backend, cancel)
    assert exchange.started.wait(timeout=10.0)
    callers = Callers(source, "t0").start()
    wait_until(joined(source, CALLERS + 1), "every caller joined the exchange")
    cancel.set()
    lead.join(timeout=10.0)
    assert not lead.is_alive()
    wait_until(lambda: exchange.calls == 2, "a waiter led the next exchange")
    exchange.release.set()
    assert callers.finish() == ["t2"] * CALLERS
    assert exchange.calls == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_exchange_runs_off_the_loop_thread(backend: str) -> None:
    """An async caller runs a sync exchange on a worker thread, never on its loop's thread."""
    exchange = Exchange("t1")
    exchange.release.set()
    source = TokenSource(exchange, origins=[API], token="t0")

    async def main() -> int:
        assert await source.refresh_async("t0") == "t1"
        return threading.get_ident()

    loop_thread = anyio.run(main, backend=backend)
    assert exchange.threads and exchange.threads[0] != loop_thread
