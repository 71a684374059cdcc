"""`FleetGate`: a `forbear.HostGate` whose pacing and pauses are shared by a fleet via Redis.

It wraps an in-process `HostGate` (the process scope), which it keeps fed with every outcome
and hands the decisions to whenever Redis is down. While Redis answers:

- A key the fleet does not pace costs nothing per request: `delay` returns ``0.0`` without
  I/O; successes are counted locally and flushed on an interval by the fleet's flusher, which
  also learns from Redis, once per interval, whether another worker started pacing the key.
- A key the fleet paces (after a 429 or a pause anywhere in the fleet, or from the first send
  of a worker when the fleet learned its rate earlier) reserves each send's slot with one
  Lua script on the server (`forbear.Call` effect: the core's runner performs it, sync or on a
  worker thread), which also carries the 429s and pauses this worker saw since its last call.
- A key the fleet knows no rate for is new for its first `Pacing.learn_for` seconds: the fleet
  counts the sends in flight to it, fleet-wide. A worker lets up to `Pacing.spare` sends go on
  its own (counted without a lock, reported with its next call) and reserves the rest, so a
  crowd of workers is seen as one: more than `Pacing.crowd` in flight starts a fleet-wide slow
  start (see `forbear_redis._scripts`). A worker with one send at a time makes no extra call.

Which outcome pauses an origin is the `HostGate`'s rule: the fleet reports a pause when the
process gate started one, for as long as it did.

Announced limits. When the process gate paces a key at a rate its server announced
(`HostGate.announced`, read after each answer), the worker reports that rate with its next
call; a key the fleet does not pace yet reserves its next send, so that call comes at once. The
fleet paces the key at the tightest rate its workers heard lately (see `forbear_redis._scripts`),
not each worker at it (N workers would send N times too fast).

Asking again. `generation` and `confirm` are `HostGate`'s, fleet-wide: every answer from Redis
carries the key's generation (bumped when the fleet's view of it tightens), so `generation`
reads a number and `confirm` compares two (no I/O) and asks Redis for a fresh slot only when
they differ or a 429, a pause or a tighter announcement of this worker's is not reported yet.
Keys paced by the process gate (Redis down) are the process gate's: a process generation is a
number >= 0, a fleet generation one < 0.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from forbear import Call, Decision, HostGate

from ._store import Store, StoreDown

__all__ = ["FleetGate", "Pacing"]

#: A pending announcement below this fraction of the fleet's pace makes `confirm` ask Redis.
_CUT = 0.9


@dataclass(frozen=True, slots=True)
class Pacing:
    """How the fleet paces a key once it is rate-limited (see `forbear.HostGate`)."""

    #: Seconds without a 429 or a held-back send before a key goes back to the free path.
    calm_after: float = 30.0
    #: The most sends released at once after any wait, fleet-wide.
    burst: int = 2
    #: The fraction of a measured server rate the fleet holds at.
    hold: float = 0.98
    #: While only a first guess is known, the rate doubles every this many seconds of pacing.
    double_every: float = 0.15
    #: A run of 429s this long (seconds) measures the server's rate: the successes in it.
    measure_after: float = 0.05
    #: Seconds a key's learned rate and pause are kept in Redis after their last use.
    ttl: float = 3 * 86_400.0
    #: Seconds after its last 429 before the fleet probes above a measured rate.
    probe_after: float = 5.0
    #: A worker that starts at a learned rate holds it this long before probing above it.
    warm_for: float = 10.0
    #: Seconds a key the fleet knows no rate for counts as new (its sends in flight counted).
    learn_for: float = 2.0
    #: More sends than this in flight fleet-wide to a new key start a slow start.
    crowd: int = 16
    #: Sends per second a slow start begins at; it doubles every `start_every` seconds.
    start_rate: float = 200.0
    start_every: float = 0.1
    #: Sends in flight a worker lets go to a new key without asking the fleet.
    spare: int = 1
    #: Seconds an announced rate counts after the last worker reported hearing it.
    heard_for: float = 10.0

    def config(self) -> dict[str, float]:
        """The terms the scripts read (``cfg``)."""
        return {
            "calm_after": self.calm_after,
            "burst": self.burst,
            "hold": self.hold,
            "double_every": self.double_every,
            "measure_after": self.measure_after,
            "probe_after": self.probe_after,
            "warm_for": self.warm_for,
            "learn_for": self.learn_for,
            "crowd": self.crowd,
            "start_rate": self.start_rate,
            "start_every": self.start_every,
            "heard_for": self.heard_for,
        }


@dataclass(slots=True)
class _Key:
    """One key's view of the fleet, in this process. Counters are approximate by design."""

    redis_key: str
    #: Redis has answered for this key at least once (a first send asks for a learned rate).
    seen: bool = False
    #: The fleet paces this key: every send reserves its slot in Redis.
    paced: bool = False
    #: The fleet's rate for the key, sends per second (0 while it is not paced).
    rate: float = 0.0
    #: The fleet knows no rate for the key yet, in its first seconds: sends in flight count.
    new: bool = False
    #: While new: this worker's sends in flight, and those let go and answered since the last
    #: report (counted without a lock: approximate, and only until the key is no longer new).
    in_flight: int = 0
    sent: int = 0
    answered: int = 0
    #: Not yet flushed: successes, 429s, and the monotonic end of a pause to report.
    ok: int = 0
    rejected: int = 0
    pause_until: float = 0.0
    #: Not yet reported: the tightest rate the process gate paced the key at from an
    #: announcement since the last report (0: none), and the end of the last pause it started
    #: on a success (an announcement that nothing remains).
    heard: float = 0.0
    pause_seen: float = 0.0
    #: The fleet's generation of the key, as Redis last answered it.
    generation: int = 0


class FleetGate:
    """The fleet's gate: pass it as ``gate=`` to any adapter, in every worker of the fleet."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        digest: Callable[[str], str],
        local: HostGate,
        pacing: Pacing,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._digest = digest
        #: The process scope: it learns from every outcome and decides while Redis is down.
        self.local = local
        #: The URL -> key function (the process gate's).
        self.key = local.key
        self.pacing = pacing
        self._ttl_ms = int(pacing.ttl * 1000)
        self._config = pacing.config()
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        #: Whether the sends ask again after waiting (the core read `generation`): only then
        #: does a change of view void the slots given out ahead (see `forbear.HostGate`).
        self.confirming = False

    def __repr__(self) -> str:
        return f"FleetGate({self._store!r}, keys={len(self._keys)})"

    # -- what the core calls ---------------------------------------------------------------

    def free(self, key: str) -> bool:
        """Whether a send to ``key`` goes at once, without asking Redis (the core's fast path)."""
        if not self._store.up:
            return self.local.free(key)
        entry = self._keys.get(key)
        if entry is None or _asks(entry):
            return False
        return not entry.new or self._let_go(entry)

    def delay(self, key: str) -> float | Call:
        """Seconds to wait for ``key``'s send slot, or the `Call` reserving it in Redis."""
        if not self._store.up:
            return self.local.delay(key)
        entry = self._keys.get(key)
        if entry is None or _asks(entry) or (entry.new and not self._let_go(entry)):
            return Call(self.reserve_sync, self.reserve_async, (key,))
        return 0.0

    def generation(self, key: str) -> int:
        """The view of ``key`` a slot from `delay` was reserved under (no I/O): the fleet's
        generation (< 0) while Redis answers, else the process gate's (>= 0)."""
        self.confirming = True
        if not self._store.up:
            return self.local.generation(key)
        entry = self._keys.get(key)
        return -1 - (0 if entry is None else entry.generation)

    def confirm(self, key: str, generation: int) -> float | Call:
        """After waiting out a slot reserved under ``generation``: 0.0 when it still holds (no
        I/O), else the wait for a fresh slot, or the `Call` asking Redis for one."""
        if generation >= 0:
            return self.local.confirm(key, generation)
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        seen = -1 - generation
        if not self._store.up:
            # The fleet's view changed before Redis stopped: the process gate's slot instead.
            return 0.0 if entry.generation == seen else self.local.delay(key)
        if entry.generation == seen and not (
            entry.rejected or entry.pause_until or (entry.heard and entry.heard < _CUT * entry.rate)
        ):
            return 0.0
        return Call(self.confirm_sync, self.confirm_async, (key, seen))

    def _let_go(self, entry: _Key) -> bool:
        """A send to a new key: True (counted) while this worker has few in flight to it."""
        if entry.in_flight >= self.pacing.spare:
            return False
        entry.in_flight += 1
        entry.sent += 1
        return True

    @staticmethod
    def _landed(entry: _Key) -> None:
        """An answer from a new key: one fewer in flight (counted for the fleet's tally)."""
        if entry.new:
            entry.answered += 1
            if entry.in_flight > 0:
                entry.in_flight -= 1

    def succeeded(
        self, key: str, headers: Mapping[str, str] | Any = None, now: float = 0.0
    ) -> None:
        """A success to ``key``: counted here, flushed later (no I/O)."""
        local = self.local
        local.succeeded(key, headers, now)
        entry = self._keys.get(key)
        if entry is None:
            entry = self._entry(key)
        entry.ok += 1
        if entry.new:
            self._landed(entry)
        heard = local.announced(key)
        if heard is not None:
            self._heard(key, entry, heard)

    def _heard(self, key: str, entry: _Key, rate: float) -> None:
        """The process gate paces ``key`` at an announced ``rate``: told with the next call,
        and so is a pause it started on a success (nothing remains until a reset)."""
        entry.heard = rate if not entry.heard else min(entry.heard, rate)
        until = self.local.paused_until(key)
        if until is not None and until > entry.pause_seen:
            with self._lock:
                entry.pause_seen = until
                entry.pause_until = max(entry.pause_until, until)

    def observe(
        self,
        key: str,
        decision: Decision,
        headers: Mapping[str, str] | Any = None,
        *,
        now: float | None = None,
    ) -> None:
        """Learn from a judged attempt; a 429 or a pause is reported with the next call."""
        status = decision.status
        if status is not None and status < 400:
            self.succeeded(key, headers, time.monotonic() if now is None else now)
            return
        entry = self._keys.get(key)
        if entry is not None and entry.new:
            self._landed(entry)
        before = self.local.paused_until(key)
        self.local.observe(key, decision, headers, now=now)
        after = self.local.paused_until(key)
        heard = self.local.announced(key)
        if status != 429 and (after is None or after == before) and heard is None:
            return
        entry = self._entry(key)
        with self._lock:
            if status == 429:
                entry.rejected += 1
            if after is not None and after != before:
                entry.pause_until = max(entry.pause_until, after)
                entry.pause_seen = max(entry.pause_seen, after)
        if heard is not None:
            self._heard(key, entry, heard)

    def rates(self) -> dict[str, float]:
        """Every paced key and its rate in sends per second: the fleet's, else the process's."""
        rates = self.local.rates()
        if self._store.up:
            for key, entry in list(self._keys.items()):
                if entry.paced:
                    rates[key] = entry.rate
                else:
                    rates.pop(key, None)
        return rates

    def rate(self, key: str) -> float | None:
        """The pacing rate for ``key`` in sends per second, or None while it is not paced."""
        return self.rates().get(key)

    def set_rate(self, key: str, rate: float) -> bool:
        """Pace ``key`` fleet-wide at ``rate`` sends per second from now (a documented limit,
        say); the fleet keeps probing from there. False when Redis did not answer."""
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        entry = self._entry(key)
        try:
            self._store.run(
                lambda client: self._store.set_rate(
                    keys=[entry.redis_key], args=[float(rate), self._ttl_ms], client=client
                )
            )
        except StoreDown:
            return False
        entry.seen = entry.paced = True
        entry.new = False
        entry.rate = float(rate)
        return True

    # -- the reservation (one script, performed by the core's runner) ----------------------

    def reserve_sync(self, key: str) -> float:
        """Reserve ``key``'s next send slot fleet-wide; the process gate's answer without Redis."""
        return self._reserve(key, None)

    def confirm_sync(self, key: str, generation: int) -> float:
        """A slot reserved under the fleet's ``generation`` was waited out: 0.0 when Redis
        still has that generation, else a fresh slot's wait (the process gate's without Redis)."""
        return self._reserve(key, generation)

    def _reserve(self, key: str, generation: int | None) -> float:
        entry = self._entry(key)
        with self._lock:
            rejected, ok, pause_until = entry.rejected, entry.ok, entry.pause_until
            sent, answered, heard = entry.sent, entry.answered, entry.heard
            entry.rejected = entry.ok = entry.sent = entry.answered = 0
            entry.pause_until = entry.heard = 0.0
            if generation is None and (entry.new or not entry.seen):
                # This send is in flight too (the fleet counts the reservation itself).
                entry.in_flight += 1
        pause_for = max(pause_until - time.monotonic(), 0.0)
        mode = "confirm" if generation is not None else "send" if entry.seen else "first"
        request = json.dumps(
            {
                "mode": mode,
                "gen": generation or 0,
                "report": [ok, rejected, pause_for, sent, answered, heard],
                "cfg": self._config,
                "ask": int(self.confirming),
                "ttl": self._ttl_ms,
            }
        )
        try:
            answer = self._store.run(
                lambda client: self._store.reserve(
                    keys=[entry.redis_key], args=[request], client=client
                )
            )
            wait_us, paced, rate_milli, new, fleet_generation = answer
        except StoreDown:
            return self.local.delay(key)
        entry.seen = True
        entry.paced = bool(paced)
        entry.rate = int(rate_milli) / 1000.0 if paced else 0.0
        entry.generation = int(fleet_generation)
        self._set_new(entry, bool(new))
        return max(int(wait_us) / 1e6, 0.0)

    @staticmethod
    def _set_new(entry: _Key, new: bool) -> None:
        """What the fleet says: is the key new? Once it is not, nothing more is counted."""
        if not new:
            entry.in_flight = entry.sent = entry.answered = 0
        entry.new = new

    async def reserve_async(self, key: str) -> float:
        """`reserve_sync` on a worker thread, so no event loop waits on Redis."""
        return await anyio.to_thread.run_sync(self.reserve_sync, key, abandon_on_cancel=True)

    async def confirm_async(self, key: str, generation: int) -> float:
        """`confirm_sync` on a worker thread."""
        return await anyio.to_thread.run_sync(
            self.confirm_sync, key, generation, abandon_on_cancel=True
        )

    # -- the flusher's side ----------------------------------------------------------------

    def drain(self) -> list[tuple[_Key, list[float]]]:
        """The keys with something to report since the last flush, and their reports."""
        reports: list[tuple[_Key, list[float]]] = []
        now = time.monotonic()
        with self._lock:
            for entry in self._keys.values():
                if entry.ok or entry.rejected or entry.pause_until or entry.sent or entry.heard:
                    pause_for = max(entry.pause_until - now, 0.0)
                    report = [entry.ok, entry.rejected, pause_for, entry.sent, entry.answered]
                    reports.append((entry, [*report, entry.heard]))
                    entry.ok = entry.rejected = entry.sent = entry.answered = 0
                    entry.pause_until = entry.heard = 0.0
        return reports

    def apply(self, entry: _Key, answer: list[Any]) -> None:
        """What Redis answered for ``entry`` in a flush: is the key paced, at what rate."""
        paced, paused_for, rate = answer[:3]
        entry.seen = True
        entry.paced = bool(paced) or float(paused_for) > 0
        entry.rate = float(rate) if entry.paced else 0.0
        self._set_new(entry, bool(answer[3]) if len(answer) > 3 else False)
        if len(answer) > 4:
            entry.generation = int(answer[4])

    def forget(self) -> None:
        """Drop what was not reported (Redis is down): each key asks again when it is back."""
        with self._lock:
            for entry in self._keys.values():
                entry.ok = entry.rejected = entry.sent = entry.answered = 0
                entry.in_flight = 0
                entry.pause_until = entry.heard = 0.0
                entry.seen = entry.paced = entry.new = False

    def _entry(self, key: str) -> _Key:
        entry = self._keys.get(key)
        if entry is None:
            with self._lock:
                entry = self._keys.get(key)
                if entry is None:
                    entry = self._keys[key] = _Key(f"{self._prefix}gate:{self._digest(key)}")
        return entry


def _asks(entry: _Key) -> bool:
    """Whether a send to a key the fleet knows must reserve its slot in Redis: paced there, not
    yet heard of from Redis, or with a 429, a pause or an announced rate to report."""
    return bool(entry.paced or not entry.seen or entry.rejected or entry.pause_until or entry.heard)
