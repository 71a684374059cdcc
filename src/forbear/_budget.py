"""`RetryBudget`: caps retries during an outage so a client does not multiply the load by five.

A token bucket in the manner of Finagle and Envoy, kept per key (an origin by default), so an
outage of one host never spends the retries another host needs. Every first attempt deposits
``ratio`` of a retry, for ``ttl`` seconds; on top of that a floor refills at ``min_per_second``
and holds at most one second of it, so a blip of a few failures is always retried but an outage
cannot spend a long floor as one burst. A retry withdraws one. No I/O.

The happy path (a deposit) takes no lock: it bumps an `itertools.count`, which CPython
increments atomically; the ring of per-slot counters is advanced under a lock once per slot.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RetryBudget"]

#: Slots in the ring of deposits: ``ttl`` is counted in this many steps.
_SLOTS = 10


def _count_of(counter: itertools.count[int]) -> int:
    """How often ``next`` was called on a fresh ``itertools.count()`` (its repr: ``count(7)``)."""
    return int(repr(counter)[6:-1])


@dataclass(slots=True)
class _Account:
    """One key's deposits and floor. The ring moves under the budget's lock."""

    index: int
    deposits: list[itertools.count[int]] = field(
        default_factory=lambda: [itertools.count() for _ in range(_SLOTS)]
    )
    #: The current slot's counter and the times it covers: ``[start, end)``.
    current: itertools.count[int] = field(default_factory=itertools.count)
    start: float = 0.0
    end: float = float("-inf")
    #: Retries withdrawn from deposits, per slot (only touched under the lock).
    withdrawals: list[int] = field(default_factory=lambda: [0] * _SLOTS)
    floor: float = 0.0
    floor_at: float = 0.0


class RetryBudget:
    """Allows ``ratio`` retries per first attempt over ``ttl`` seconds, plus ``min_per_second``.

    Methods take the key a request is counted under (`forbear.HostGate.key`'s unit: the origin,
    unless a key function says otherwise); ``""`` is one shared account.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("ratio", ratio), ("min_per_second", min_per_second), ("ttl", ttl)):
            if not (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            ):
                raise ValueError(f"RetryBudget.{name} must be a finite number >= 0, got {value!r}")
        if ttl <= 0:
            raise ValueError(f"RetryBudget.ttl must be > 0, got {ttl!r}")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._slot_width = self.ttl / _SLOTS
        self._accounts: dict[str, _Account] = {}

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_per_second={self.min_per_second}, "
            f"ttl={self.ttl}, keys={len(self._accounts)})"
        )

    # -- the happy path ----------------------------------------------------------------------

    def deposit(self, key: str = "", *, now: float | None = None) -> None:
        """Record a first attempt to ``key``."""
        if now is None:
            now = self._clock()
        account = self._accounts.get(key)
        if account is None or not account.start <= now < account.end:
            account = self._advance(key, int(now // self._slot_width))
        next(account.current)

    # -- the rare path -----------------------------------------------------------------------

    def try_withdraw(self, key: str = "", *, now: float | None = None) -> bool:
        """Take one retry for ``key`` from the budget; False when it is spent."""
        now = self._clock() if now is None else now
        with self._lock:
            account = self._advance_locked(key, int(now // self._slot_width))
            self._refill(account, now)
            if account.floor >= 1.0:
                account.floor -= 1.0
                return True
            if self._earned(account) < 1.0:
                return False
            account.withdrawals[account.index % _SLOTS] += 1
            return True

    def balance(self, key: str = "", *, now: float | None = None) -> float:
        """Retries available to ``key`` right now (never negative)."""
        now = self._clock() if now is None else now
        with self._lock:
            account = self._advance_locked(key, int(now // self._slot_width))
            self._refill(account, now)
            return max(self._earned(account), 0.0) + account.floor

    # -- internals ---------------------------------------------------------------------------

    def _advance(self, key: str, index: int) -> _Account:
        with self._lock:
            account = self._advance_locked(key, index)
            if account.index == index:
                # The slot deposits go to without a lock, and the times it covers.
                account.current = account.deposits[index % _SLOTS]
                account.start = index * self._slot_width
                account.end = (index + 1) * self._slot_width
            return account

    def _advance_locked(self, key: str, index: int) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = _Account(index)
            account.floor = max(self.min_per_second, 1.0) if self.min_per_second else 0.0
            account.floor_at = index * self._slot_width
            return account
        gap = index - account.index
        if gap > 0:
            for step in range(1, min(gap, _SLOTS) + 1):
                slot = (account.index + step) % _SLOTS
                account.deposits[slot] = itertools.count()
                account.withdrawals[slot] = 0
            account.index = index
        return account

    def _earned(self, account: _Account) -> float:
        deposits = sum(_count_of(counter) for counter in account.deposits)
        return self.ratio * deposits - sum(account.withdrawals)

    def _refill(self, account: _Account, now: float) -> None:
        rate = self.min_per_second
        if rate <= 0.0:
            return
        elapsed = max(now - account.floor_at, 0.0)
        account.floor = min(account.floor + elapsed * rate, max(rate, 1.0))
        account.floor_at = now
