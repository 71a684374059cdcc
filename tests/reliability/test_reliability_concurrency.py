"""The shared pieces hammered from every kind of caller at once, their invariants checked.

One `HostGate`, one `RetryBudget` or one `TokenSource` is used at the same moment by 8 plain
threads, 2 asyncio loops (each in its own thread, 8 tasks each) and a trio loop in another
thread (8 tasks), with the interpreter's switch interval cut to a microsecond so threads
change places inside the pieces' bookkeeping as often as they can. Only public methods are
called; every caller keeps what it was handed, and the invariants are checked on all of it:

- `HostGate(burst=1)` paced at an announced 2,000 r/s, 3,600 reservations: the sorted send
  slots are at least 1/rate apart, so no slot is handed out twice (measured: the smallest gap
  is 1/rate, to 1e-9 s).
- `HostGate()` (burst 2), 3,600 reservations: at most rate * T + burst slots in any span T.
- `RetryBudget(ratio=0.25, min_per_second=0)`, 7,200 deposits and withdrawals interleaved:
  the balance read meanwhile is never negative, grants <= 0.25 * deposits (measured: exactly
  a quarter of the deposits, so no grant was lost either).
- `TokenSource`, sync and async exchange, 10 rounds of 36 callers holding the same stale
  token: one exchange per stale token (10), every caller handed the new one; a leader
  cancelled mid-exchange on one loop leaves the source working for the others.

No call raised (a "lock not held" `RuntimeError` included). About 3 s in all.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest

from forbear import HostGate, RetryBudget, TokenSource

#: Callers of each kind.
THREADS = 8
ASYNCIO_LOOPS = 2
TASKS = 8
KEY = "http://hammered.test"
#: An announced limit: 2,000 requests a second, nothing else.
ANNOUNCED = {"RateLimit-Policy": '"hammer";q=2000;w=1'}


@pytest.fixture(autouse=True)
def tight_switching() -> Iterator[None]:
    """Threads switch every microsecond (the default is 5 ms) while the test runs."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def hammer(
    sync_call: Callable[[], None],
    async_call: Callable[[], Awaitable[None]],
    *,
    rounds: int,
) -> None:
    """``rounds`` calls from each of: THREADS plain threads, TASKS tasks on each of
    ASYNCIO_LOOPS asyncio loops and on a trio loop, every loop in a thread of its own; all
    released at once. Re-raises the first error any caller met."""
    errors: list[BaseException] = []
    start = threading.Event()

    def plain() -> None:
        start.wait()
        try:
            for _ in range(rounds):
                sync_call()
        except BaseException as exc:
            errors.append(exc)

    async def tasks() -> None:
        await anyio.to_thread.run_sync(start.wait)

        async def one() -> None:
            for _ in range(rounds):
                await async_call()
                await anyio.sleep(0)  # let the loop's other tasks in between

        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(one)

    def loop(backend: str) -> None:
        try:
            anyio.run(tasks, backend=backend)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=plain) for _ in range(THREADS)]
    threads += [threading.Thread(target=loop, args=("asyncio",)) for _ in range(ASYNCIO_LOOPS)]
    threads.append(threading.Thread(target=loop, args=("trio",)))
    for thread in threads:
        thread.start()
    time.sleep(0.05)  # every thread is waiting on the start (a loop's first task included)
    start.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a caller hung"
    if errors:
        raise errors[0]


CALLERS = THREADS + (ASYNCIO_LOOPS + 1) * TASKS


# -- the gate ----------------------------------------------------------------------------------


def reserve_many(gate: HostGate, rounds: int) -> list[float]:
    """Every caller reserves ``rounds`` send slots; the slots (monotonic send times)."""
    slots: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        now = time.monotonic()
        wait = gate.delay(KEY, now=now)
        assert wait >= 0.0
        with lock:
            slots.append(now + wait)

    async def reserve_async() -> None:
        reserve()

    hammer(reserve, reserve_async, rounds=rounds)
    assert len(slots) == CALLERS * rounds
    return sorted(slots)


def paced(gate: HostGate) -> float:
    """Pace ``gate``'s key by an announced limit; the pacing rate."""
    gate.succeeded(KEY, ANNOUNCED, time.monotonic())
    rate = gate.rate(KEY)
    assert rate is not None
    return rate


def test_gate_slots_are_strictly_spaced() -> None:
    """With burst 1, every reserved send time is at least 1/rate after the one before it,
    whoever reserved it from whichever thread or loop: no slot is handed out twice."""
    gate = HostGate(burst=1)
    rate = paced(gate)
    slots = reserve_many(gate, rounds=100)
    assert gate.rate(KEY) == rate  # an announced rate: nothing probed it up meanwhile
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert min(gaps) >= 1.0 / rate - 1e-9


def test_gate_never_releases_more_than_rate_plus_burst() -> None:
    """With the default burst of 2: in any span of T seconds at most rate * T + 2 slots."""
    gate = HostGate()
    rate = paced(gate)
    slots = reserve_many(gate, rounds=100)
    burst = 2
    ahead = 0
    for index, slot in enumerate(slots):
        # The most slots in a span starting here: compare with the farthest one within 0.05 s.
        ahead = max(ahead, index)
        while ahead + 1 < len(slots) and slots[ahead + 1] - slot <= 0.05:
            ahead += 1
        count, span = ahead - index + 1, slots[ahead] - slot
        assert count <= rate * span + burst + 1e-6, (index, count, span)


# -- the budget --------------------------------------------------------------------------------


def test_budget_never_grants_more_than_earned() -> None:
    """Deposits and withdrawals race from every caller: the balance read meanwhile is never
    negative, and the retries granted never exceed ``ratio`` of the first attempts counted."""
    ratio = 0.25
    budget = RetryBudget(ratio=ratio, min_per_second=0.0, ttl=60.0)
    counts = {"deposits": 0, "grants": 0}
    lock = threading.Lock()
    balances: list[float] = []

    def step() -> None:
        budget.deposit(KEY)
        granted = budget.try_withdraw(KEY)
        balance = budget.balance(KEY)
        with lock:
            counts["deposits"] += 1
            counts["grants"] += granted
            balances.append(balance)

    async def step_async() -> None:
        step()

    hammer(step, step_async, rounds=200)
    deposits, grants = counts["deposits"], counts["grants"]
    assert deposits == CALLERS * 200
    assert min(balances) >= 0.0
    assert grants <= ratio * deposits
    # Every earned retry is taken (no grant lost either): a quarter of the deposits.
    assert grants >= ratio * deposits - 1
    assert budget.balance(KEY) == pytest.approx(ratio * deposits - grants)


# -- the token source --------------------------------------------------------------------------


class Exchange:
    """Counts exchanges; each takes 20 ms, so every caller of a round piles up behind it."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def _next(self) -> str:
        with self._lock:
            self.calls += 1
            return f"token-{self.calls}"

    def sync(self) -> str:
        time.sleep(0.02)
        return self._next()

    async def async_(self) -> str:
        await anyio.sleep(0.02)
        return self._next()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_one_exchange_per_stale_token(flavour: str) -> None:
    """Ten rounds: every caller holds the same stale token and asks for a newer one at once.
    Each round makes exactly one exchange and every caller gets its token."""
    exchange = Exchange()
    function = exchange.sync if flavour == "sync" else exchange.async_
    source = TokenSource(function, origins=[KEY], timeout=10.0, token="token-0")
    for round_ in range(10):
        stale = f"token-{round_}"
        got: list[str] = []
        lock = threading.Lock()

        def refresh(stale: str = stale, got: list[str] = got, lock: threading.Lock = lock) -> None:
            token = source.refresh_sync(stale)
            with lock:
                got.append(token)

        async def refresh_async(
            stale: str = stale, got: list[str] = got, lock: threading.Lock = lock
        ) -> None:
            token = await source.refresh_async(stale)
            with lock:
                got.append(token)

        hammer(refresh, refresh_async, rounds=1)
        assert got == [f"token-{round_ + 1}"] * CALLERS, (round_, set(got))
        assert exchange.calls == round_ + 1
    assert source.exchanges == 10


def test_trio_and_asyncio_share_one_exchange_under_cancellation() -> None:
    """A leader cancelled mid-exchange hands over: the others still end with one new token,
    and the source keeps working (no lock left held, no waiter stranded)."""
    exchange = Exchange()
    source = TokenSource(exchange.async_, origins=[KEY], timeout=10.0, token="token-0")
    got: list[str] = []

    async def leader_cancelled() -> None:
        with anyio.move_on_after(0.005):
            await source.refresh_async("token-0")

    async def follower() -> None:
        await anyio.sleep(0.001)
        got.append(await source.refresh_async("token-0"))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(leader_cancelled)
            for _ in range(4):
                group.start_soon(follower)

    def in_thread(backend: str) -> Callable[[], None]:
        return lambda: anyio.run(main, backend=backend)

    threads = [threading.Thread(target=in_thread(b)) for b in ("asyncio", "trio", "asyncio")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(got) == 12 and len(set(got)) == 1, got
    assert exchange.calls <= 4  # the abandoned exchange, and at most one per loop after it
    assert source.get_sync() == got[0]
    assert source.refresh_sync(got[0]) != got[0]
