"""`HostGate`: coordination of all requests to one origin, across threads and tasks.

Sans-IO: the gate never sleeps. `HostGate.delay` reserves the caller's send slot and says how
long to wait for it; `HostGate.observe` feeds it each decision. One short lock guards the
bookkeeping, so the same gate serves threads, asyncio and trio alike.

Two mechanisms, both idle until an origin misbehaves:

- Pacing. After an origin's first 429 its sends go through a per-origin pacer (a token bucket
  holding at most `burst` tokens) whose rate is learned from the server. While the client keeps
  a token-bucket limiter empty, the successes between 429s divided by the time between them is
  the server's rate; the pacer holds at `hold` (0.95) of it, then probes upward slowly and
  cubically (a plateau, not a sawtooth: each late 429 costs its request a full Retry-After).
  ``RateLimit-Policy`` / ``RateLimit`` / ``X-RateLimit-*`` headers, when sent, set it directly.
- Pause. A wait that carries real information (a 503 naming one, an HTTP-date, or a long wait
  from a fixed-window limit) holds every send to the origin until it passes. A short
  ``Retry-After: 1`` from a fast-refilling bucket does not stop the whole pipe.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._retry_after import header_value
from ._state import Decision, Reason

__all__ = ["HostGate", "origin_of"]

#: ``"name";q=100;w=60`` (current draft) or ``100;w=60`` (the widely deployed older draft).
_POLICY_QUOTA = re.compile(r"(?:^\s*(?=[0-9])|(?:^|[;,\s])(?:q|limit)=)([0-9]+)", re.ASCII)
_POLICY_WINDOW = re.compile(r"[;\s]w=([0-9]+)", re.ASCII)
_FIELD_REMAINING = re.compile(r"(?:^|[;,\s])(?:r|remaining)=([0-9]+)", re.ASCII)
_FIELD_RESET = re.compile(r"(?:^|[;,\s])(?:t|reset)=([0-9]+)", re.ASCII)


#: A count longer than this is no count a server means; reading it would overflow a float
#: (or pass Python's limit on ``int(str)``), so the field is ignored instead.
_MAX_DIGITS = 15


def _count(text: str | None) -> int | None:
    """A header's non-negative decimal count, or None for anything else (or too many digits)."""
    if text is None:
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    return int(text)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without userinfo, path or query."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        return ""
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme.lower()}://{authority.rpartition('@')[2].lower()}"


@dataclass(slots=True)
class _Origin:
    """Bookkeeping for one origin. Only touched under the gate's lock (counters excepted)."""

    last_seen: float
    #: Successes in the current and the previous rate window (for the first estimate).
    window_start: float = 0.0
    window_successes: int = 0
    previous_successes: int = 0
    #: Pacing: off until the first 429.
    paced: bool = False
    rate: float = 0.0
    hold_rate: float = 0.0
    next_free: float = 0.0
    #: The current run of 429s: when it began and the successes seen since.
    episode_start: float = 0.0
    episode_successes: int = 0
    last_429: float = float("-inf")
    last_delayed: float = float("-inf")
    header_rate: float | None = None
    #: The hold rate came from the server's behaviour, not from the first guess.
    measured: bool = False
    #: Seconds since the last 429 during which the pacer held nobody back: the client was not
    #: using the rate, so they taught nothing about it and do not count towards probing up.
    idle_probe: float = 0.0
    last_probe: float = float("-inf")
    paused_until: float = float("-inf")


class HostGate:
    """Per-origin pacing and pausing, shared by every request of one or more clients.

    ``key`` maps a URL to the unit a server limits by (default: its origin; use your own for
    limits per API key or per route). ``burst`` is the most sends released at once after any
    wait; ``pause_after`` the shortest plain ``Retry-After`` that pauses the whole origin.
    """

    def __init__(
        self,
        *,
        key: Callable[[str], str] = origin_of,
        burst: int = 2,
        hold: float = 0.95,
        pause_after: float = 5.0,
        calm_after: float = 30.0,
        idle_expiry: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1:
            raise ValueError(f"HostGate.burst must be >= 1, got {burst!r}")
        if not 0.0 < hold <= 1.0:
            raise ValueError(f"HostGate.hold must be in (0, 1], got {hold!r}")
        self.key = key
        self._burst = burst
        self._hold = hold
        self._pause_after = pause_after
        self._calm_after = calm_after
        self._idle_expiry = idle_expiry
        self._clock = clock
        self._lock = threading.Lock()
        self._origins: dict[str, _Origin] = {}
        self._last_sweep = clock()

    def __repr__(self) -> str:
        return f"HostGate(origins={len(self._origins)})"

    # -- what adapters call ---------------------------------------------------------------

    def free(self, key: str) -> bool:
        """Whether sends to ``key`` go at once (not paced, not paused): no slot to reserve."""
        entry = self._origins.get(key)
        return entry is None or (not entry.paced and entry.paused_until == float("-inf"))

    def delay(self, key: str, *, now: float | None = None) -> float:
        """Reserve the next send slot for ``key``; the seconds to wait before sending."""
        entry = self._origins.get(key)
        if entry is None or (not entry.paced and entry.paused_until == float("-inf")):
            return 0.0
        with self._lock:
            now = self._clock() if now is None else now
            return self._reserve(entry, now)

    def succeeded(
        self, key: str, headers: Mapping[str, str] | Any = None, now: float = 0.0
    ) -> None:
        """Learn from a success to ``key`` at monotonic ``now`` (the happy path: no lock)."""
        entry = self._origins.get(key)
        if entry is not None and not entry.paced and now - entry.window_start < 1.0:
            entry.window_successes += 1
            return
        # Once a second (or while paced), roll the window and keep the origin alive, locked.
        with self._lock:
            if entry is None:
                entry = self._origins[key] = _Origin(last_seen=now, window_start=now)
                self._maybe_sweep(now)
            entry.last_seen = now
            self._on_success(entry, now, headers)

    def observe(
        self,
        key: str,
        decision: Decision,
        headers: Mapping[str, str] | Any = None,
        *,
        now: float | None = None,
    ) -> None:
        """Learn from one judged attempt: a success, a 429, or a wait worth pausing for."""
        now = self._clock() if now is None else now
        status = decision.status
        if status is not None and status < 400:
            self.succeeded(key, headers, now)
            return
        with self._lock:
            entry = self._origins.get(key)
            if entry is None:
                entry = self._origins[key] = _Origin(last_seen=now, window_start=now)
                self._maybe_sweep(now)
            entry.last_seen = now
            if status == 429:
                self._on_rate_limited(entry, now, headers)
            if (
                decision.retry_after is not None
                and decision.retry_after > 0.0
                and decision.reason != Reason.WAIT_EXCEEDS_MAX  # nobody honours it
            ):
                self._maybe_pause(entry, now, decision)

    def rate(self, key: str) -> float | None:
        """The pacing rate for ``key`` in sends per second, or None while it is not paced."""
        entry = self._origins.get(key)
        return entry.rate if entry is not None and entry.paced else None

    def rates(self) -> dict[str, float]:
        """Every paced key and its rate in sends per second (for metrics; a copy)."""
        return {key: entry.rate for key, entry in list(self._origins.items()) if entry.paced}

    def paused_until(self, key: str) -> float | None:
        """The monotonic time until which ``key`` is paused, or None."""
        entry = self._origins.get(key)
        if entry is None or entry.paused_until == float("-inf"):
            return None
        return entry.paused_until

    # -- internals (under the lock) -------------------------------------------------------

    def _reserve(self, entry: _Origin, now: float) -> float:
        start = max(now, entry.paused_until)
        if not entry.paced:
            if entry.paused_until <= now:
                entry.paused_until = float("-inf")
            return start - now
        # Calm counts from the end of a pause: requests that waited out a long pause on their
        # own are released by the pacer, not all at once.
        quiet_since = max(entry.last_429, entry.last_delayed, entry.paused_until)
        if now - quiet_since > self._calm_after:
            entry.paced = False  # calm for a while: back to the free path
            return start - now
        if not entry.measured:
            # A first guess grows on a schedule: a crowd reserving at once follows it, slot by
            # slot, rather than keeping the guess (1/s with no successes seen) for all of them.
            self._probe(entry, max(start, entry.next_free))
        interval = 1.0 / entry.rate
        # At most `burst` tokens bank up while idle, so a wait never ends in a stampede.
        earliest = max(entry.next_free, start - (self._burst - 1) * interval)
        slot = max(start, earliest)
        entry.next_free = earliest + interval
        if slot > now:
            entry.last_delayed = now
        self._probe(entry, now)
        return slot - now

    def _roll_window(self, entry: _Origin, now: float) -> None:
        if now - entry.window_start >= 1.0:
            entry.previous_successes = (
                entry.window_successes if now - entry.window_start < 2.0 else 0
            )
            entry.window_successes = 0
            entry.window_start = now

    def _on_success(self, entry: _Origin, now: float, headers: Any) -> None:
        self._roll_window(entry, now)
        entry.window_successes += 1
        entry.episode_successes += 1
        if headers is not None:
            self._rate_from_headers(entry, headers)

    def _on_rate_limited(self, entry: _Origin, now: float, headers: Any) -> None:
        self._roll_window(entry, now)
        if not entry.paced:
            # A first guess from recent successes; the first run of 429s corrects it quickly.
            span = max(now - entry.window_start + (1.0 if entry.previous_successes else 0.0), 0.1)
            seen = entry.window_successes + entry.previous_successes
            entry.paced = True
            entry.rate = entry.hold_rate = max(seen / span * 0.5, 1.0)
            # A new pacing spell (the first, or one after calm) learns the rate afresh.
            entry.measured, entry.header_rate = False, None
            entry.next_free = now
            entry.episode_start, entry.episode_successes = now, 0
        elif now - entry.last_429 > 0.5:
            # The first 429 after a calm spell: the rate we were probing at just crossed the
            # server's.
            # Hold just under it.
            entry.hold_rate = max(entry.rate * self._hold, 1.0)
            entry.rate = entry.hold_rate
            entry.measured = True
            entry.episode_start, entry.episode_successes = now, 0
        elif now - entry.episode_start >= 0.05 and entry.episode_successes > 0:
            # Inside a run of 429s the limiter is empty: what got through is its rate.
            measured = entry.episode_successes / (now - entry.episode_start)
            entry.hold_rate = max(measured * self._hold, 1.0)
            entry.rate = min(entry.rate, entry.hold_rate)
            entry.measured = True
        entry.last_429 = now
        entry.idle_probe = 0.0
        if headers is not None:
            self._rate_from_headers(entry, headers)

    def _probe(self, entry: _Origin, now: float) -> None:
        if entry.header_rate is not None:
            return
        # Time spent paused taught nothing about the rate: probing counts from the pause's end.
        calm = max(now - max(entry.last_429, entry.paused_until), 0.0)
        if not entry.measured:
            # Only a first guess so far: double every half second until the server objects.
            entry.rate = entry.hold_rate * 2.0 ** min(calm / 0.5, 10.0)
        else:
            if now - entry.last_delayed > 0.5 and entry.last_probe > float("-inf"):
                # Nobody waited on the pacer lately: the rate is not what limits the client.
                entry.idle_probe += max(now - entry.last_probe, 0.0)
            entry.last_probe = max(entry.last_probe, now)
            busy = calm - entry.idle_probe
            if busy > 1.0:
                # Cubic growth from the hold: flat near the plateau, bolder once it stays calm.
                entry.rate = entry.hold_rate * min(1.0 + 0.02 * (busy - 1.0) ** 3, 10.0)

    def _rate_from_headers(self, entry: _Origin, headers: Any) -> None:
        quota_policy = header_value(headers, "RateLimit-Policy") or header_value(
            headers, "X-RateLimit-Policy"
        )
        if quota_policy:
            quota_match = _POLICY_QUOTA.search(quota_policy)
            window_match = _POLICY_WINDOW.search(quota_policy)
            quota = _count(quota_match[1] if quota_match else None)
            window = _count(window_match[1] if window_match else None)
            if quota is not None and window:
                entry.header_rate = max(quota / window * self._hold, 0.01)
                entry.rate = entry.hold_rate = entry.header_rate
                return
        field_value = header_value(headers, "RateLimit")
        remaining_text: str | None = None
        reset_text: str | None = None
        if field_value:
            remaining, reset = (
                _FIELD_REMAINING.search(field_value),
                _FIELD_RESET.search(field_value),
            )
            remaining_text = remaining[1] if remaining else None
            reset_text = reset[1] if reset else None
        else:
            remaining_text = header_value(headers, "RateLimit-Remaining") or header_value(
                headers, "X-RateLimit-Remaining"
            )
            reset_text = header_value(headers, "RateLimit-Reset") or header_value(
                headers, "X-RateLimit-Reset"
            )
        left, reset_seconds = _count(remaining_text), _count(reset_text)
        if left is None or reset_seconds is None:
            return
        if 0 < reset_seconds < 1_000_000_000 and left > 0:
            # Spread what is left of the window over the time left in it.
            entry.header_rate = max(left / reset_seconds, 0.01)
            entry.rate = entry.hold_rate = entry.header_rate

    def _maybe_pause(self, entry: _Origin, now: float, decision: Decision) -> None:
        wait = decision.retry_after or 0.0
        informative = decision.status == 503 or wait >= self._pause_after or decision.dated
        if informative:
            entry.paused_until = max(entry.paused_until, now + wait)
            if not entry.paced:
                span = max(now - entry.window_start, 0.1)
                seen = entry.window_successes + entry.previous_successes
                entry.rate = entry.hold_rate = max(seen / (span + 1.0), 1.0)
                entry.paced = True
                entry.next_free = now
                entry.last_429 = max(entry.last_429, now)
                entry.idle_probe = 0.0

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < 60.0:
            return
        self._last_sweep = now
        expired = [k for k, e in self._origins.items() if now - e.last_seen > self._idle_expiry]
        for key in expired:
            del self._origins[key]
