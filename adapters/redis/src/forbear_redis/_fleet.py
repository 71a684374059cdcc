"""`Fleet`: one gate, one retry budget and (opt-in) one token for every worker of a fleet.

``Fleet(url, namespace=...)`` connects to Redis (lazily: nothing is sent until there is
something to say) and starts one daemon thread, the flusher, which every ``interval`` seconds
sends what the workers' happy path only counted (successes, first attempts, 429s and pauses not
yet carried by a reservation) in one script call, and brings back which keys the fleet paces
and the retry allowances. An idle fleet makes no calls; while Redis is down the flusher only
probes it.

Keys are ``forbear:<namespace>:gate:<digest>``, ``...:budget:<digest>`` and
``...:token:<digest>`` (a digest of the gate key, so a key function that returns an API key
never writes it into Redis), each with an expiry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from forbear import HostGate, RetryBudget, TokenSource, origin_of

from ._budget import FleetBudget, budget_ttl_ms
from ._gate import FleetGate, Pacing
from ._store import Store, StoreDown
from ._token import FleetExchange

__all__ = ["Fleet"]


def _digest(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class Fleet:
    """A fleet scope on Redis: ``.gate``, ``.budget`` and ``.token(...)`` for every adapter.

    ``url`` is a Redis URL (``redis://``, ``rediss://``, ``unix://``); ``namespace`` separates
    fleets sharing one Redis (one per crawler or service, say). ``timeout`` bounds every Redis
    call (connect and read); ``interval`` is how often counts are flushed; ``pacing`` tunes
    the fleet's pacer and how long it remembers a learned rate. ``key``, ``gate`` and
    ``budget`` set the process scope wrapped by the fleet's (its key function, its own
    pacing while Redis is down, the budget's terms).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        key: Callable[[str], str] = origin_of,
        gate: HostGate | None = None,
        budget: RetryBudget | None = None,
        pacing: Pacing | None = None,
        timeout: float = 0.1,
        interval: float = 0.1,
        probe_every: float = 1.0,
    ) -> None:
        if not isinstance(namespace, str) or not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"Fleet.namespace must be a non-empty word, got {namespace!r}")
        if interval <= 0:
            raise ValueError(f"Fleet.interval must be > 0, got {interval!r}")
        self.namespace = namespace
        self.interval = interval
        self.prefix = f"forbear:{namespace}:"
        self.store = Store(url, timeout=timeout, probe_every=probe_every)
        local_gate = HostGate(key=key) if gate is None else gate
        local_budget = RetryBudget() if budget is None else budget
        #: The fleet's gate: ``gate=fleet.gate`` on every adapter of every worker.
        self.gate = FleetGate(self.store, self.prefix, _digest, local_gate, pacing or Pacing())
        #: The fleet's retry budget: ``budget=fleet.budget``.
        self.budget = FleetBudget(self.store, self.prefix, _digest, local_budget)
        self._budget_ttl_ms = budget_ttl_ms(local_budget)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = -1
        self._start_flusher()
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(reference))

    def __repr__(self) -> str:
        return f"Fleet({self.store.where!r}, namespace={self.namespace!r})"

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def token(
        self,
        exchange: Callable[[], str | Awaitable[str]],
        *,
        origins: Iterable[str],
        header: str = "Authorization",
        scheme: str = "Bearer",
        ttl: float = 600.0,
        timeout: float = 30.0,
    ) -> TokenSource:
        """A `forbear.TokenSource` whose token and exchange the fleet shares.

        The token is stored in Redis, in plain text, for ``ttl`` seconds after each exchange;
        workers adopt it instead of exchanging, and a worker refused with it leads the one
        exchange the fleet makes (the others wait for its token, up to ``timeout``).
        """
        origins = [origins] if isinstance(origins, str) else list(origins)
        scope = "\n".join([header.lower(), *sorted(origin_of(o) or o for o in origins)])
        fleet_exchange = FleetExchange(
            self.store,
            f"{self.prefix}token:{_digest(scope)}",
            exchange,
            ttl=ttl,
            timeout=timeout,
        )
        return TokenSource(
            fleet_exchange, origins=origins, header=header, scheme=scheme, timeout=timeout
        )

    def flush(self) -> None:
        """Send what is counted now (the flusher does it every ``interval``)."""
        store = self.store
        if not store.up:
            if store.probe():
                return
            self.gate.forget()
            self.budget.forget()
            return
        gate_reports = self.gate.drain()
        budget_reports = self.budget.drain()
        if not gate_reports and not budget_reports:
            return
        pacing = self.gate.pacing
        request = json.dumps(
            {
                "gate": [report for _, report in gate_reports],
                "budget": [report for _, report in budget_reports],
                "cfg": pacing.config(),
                "bcfg": {
                    "ratio": self.budget.ratio,
                    "per_second": self.budget.min_per_second,
                    "ttl": self.budget.ttl,
                },
                "ask": int(self.gate.confirming),
                "ttl": int(pacing.ttl * 1000),
                "budget_ttl": self._budget_ttl_ms,
            }
        )
        keys = [entry.redis_key for entry, _ in gate_reports]
        keys += [account.redis_key for account, _ in budget_reports]
        try:
            raw = store.run(lambda client: store.sync(keys=keys, args=[request], client=client))
            answer: dict[str, Any] = json.loads(raw)
        except StoreDown:
            return
        except ValueError:
            return
        gate_answers = answer.get("gate") or []
        budget_answers = answer.get("budget") or []
        for (entry, _), gate_answer in zip(gate_reports, gate_answers, strict=False):
            self.gate.apply(entry, gate_answer)
        for (account, _), granted in zip(budget_reports, budget_answers, strict=False):
            self.budget.apply(account, granted)

    def close(self) -> None:
        """Flush once more, stop the flusher and close the connections."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=max(self.store.timeout * 4, 1.0))
        with contextlib.suppress(Exception):  # closing never fails the caller
            self.flush()
        self.store.close()

    # -- the flusher -----------------------------------------------------------------------

    def _start_flusher(self) -> None:
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=_flush_forever,
            args=(weakref.ref(self), self._stop, self.interval),
            name=f"forbear-redis-flusher-{self.namespace}",
            daemon=True,
        )
        self._thread.start()


def _flush_forever(reference: weakref.ref[Fleet], stop: threading.Event, interval: float) -> None:
    """The flusher's loop; it ends when the fleet is closed or collected."""
    while not stop.wait(interval):
        fleet = reference()
        if fleet is None:
            return
        with contextlib.suppress(Exception):  # the flusher never dies of a bad answer
            fleet.flush()
        del fleet


def _after_fork(reference: weakref.ref[Fleet]) -> None:
    """A forked child starts its own flusher (threads do not survive a fork)."""
    fleet = reference()
    if fleet is None:
        return
    # A lock held by a parent's thread at the fork would never be released in the child.
    fleet.store._lock = threading.Lock()
    fleet.gate._lock = threading.Lock()
    fleet.budget._lock = threading.Lock()
    if not fleet._stop.is_set():
        fleet._start_flusher()
