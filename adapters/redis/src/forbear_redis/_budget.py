"""`FleetBudget`: a `forbear.RetryBudget` shared by a fleet, per key, without I/O per request.

The core asks the budget inside its decision, synchronously, so nothing here touches Redis
while a request waits. Each worker holds a small allowance of retries per key, granted by the
fleet's account in Redis when the flusher runs (once per interval), together with the deposits
(first attempts) counted since the last flush. `try_withdraw` spends the allowance. The fleet's
account follows the process budget's terms (``ratio`` of first attempts, a floor of
``min_per_second`` that holds at most a second of it) for the whole fleet, so N workers in an
outage retry as one client would, not N times as much.

Before a key's first grant, and whenever Redis is down, the wrapped process budget decides;
retries taken that way before a grant are charged to the fleet's account at the next flush.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from forbear import RetryBudget

from ._store import Store

__all__ = ["FleetBudget"]

#: The allowance a worker asks for per key and flush: at least this many retries...
MIN_WANTED = 4
#: ... twice what it spent in the last interval, and at most this many.
MAX_WANTED = 64


@dataclass(slots=True)
class _Account:
    """One key's allowance in this process."""

    redis_key: str
    #: False until the fleet granted an allowance (the process budget decides meanwhile).
    granted: bool = False
    allowance: int = 0
    #: Since the last flush: first attempts, retries taken, retries taken before a grant.
    deposits: int = 0
    spent: int = 0
    debt: int = 0


class FleetBudget:
    """The fleet's retry budget: pass it as ``budget=`` to any adapter, in every worker."""

    def __init__(
        self, store: Store, prefix: str, digest: Callable[[str], str], local: RetryBudget
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._digest = digest
        #: The process scope: it counts every first attempt and decides while Redis is down.
        self.local = local
        self.ratio = local.ratio
        self.min_per_second = local.min_per_second
        self.ttl = local.ttl
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}

    def __repr__(self) -> str:
        return f"FleetBudget({self._store!r}, ratio={self.ratio}, keys={len(self._accounts)})"

    def deposit(self, key: str = "", *, now: float | None = None) -> None:
        """Record a first attempt to ``key`` (no I/O: counted, flushed later)."""
        self.local.deposit(key, now=now)
        account = self._accounts.get(key)
        if account is None:
            account = self._account(key)
        account.deposits += 1

    def try_withdraw(self, key: str = "", *, now: float | None = None) -> bool:
        """Take one retry for ``key``; False when the fleet's allowance (or, without Redis,
        the process budget) is spent. No I/O."""
        if not self._store.up:
            return self.local.try_withdraw(key, now=now)
        account = self._account(key)
        with self._lock:
            if account.granted:
                if account.allowance < 1:
                    return False
                account.allowance -= 1
                account.spent += 1
                return True
        allowed = self.local.try_withdraw(key, now=now)
        if allowed:
            with self._lock:
                account.debt += 1
                account.spent += 1
        return allowed

    def balance(self, key: str = "", *, now: float | None = None) -> float:
        """Retries this worker may take for ``key`` right now."""
        account = self._accounts.get(key)
        if self._store.up and account is not None and account.granted:
            return float(account.allowance)
        return self.local.balance(key, now=now)

    # -- the flusher's side ----------------------------------------------------------------

    def drain(self) -> list[tuple[_Account, list[int]]]:
        """Each active account's deposits and debt since the last flush, and what it wants."""
        reports: list[tuple[_Account, list[int]]] = []
        with self._lock:
            for account in self._accounts.values():
                wanted = min(max(MIN_WANTED, 2 * account.spent), MAX_WANTED)
                topping = max(wanted - account.allowance, 0)
                if account.granted and not (account.deposits or account.spent or account.debt):
                    continue  # idle: nothing to report, nothing to top up
                reports.append((account, [account.deposits, account.debt, topping]))
                account.deposits = account.debt = account.spent = 0
        return reports

    def apply(self, account: _Account, granted: int) -> None:
        """Add what the fleet granted to ``account``'s allowance."""
        with self._lock:
            account.granted = True
            account.allowance += max(int(granted), 0)

    def forget(self) -> None:
        """Redis is down: the process budget decides; allowances start over when it is back."""
        with self._lock:
            for account in self._accounts.values():
                account.granted = False
                account.allowance = account.deposits = account.spent = account.debt = 0

    def _account(self, key: str) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            with self._lock:
                account = self._accounts.get(key)
                if account is None:
                    account = _Account(f"{self._prefix}budget:{self._digest(key)}")
                    self._accounts[key] = account
        return account


def budget_ttl_ms(budget: RetryBudget) -> int:
    """How long a key's fleet account is kept after its last flush, in milliseconds."""
    return int(max(budget.ttl * 2.0, 60.0) * 1000)
