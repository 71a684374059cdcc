"""`RetryBudget`: caps retries during an outage so a client does not multiply the load by five.

A token bucket in the manner of Finagle and Envoy: every first attempt deposits ``ratio`` of a
retry, a floor of ``min_per_second`` retries is always allowed, and deposits expire after
``ttl`` seconds. A retry withdraws one. Thread-safe; no I/O.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RetryBudget"]

_SLOTS = 10


class RetryBudget:
    """Allows ``ratio`` retries per first attempt, plus ``min_per_second``, over ``ttl`` seconds."""

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("ratio", ratio), ("min_per_second", min_per_second), ("ttl", ttl)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"RetryBudget.{name} must be a finite number >= 0, got {value!r}")
        if ttl <= 0:
            raise ValueError(f"RetryBudget.ttl must be > 0, got {ttl!r}")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._slot_width = self.ttl / _SLOTS
        # Ring of per-slot counters: first attempts deposited and retries withdrawn.
        self._deposits = [0] * _SLOTS
        self._withdrawals = [0] * _SLOTS
        self._slot = 0
        self._slot_index = 0

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_per_second={self.min_per_second}, "
            f"ttl={self.ttl}, balance={self.balance():.1f})"
        )

    def _advance(self, now: float) -> int:
        index = int(now // self._slot_width)
        gap = index - self._slot_index
        if gap > 0:
            for step in range(1, min(gap, _SLOTS) + 1):
                slot = (self._slot + step) % _SLOTS
                self._deposits[slot] = 0
                self._withdrawals[slot] = 0
            self._slot = (self._slot + gap) % _SLOTS
            self._slot_index = index
        return self._slot

    def _balance(self) -> float:
        earned = self.ratio * sum(self._deposits) + self.min_per_second * self.ttl
        return max(earned - sum(self._withdrawals), 0.0)

    @property
    def capacity(self) -> float:
        """The most retries the budget can hold: the floor plus a full window of deposits."""
        return self.min_per_second * self.ttl + self.ratio * sum(self._deposits)

    def balance(self, *, now: float | None = None) -> float:
        """Retries available right now (never negative)."""
        with self._lock:
            self._advance(self._clock() if now is None else now)
            return self._balance()

    def deposit(self, *, now: float | None = None) -> None:
        """Record a first attempt."""
        with self._lock:
            slot = self._advance(self._clock() if now is None else now)
            self._deposits[slot] += 1

    def try_withdraw(self, *, now: float | None = None) -> bool:
        """Take one retry from the budget; False when it is spent."""
        with self._lock:
            slot = self._advance(self._clock() if now is None else now)
            if self._balance() < 1.0:
                return False
            self._withdrawals[slot] += 1
            return True
