"""`HostGate`: coordination of all requests to one origin, across threads and tasks.

Sans-IO: the gate never sleeps. `HostGate.delay` reserves the caller's send slot and says how
long to wait for it; `HostGate.observe` feeds it each decision. One short lock guards the
bookkeeping, so the same gate serves threads, asyncio and trio alike.

Two mechanisms, both idle until an origin limits:

- Pacing. Once an origin announces a limit or sends a 429, its sends go through a per-origin
  pacer (a token bucket holding at most `burst` tokens).
  - Announced limits come first: the first response of an origin and then one a second (every
    one while paced) is read with `forbear._ratelimit.read_limits` in every dialect. The
    tightest announced request rate (`announced_rate`) sets the pace; the tightest current
    limit's ``remaining`` is a budget the pacer keeps within until its reset (nothing remaining
    pauses the origin until then); a ``concurrent-requests`` quota caps the sends in flight.
    Partitions (``pk``, a vendor's bucket) are kept apart: each has its own announced rate, and
    the key is paced at the tightest one heard from lately.
  - A refill is learnt, never assumed. Two readings of a quota counting down to the same dated
    reset (so no window boundary lies between them), at least `_REFILL_SPAN` and a few
    successes apart, are compared: the quota spent a unit on each success answered between
    them, so what it holds beyond that came back; less the answers that may have overtaken one
    another, that over the span is a refill it has shown (the most shown in the last few
    seconds holds). Readings whole all along may name different resets: a quota read whole
    all along refilled what was spent, whichever window it was in. The pace is what is left
    over the reset plus that refill; the slot after the last one before the reset is at the
    reset, never later at the pace read before it. While the quota stays whole across a span
    and well above empty, the refill counts twice (a probe); it
    settles where what is left holds steady above zero. A fixed window shows none (what is left
    falls by exactly the sends), so it is paced at what is left over the reset as before, and a
    spent one still waits for its reset; a quota that has shown a refill is paced when spent,
    not paused, and what is left is no budget to the reset. A spent quota's pause gives the
    slots after it the pace the quota had when read whole, not that of its last few units.
  - Without announcements, the first 429 starts pacing at a rate the process learned earlier
    for the key (kept `remember` seconds after pacing ends), else at what the origin accepted
    lately, and doubles it on a short schedule until the server objects. While the client keeps
    a token-bucket limiter empty, the successes between 429s divided by the time between them
    is the server's rate (counted over the run's last half second); sends refused together
    that come back from their ``Retry-After`` and are refused again continue the run (each
    such step at most halves the pace). The pacer holds at `hold` of it, then probes upward:
    flat for a second, then faster and faster (each late 429 costs its request a full
    Retry-After, so a probe is a plateau, not a sawtooth).
- Pause. A wait that carries real information (a 503 naming one, an absolute time, or a long
  wait from a fixed-window limit) holds every send to the origin until it passes. A short
  ``Retry-After: 1`` from a fast-refilling bucket does not stop the whole pipe.

- Slow start. For its first `learn_for` seconds an origin is new: `free` counts the sends it
  lets go and answers count them back (no lock on `free`; a count lost to a race only shifts
  when a crowd is noticed). A send that would put more than `crowd` in flight before the origin
  has shown a rate starts a slow start: the crowd is paced from `start_rate`, doubling every
  `double_every` (slot by slot, so a crowd reserving at once follows the schedule), instead of
  draining a burst the origin may not have. The first 429 after its first period halves the
  rate it reached (the run of 429s that follows measures the server's); an announcement paces
  at what it says, after the slots already given out; a remembered rate is used at once. Once
  nobody has waited on it for two periods, or after six doublings without a 429, the slow start
  ends and the origin is free for good (until it limits). A new origin's first 429 to a
  client that formed no crowd (threads starting one after another, say) starts a slow start
  too, from the first guess; one begun so goes on as a first guess when it ends. A slow start
  doubles at most once a slot: one from a guess of a send a second has its second slot a
  second away and has not doubled ten times by then, and a 429 halves the pace it last sent
  at.

- Asking again. The view of an origin can tighten while sends sleep on slots it gave out
  ahead: a rate cut at a 429 (a slow start crossing the server's rate, a run of 429s
  measuring it), a pause, an announced rate or in-flight limit. Each change bumps the origin's
  `generation`; the slots given out ahead are void and the schedule restarts from now. A send
  woken on its slot asks `confirm` with the generation it read after `delay`: 0.0 when
  unchanged (no lock), else a fresh slot under the new view. Until some holder reads
  `generation`, a change voids nothing (holders that never ask keep their slots, and the new
  pace begins after them). A pace read from what is left until a dated reset holds only until
  that reset: no slot is given out more than a short step past it while no refill is known.
  A send that would get one is told to wait for the reset with no slot behind the wait
  (`Again`) and then asks `delay` afresh, so a crowd that reserved at a slow first reading is
  not asleep for seconds on slots a faster pace learnt meanwhile cannot shorten. A slow
  start's crowd read first with the quota nearly whole, but more of it in flight than is left,
  voids the slots given out ahead too. While a quota paced at its refill is read spent, a
  holder woken on time right behind one woken late (a busy event loop) waits out the rest of
  one interval after it, on the same slot: the server counts sends, not slots.

An origin that neither announces a limit nor refuses a send, reached by a client that never has
more than `crowd` sends in flight, is never paced: `free` stays True, and once the origin is no
longer new a success takes no lock (but once a second, to roll its counters and read its
headers). A crowd against such an origin is paced only by its slow start (about 0.6 s at most).

Calm lanes. Such an origin's bookkeeping carries ``calm_until``, the end of its current
success window, set where that window is rolled under the lock while the origin is neither
paced, paused, new nor announcing, and void the moment any of those begins. `forbear.Retrier`
reads it in place for a gate of exactly this class: before it, a send goes without `free` and
its success is counted in ``window_successes`` without `succeeded` (what `succeeded` itself
does then); after it, both are called as before, and the next success rolls the window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._ratelimit import QuotaState, announced_rate, read_limits, refill_state
from ._state import Decision, Reason

__all__ = ["Again", "HostGate", "origin_of"]

_NEVER = float("-inf")
#: An announced partition not heard from for this long no longer sets the pace.
_PARTITION_STALE = 10.0
#: A lower bound of a refilling quota's rate (see `AnnouncedRate.bound`) holds this long: the
#: highest heard within it paces (a nearly full bucket says little about its rate).
_BOUND_FRESH = 5.0
#: The slowest pace the gate keeps, in sends per second.
_SLOWEST = 0.01
#: A slow start that doubled this often without a 429 ends: the origin is free from then on.
_RAMP_DOUBLINGS = 6
#: The pace of an origin that announced an in-flight limit but no rate.
_NO_RATE = 1e9
#: A rate cut below this fraction of the pace voids the slots reserved ahead (see `confirm`).
_CUT = 0.9
#: A run of 429s is trusted in full once it counted `_TRUSTED_RUN` successes, or this many
#: seconds' worth at the pace it cuts when that is fewer (a slow origin's runs are short), never
#: fewer than `_TRUSTED_FEWEST`.
_TRUSTED_RUN = 40
_TRUSTED_SPAN = 0.1
_TRUSTED_FEWEST = 3.0
#: A 429 this many seconds or fewer after the last one may continue its run (see `_resumed`):
#: the refused sends come back after their ``Retry-After`` (a pause is longer than this).
_RUN_GAP = 5.5
#: A run of 429s measures the server's rate over at most its last this many seconds.
_RUN_WINDOW = 0.5
#: A refill is measured over readings at least this many seconds apart (see `_refilled`).
_REFILL_SPAN = 0.1
#: A horizon (see `_deferred`) passed without a newer reading moves on by this many seconds.
_HORIZON_STEP = 0.25
#: While a dated quota's refill is learnt, slots go out at most this many seconds ahead.
_LOOKAHEAD = 0.5
#: Units a span's reading may be off by (answers overtaking one another): not evidence.
_REFILL_SLACK = 1
#: ... and at least this many successes apart.
_REFILL_FEWEST = 4


class Again(float):
    """A wait from `HostGate.delay` (or `confirm`) with no slot behind it: once waited out,
    the send asks `delay` for its slot again instead of going (see `HostGate._deferred`)."""

    __slots__ = ()


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
    #: Successes since the last 429 (while paced).
    quiet_successes: int = 0
    #: When the successes of the last `_RUN_WINDOW` seconds were answered (while paced).
    recent: deque[float] | None = None
    last_delayed: float = float("-inf")
    header_rate: float | None = None
    #: The hold rate came from the server's behaviour, not from the first guess.
    measured: bool = False
    #: Seconds since the last 429 during which the pacer held nobody back: the client was not
    #: using the rate, so they taught nothing about it and do not count towards probing up.
    idle_probe: float = 0.0
    last_probe: float = float("-inf")
    paused_until: float = float("-inf")
    #: Announced: at most `budget` more sends before `budget_until` (-1: none known).
    budget: int = -1
    budget_until: float = float("-inf")
    #: Announced rates by partition (``pk``; None for none): (sends per second, when heard).
    partitions: dict[str | None, tuple[float, float]] | None = None
    #: Successes answered while announcing (a quota spent one unit on each).
    spent: int = 0
    #: The reading a quota's refill is measured from: (when, remaining, its reset's Unix
    #: time, `spent` then); None: none yet.
    mark: tuple[float, int, float, int] | None = None
    #: Every reading since the mark was whole: a span may then name another reset (a quota
    #: read whole all along refilled what was spent, whichever window it was in).
    all_whole: bool = False
    #: The refill the announced quota showed over its last span (sends per second; 0.0: none
    #: shown), and when.
    refill: float = 0.0
    refill_heard: float = float("-inf")
    refill_last: float = float("-inf")
    #: That span ended as full as it began: the quota kept up (a probe may go faster).
    kept_up: bool = False
    #: The pace announced when the quota was last read whole: the pace after a reset.
    whole: float = 0.0
    #: Announced ``concurrent-requests`` quota (0: none) and the slots of sends in flight.
    limit: int = 0
    flying: deque[float] | None = None
    #: A running estimate of a send's duration (for the in-flight limit).
    latency: float = 0.0
    #: Calm, but paced at the rate learned from its 429s until then (-inf: not yet calm).
    kept_until: float = float("-inf")
    #: While paced: sends reserved and attempts answered (their difference is in flight).
    reserved: int = 0
    answered: int = 0
    #: First contact: until the origin has shown a rate (or `learn_for` passed without a
    #: crowd), sends in flight are counted, without a lock, so a crowd can be told apart.
    learning: bool = False
    learn_until: float = float("-inf")
    in_flight: int = 0
    #: A slow start paces a crowd at a rate doubling every `double_every` from `start_rate`
    #: (the spell's `episode_start`), until the server objects or the client is the limit.
    ramping: bool = False
    #: The origin announces its limits: a success's headers are read even when not paced.
    announces: bool = False
    #: Bumped whenever the gate's view of the origin tightens (a rate cut, a pause, an
    #: announced limit): slots reserved under an older one are void (see `HostGate.confirm`).
    generation: int = 0
    #: The dated reset the announced pace holds until (-inf: none): no slot is given out
    #: past it (see `_deferred`).
    horizon: float = float("-inf")
    #: That reset, as read (the horizon moves on past it; this does not).
    reset_at: float = float("-inf")
    #: The last reading left at most one unit of a quota paced at its refill: a send bunched
    #: with the one before it meets an empty bucket (see `HostGate.confirm`).
    tight: bool = False
    #: When the last send that waited for its slot, or got one at once, went.
    last_sent: float = float("-inf")
    #: The interval between a slow start's last two slots (0.0: none yet).
    ramp_interval: float = 0.0
    #: Its calm lane: until then (the end of the success window), a send goes without `free`
    #: and a success is only counted in `window_successes`, by the retrier's runner in place
    #: (see `HostGate`). Set only where `succeeded` rolls the window under the lock, to an
    #: origin that is neither paced, paused, new nor announcing; void (-inf) once any of
    #: those begins.
    calm_until: float = float("-inf")


class HostGate:
    """Per-origin pacing and pausing, shared by every request of one or more clients.

    ``key`` maps a URL to the unit a server limits by (default: its origin; use your own for
    limits per API key or per route). ``burst`` is the most sends released at once after any
    wait; ``hold`` the fraction of a measured or announced rate the pacer keeps to;
    ``pause_after`` the shortest plain ``Retry-After`` that pauses the whole origin;
    ``calm_after`` the seconds without a 429 or a held-back send after which an origin goes
    back to the free path; ``remember`` how long a rate learned from 429s is kept after that,
    so a later crawl of the same key starts at it. ``crowd``, ``start_rate``,
    ``double_every`` and ``learn_for`` shape the slow start a crowd meets at a new origin.

    Read-only views: `rate` (the pace of a key), `rates`, `paused_until`, `learned` (a rate
    learned from 429s) and `announced` (the pace a key keeps because its server announced a
    limit, after ``hold``; None once nothing announced is fresh), which a fleet can share.
    """

    def __init__(
        self,
        *,
        key: Callable[[str], str] = origin_of,
        burst: int = 2,
        hold: float = 0.97,
        pause_after: float = 5.0,
        calm_after: float = 30.0,
        idle_expiry: float = 300.0,
        remember: float = 3600.0,
        crowd: int = 16,
        start_rate: float = 200.0,
        double_every: float = 0.1,
        learn_for: float = 2.0,
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
        self._remember = remember
        self._crowd = crowd
        self._start_rate = start_rate
        self._double_every = double_every
        self._learn_for = learn_for
        self._clock = clock
        self._lock = threading.Lock()
        self._origins: dict[str, _Origin] = {}
        #: Rates learned from 429s, kept after pacing ends: key -> (rate, kept until).
        self._learned: dict[str, tuple[float, float]] = {}
        self._last_sweep = clock()
        #: Whether the holders of slots ask again after waiting (they read `generation`): only
        #: then are the slots given out ahead void when the view changes.
        self._confirming = False

    def __repr__(self) -> str:
        return f"HostGate(origins={len(self._origins)})"

    # -- what adapters call ---------------------------------------------------------------

    def free(self, key: str) -> bool:
        """Whether sends to ``key`` go at once (not paced, not paused): no slot to reserve.

        True counts a send in flight while the origin is new (see `delay`)."""
        entry = self._origins.get(key)
        if entry is None:
            entry = self._contact(key, self._clock())
        if entry.learning:
            return self._learning_free(entry)
        return not entry.paced and entry.paused_until == _NEVER

    def delay(self, key: str, *, now: float | None = None) -> float:
        """Reserve the next send slot for ``key``; the seconds to wait before sending.

        While an origin is new (its first `learn_for` seconds, nothing shown yet), sends in
        flight are counted; more than `crowd` at once starts a slow start."""
        entry = self._origins.get(key)
        if entry is None:
            entry = self._contact(key, self._clock() if now is None else now)
        elif not entry.paced and entry.paused_until == _NEVER and not entry.learning:
            return 0.0
        with self._lock:
            now = self._clock() if now is None else now
            if entry.learning:
                entry.in_flight += 1
                if now >= entry.learn_until:
                    self._learnt(entry)
                elif entry.in_flight > self._crowd and not entry.paced:
                    self._ramp(key, entry, now)
            return self._reserve(key, entry, now)

    def generation(self, key: str) -> int:
        """The view of ``key`` a slot from `delay` is reserved under (no lock).

        Read it right after `delay`; after waiting out the slot, `confirm` says whether it still
        holds."""
        self._confirming = True
        entry = self._origins.get(key)
        return 0 if entry is None else entry.generation

    def confirm(self, key: str, generation: int, *, now: float | None = None) -> float:
        """After waiting out a slot reserved under ``generation``: 0.0 when it still holds,
        else the wait for a fresh slot, reserved now (the old one is void).

        The gate's view of an origin changes while sends sleep on slots: a rate cut at a 429,
        a pause, an announced limit. A send woken on a slot given out under an older view asks
        again instead of going out on it. Unchanged (the common case): no lock.

        A holder woken late (a busy event loop, a thread scheduled late) goes out close behind
        the next holder, woken on time. While the server says its quota is spent (`tight`),
        such a send is told to wait out the rest of one interval after the send before it: its
        slot still holds, so the wait is a plain float and the same generation confirms it."""
        entry = self._origins.get(key)
        if entry is None:
            return 0.0
        if entry.generation == generation:
            now = self._clock() if now is None else now
            if entry.tight and entry.rate > 0.0:
                with self._lock:
                    gap = entry.last_sent + 1.0 / entry.rate - now
                    if gap > 0.0:
                        return gap
                    entry.last_sent = now
                    return 0.0
            entry.last_sent = now
            return 0.0
        with self._lock:
            if entry.reserved > entry.answered:
                entry.reserved -= 1  # its old slot is given back
            return self._reserve(key, entry, self._clock() if now is None else now)

    def succeeded(
        self, key: str, headers: Mapping[str, str] | Any = None, now: float = 0.0
    ) -> None:
        """Learn from a success to ``key`` at monotonic ``now`` (the happy path: no lock)."""
        entry = self._origins.get(key)
        if (
            entry is not None
            and not entry.paced
            and now - entry.window_start < 1.0
            and not entry.announces
        ):
            if not entry.learning:
                entry.window_successes += 1
                return
            if entry.window_successes and now < entry.learn_until:
                # New, and this second's headers read already: one fewer in flight (not
                # locked, like the count up in `free`).
                entry.window_successes += 1
                if entry.in_flight > 0:
                    entry.in_flight -= 1
                return
        # Once a second (or while paced, or when a new origin's learning ends), roll the
        # window, read the headers and keep the origin alive, locked.
        with self._lock:
            if entry is None:
                entry = self._new(key, now)
            entry.last_seen = now
            self._on_success(key, entry, now, headers)
            calm = not (entry.paced or entry.learning or entry.announces)
            if calm and entry.paused_until == _NEVER:
                entry.calm_until = entry.window_start + 1.0

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
                entry = self._new(key, now)
            entry.last_seen = now
            if entry.answered < entry.reserved:
                entry.answered += 1  # (an answer to a send from before the spell: not counted)
            if entry.learning:
                self._landed_new(entry, now)
            if entry.flying:
                self._landed(entry)
            if status == 429:
                self._on_rate_limited(key, entry, now, headers)
            if (
                decision.retry_after is not None
                and decision.retry_after > 0.0
                and decision.reason != Reason.WAIT_EXCEEDS_MAX  # nobody honours it
            ):
                self._maybe_pause(key, entry, now, decision)

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
        if entry is None or entry.paused_until == _NEVER:
            return None
        return entry.paused_until

    def announced(self, key: str, *, now: float | None = None) -> float | None:
        """The rate ``key`` is paced at because its server announced a limit, in sends per
        second after ``hold``: the tightest partition heard from lately. None when nothing was
        announced, the announcement is stale, or only an in-flight limit was announced."""
        entry = self._origins.get(key)
        if entry is None or not entry.paced or entry.header_rate in (None, _NO_RATE):
            return None
        now = self._clock() if now is None else now
        fresh = [
            rate
            for rate, heard in list((entry.partitions or {}).values())
            if now - heard < _PARTITION_STALE
        ]
        return min(fresh) if fresh else None

    def learned(self, key: str, *, now: float | None = None) -> float | None:
        """The rate learned for ``key`` from its 429s and still remembered, or None."""
        kept = self._learned.get(key)
        now = self._clock() if now is None else now
        return kept[0] if kept is not None and kept[1] > now else None

    # -- internals (under the lock) -------------------------------------------------------

    def _new(self, key: str, now: float) -> _Origin:
        """First contact with ``key``: a new origin, learning (under the lock)."""
        entry = self._origins[key] = _Origin(
            last_seen=now, window_start=now, learning=True, learn_until=now + self._learn_for
        )
        self._maybe_sweep(now)
        return entry

    def _contact(self, key: str, now: float) -> _Origin:
        with self._lock:
            entry = self._origins.get(key)
            return self._new(key, now) if entry is None else entry

    def _learning_free(self, entry: _Origin) -> bool:
        """`free` for a new origin: True, counted in flight, unless a crowd would form."""
        if entry.paced or entry.paused_until != _NEVER:
            return False
        if entry.in_flight >= self._crowd:
            # A crowd: `delay` says whether the learning is over or a slow start begins.
            return False
        # Not locked: a count lost to a race only shifts when a crowd is noticed.
        entry.in_flight += 1
        return True

    def _landed_new(self, entry: _Origin, now: float) -> None:
        """An answer from a new origin: one fewer in flight; the learning ends on time."""
        if entry.in_flight > 0:
            entry.in_flight -= 1
        if now >= entry.learn_until:
            self._learnt(entry)

    @staticmethod
    def _learnt(entry: _Origin) -> None:
        """The origin is no longer new: no more counting (the free path is the cheap one)."""
        entry.learning = False
        entry.in_flight = 0

    def _ramp(self, key: str, entry: _Origin, now: float) -> None:
        """A crowd formed against a new origin: a slow start from `start_rate` (or the rate the
        process remembers for the key)."""
        in_flight = entry.in_flight
        self._start(key, entry, now, self._start_rate, measured=False)
        if not entry.measured:
            # Sends stay counted, each from its slot (the free ones from now, this one from
            # its own): an in-flight limit announced later counts them too.
            entry.ramping = entry.learning = True
            entry.in_flight = in_flight
            entry.flying = deque([now] * (in_flight - 1))

    def _reserve(self, key: str, entry: _Origin, now: float) -> float:
        start = max(now, entry.paused_until)
        if not entry.paced:
            if entry.paused_until <= now:
                entry.paused_until = _NEVER
            return start - now
        # Calm counts from the end of a pause: requests that waited out a long pause on their
        # own are released by the pacer, not all at once.
        quiet_since = max(entry.last_429, entry.last_delayed, entry.paused_until)
        if entry.ramping and (
            now - quiet_since > 2.0 * self._double_every
            or now - entry.episode_start > _RAMP_DOUBLINGS * self._double_every
        ):
            # The slow start outgrew the client, or grew far, without an objection: not paced
            # again until the origin limits. (One begun at a 429 goes on as a first guess from
            # the rate it reached, doubling until the server objects: the origin did limit.)
            entry.ramping = False
            self._learnt(entry)
            if entry.last_429 == _NEVER:
                entry.paced = False
                entry.flying = None
                return start - now
            if not entry.limit:
                entry.flying = None
            entry.hold_rate = entry.rate
        if now - quiet_since > self._calm_after and self._calm(key, entry, now):
            return start - now
        if not entry.measured:
            # A first guess grows on a schedule: a crowd reserving at once follows it, slot by
            # slot, rather than keeping the guess for all of them.
            self._probe(entry, max(start, entry.next_free))
        interval = 1.0 / entry.rate
        if entry.ramping:
            # A slow start doubles at most once a slot: one from a slow guess (a first slot a
            # second away) has not doubled ten times by then, for it sent nothing meanwhile.
            interval = max(interval, 0.5 * entry.ramp_interval)
            entry.ramp_interval = interval
        # At most `burst` tokens bank up while idle, so a wait never ends in a stampede.
        earliest = max(entry.next_free, start - (self._burst - 1) * interval)
        slot = max(start, earliest)
        if entry.horizon != _NEVER and self._confirming and slot > now:
            wait = self._deferred(entry, now, slot)
            if wait is not None:
                return wait
        if entry.budget >= 0:
            if slot >= entry.budget_until:
                entry.budget = -1  # its window reset: the next response says what is left
            elif entry.budget == 0:
                slot = entry.budget_until  # spent: wait for the reset
                earliest = slot
                entry.budget = -1
            else:
                entry.budget -= 1
        flying = entry.flying
        if flying is not None:
            if entry.limit and len(flying) >= entry.limit:
                # The send that frees a place: the oldest in flight beyond the limit.
                ends = flying[len(flying) - entry.limit] + entry.latency
                if ends > slot:
                    slot = earliest = ends
            flying.append(slot)
        following = earliest + interval
        if earliest < entry.reset_at < following:
            following = entry.reset_at  # the window's quota is whole again at its reset
        entry.next_free = following
        entry.reserved += 1
        if slot > now:
            entry.last_delayed = now
        else:
            entry.last_sent = now  # it goes at once (a later one confirms its slot)
        self._probe(entry, now)
        return slot - now

    def _deferred(self, entry: _Origin, now: float, slot: float) -> Again | None:
        """A send whose slot lies past the horizon: the wait until the horizon, after which it
        asks `delay` again (`Again`: no slot is reserved); None when the slot is within it.

        A pace read from what is left until a dated reset holds until that reset: after it the
        quota is whole, and a refill may show meanwhile. A crowd reserving at a slow first
        reading would otherwise sleep on slots seconds ahead that a faster pace learnt later
        cannot wake. A horizon passed without a newer reading moves `_HORIZON_STEP` on."""
        horizon = entry.horizon
        if horizon <= now:
            horizon = entry.horizon = now + _HORIZON_STEP
        if slot <= horizon + _HORIZON_STEP:
            return None  # (a slot just past it holds little back: no need to ask again)
        entry.last_delayed = now
        return Again(horizon - now)

    def _calm(self, key: str, entry: _Origin, now: float) -> bool:
        """Calm for a while: True, back to the free path; False, still paced at the rate
        learned from 429s, which the key keeps for `remember` seconds (a later crawl starts at
        it instead of sending a crowd); it is remembered for a new pacer after that too."""
        if entry.measured and entry.header_rate is None:
            if entry.kept_until == _NEVER:
                entry.kept_until = now + self._remember
                entry.rate = entry.hold_rate
                self._learned[key] = (entry.hold_rate, entry.kept_until)
            if now < entry.kept_until:
                return False
        entry.kept_until = _NEVER
        entry.paced = False
        entry.budget = -1
        entry.limit = 0
        entry.flying = None
        return True

    def _landed(self, entry: _Origin) -> None:
        """A send to an origin with an in-flight limit answered: it no longer counts."""
        flying = entry.flying
        assert flying is not None
        if not entry.ramping:
            # Slots of holders that woke on them as the view changed, and then asked again,
            # are no send: beyond the sends reserved and not yet answered, the oldest go.
            for _ in range(len(flying) - max(entry.reserved - entry.answered, 0) - 1):
                flying.popleft()
        sent = flying.popleft()
        took = max(self._clock() - sent, 0.0)
        entry.latency = took if entry.latency == 0.0 else 0.8 * entry.latency + 0.2 * took

    def _roll_window(self, entry: _Origin, now: float) -> None:
        if now - entry.window_start >= 1.0:
            entry.previous_successes = (
                entry.window_successes if now - entry.window_start < 2.0 else 0
            )
            entry.window_successes = 0
            entry.window_start = now

    def _on_success(self, key: str, entry: _Origin, now: float, headers: Any) -> None:
        self._roll_window(entry, now)
        entry.window_successes += 1
        entry.episode_successes += 1
        entry.quiet_successes += 1
        if entry.answered < entry.reserved:
            entry.answered += 1  # (an answer to a send from before the spell: not counted)
        entry.spent += 1
        if entry.paced:
            # When the answer came (a success's ``now`` may be when its request started).
            answered = max(now, self._clock())
            recent = entry.recent
            if recent is None:
                recent = entry.recent = deque()
            recent.append(answered)
            while recent[0] < answered - _RUN_WINDOW:
                recent.popleft()
        if entry.learning:
            self._landed_new(entry, now)
        if entry.flying:
            self._landed(entry)
        if headers:
            # A success's ``now`` may be when its request started: announcements count from now.
            self._announced(key, entry, self._clock(), headers)

    def _start(self, key: str, entry: _Origin, now: float, rate: float, measured: bool) -> None:
        """A new pacing spell at ``rate``: learned afresh, unless the process knows better."""
        self._learnt(entry)
        entry.calm_until = _NEVER
        # Slots a slow start gave out are taken: the new pace begins after them.
        entry.next_free = max(entry.next_free, now) if entry.ramping else now
        entry.ramping = False
        entry.paced = True
        entry.rate = entry.hold_rate = max(rate, _SLOWEST)
        entry.measured = measured
        entry.header_rate = None
        entry.last_delayed = max(entry.last_delayed, now)  # calm counts from the spell's start
        entry.reserved = entry.answered = 0
        entry.episode_start, entry.episode_successes = now, 0
        entry.idle_probe = 0.0
        entry.last_probe = _NEVER
        entry.horizon = entry.reset_at = _NEVER
        entry.ramp_interval = 0.0
        kept = self._learned.get(key)
        if kept is not None and not measured:
            if kept[1] > now:
                entry.rate = entry.hold_rate = kept[0]
                entry.measured = True
            else:
                del self._learned[key]

    def _first_guess(self, entry: _Origin, now: float) -> float:
        """What the origin accepted lately, in sends per second (at least one)."""
        span = max(now - entry.window_start + (1.0 if entry.previous_successes else 0.0), 0.1)
        seen = entry.window_successes + entry.previous_successes
        return max(seen / span, 1.0)

    def _on_rate_limited(self, key: str, entry: _Origin, now: float, headers: Any) -> None:
        self._roll_window(entry, now)
        before = entry.rate if entry.paced and not entry.ramping else 0.0
        if entry.ramping:
            if now - entry.episode_start < self._double_every:
                # An answer to the crowd that went before the slow start: it has not yet sent
                # faster than it began, so it carries on (a run of 429s starts later).
                if headers:
                    self._announced(key, entry, now, headers)
                return
            else:
                # The slow start crossed the server's rate: back to half the rate it reached
                # (the run of 429s that follows measures the server's).
                self._crossed(entry, now)
        elif entry.limit and entry.header_rate == _NO_RATE:
            pass  # only an in-flight limit is announced: the 429s came from sends before it
        elif not entry.paced:
            # A first guess from recent successes; the first run of 429s corrects it quickly.
            guess = max(self._first_guess(entry, now) * 0.5, 1.0)
            new = entry.learning
            self._start(key, entry, now, guess, measured=False)
            if new and not entry.measured:
                # A new origin's first 429 (its client was no crowd): a slow start from the
                # guess, as a crowd's would be, instead of doubling every half second.
                entry.ramping = True
        elif now - entry.last_429 > 0.5 and not self._resumed(entry, now):
            # The first 429 after a calm spell: the rate we were probing at just crossed the
            # server's. Hold just under it.
            entry.hold_rate = max(entry.rate * self._hold, _SLOWEST)
            entry.rate = entry.hold_rate
            entry.measured = True
            entry.episode_start, entry.episode_successes = now, 0
        elif now - entry.episode_start >= 0.05 and entry.episode_successes > 0:
            # Inside a run of 429s the limiter is empty: what got through is its rate,
            # counted over the run's last `_RUN_WINDOW` seconds (a run that began before the
            # server's limit dropped would otherwise average the old rate in for long).
            since = max(entry.episode_start, now - _RUN_WINDOW)
            counted = sum(1 for at in entry.recent or () if at >= since)
            measured = counted / (now - since)
            held = max(measured * self._hold, _SLOWEST)
            if held < entry.rate:
                # Answers arrive with jitter: a short run is trusted in part, a cut grows
                # with the successes it counted (slots void at a cut keep a run short).
                needed = min(max(entry.rate * _TRUSTED_SPAN, _TRUSTED_FEWEST), _TRUSTED_RUN)
                trust = min(counted / needed, 1.0)
                held = entry.rate - trust * (entry.rate - held)
                if now - entry.last_429 > 0.5:
                    # A run going on after its sends slept (`_resumed`): the window may hold
                    # time nobody sent in, so one such step at most halves the pace.
                    held = max(held, entry.rate * 0.5)
            entry.hold_rate = held
            entry.rate = min(entry.rate, held)
            entry.measured = True
        if entry.rate < _CUT * before:
            self._changed(entry, now)
        entry.last_429 = now
        entry.quiet_successes = 0
        entry.idle_probe = 0.0
        entry.kept_until = _NEVER
        if headers:
            self._announced(key, entry, now, headers)

    def _resumed(self, entry: _Origin, now: float) -> bool:
        """Whether a 429 after a quiet spell continues the run of 429s before it: the spell
        was the refused sends waiting out their ``Retry-After`` (little got through at the
        pace), not the pace holding. Refused again as soon as they came back, the pace is
        still too fast: the run goes on measuring instead of holding just under it."""
        if not entry.measured or entry.paused_until > entry.last_429:
            # A first guess growing on its schedule meets the server's rate (that is the
            # crossing to hold under), or a pause came between: not a run going on.
            return False
        gap = now - entry.last_429
        return gap < _RUN_GAP and entry.quiet_successes < 0.5 * entry.rate * gap

    def _probe(self, entry: _Origin, now: float) -> None:
        if entry.header_rate is not None:
            return
        # Time spent paused taught nothing about the rate: probing counts from the pause's end.
        calm = max(now - max(entry.last_429, entry.paused_until), 0.0)
        if entry.ramping:
            entry.rate = self._ramp_rate(entry, now)
        elif not entry.measured:
            # Only a first guess so far: double every half second until the server objects.
            entry.rate = entry.hold_rate * 2.0 ** min(calm / 0.5, 10.0)
        else:
            if now - entry.last_delayed > 0.5 and entry.last_probe > _NEVER:
                # Nobody waited on the pacer lately: the rate is not what limits the client.
                entry.idle_probe += max(now - entry.last_probe, 0.0)
            entry.last_probe = max(entry.last_probe, now)
            busy = calm - entry.idle_probe
            if busy > 1.0:
                # Cubic growth from the hold: flat near the plateau, bolder once it stays calm.
                entry.rate = entry.hold_rate * min(1.0 + 0.02 * (busy - 1.0) ** 3, 10.0)

    def _crossed(self, entry: _Origin, now: float) -> None:
        entry.ramping = False
        if not entry.limit:
            entry.flying = None
        reached = self._ramp_rate(entry, now)
        if entry.ramp_interval > 0.0:
            reached = min(reached, 1.0 / entry.ramp_interval)  # the pace it last sent at
        entry.hold_rate = entry.rate = max(reached * 0.5, _SLOWEST)
        entry.measured = True
        entry.episode_start, entry.episode_successes = now, 0
        self._changed(entry, now)

    def _changed(self, entry: _Origin, now: float, *, spaced: bool = False) -> None:
        """The view of the origin tightened: slots reserved ahead under the old one are void.
        Their holders ask again after waiting (`confirm`), so the schedule restarts from now.
        (Holders that never ask keep theirs: the new pace begins after them.)"""
        entry.generation += 1
        entry.calm_until = _NEVER
        if not self._confirming:
            return
        if spaced and entry.paced and entry.rate > 0.0:
            # Announcements read one after another (each a cut) would each let one send go at
            # once: the schedule restarts one interval of the new pace from now.
            entry.next_free = min(entry.next_free, now + 1.0 / entry.rate)
        elif entry.next_free > now:
            entry.next_free = now
        flying = entry.flying
        while flying and flying[-1] > now:
            flying.pop()  # not sent yet: counted again when its holder asks again

    def _ramp_rate(self, entry: _Origin, now: float) -> float:
        """The slow start's rate at ``now``: doubled every `double_every` since it began."""
        doublings = max(now - entry.episode_start, 0.0) / self._double_every
        return float(entry.hold_rate * 2.0 ** min(doublings, 24.0))

    def _announced(self, key: str, entry: _Origin, now: float, headers: Any) -> None:
        """Pace by what the server announces (see the module's notes); no announcement: no-op."""
        limits = read_limits(headers)
        if limits is None:
            return
        # It says its limits: every answer is read until it is paced (what is left falls).
        entry.announces = True
        entry.calm_until = _NEVER
        pace = announced_rate(limits)
        said, partition = (None, None) if pace is None else (pace.rate, pace.partition)
        bound = pace is not None and pace.bound
        state = refill_state(limits)
        refill = 0.0
        if state is not None and not bound and (said is None or state.partition == partition):
            # What the quota showed it refills, on top of what is left spent until its reset.
            refill = self._refilled(entry, state, now)
            if refill > 0.0:
                said, partition = (said or 0.0) + refill, state.partition
        if said is not None or pace is not None:
            before = entry.rate if entry.paced and not entry.ramping else float("inf")
            cap = entry.limit
            if said is not None:
                partitions = entry.partitions
                if partitions is None:
                    partitions = entry.partitions = {}
                # A lower bound is below the server's rate already: no hold under it.
                held = said if bound else said * self._hold
                heard = (max(held, _SLOWEST), now)
                kept = partitions.get(partition)
                fresh = kept is not None and now - kept[1] < _BOUND_FRESH
                if bound and kept is not None and fresh and kept[0] > heard[0]:
                    heard = kept  # a higher bound heard lately still holds
                partitions[partition] = heard
                if (
                    state is not None
                    and state.limit is not None
                    and state.remaining is not None
                    and state.remaining >= state.limit - 1
                ):
                    entry.whole = heard[0]  # read whole: the pace after a reset
                rate = min(
                    announced
                    for announced, heard in partitions.values()
                    if now - heard < _PARTITION_STALE or heard == now
                )
                if not entry.paced or entry.ramping:
                    self._start(key, entry, now, rate, measured=True)
                entry.header_rate = entry.rate = entry.hold_rate = rate
            if pace is not None and pace.concurrency is not None:
                # Sends a slow start let go are in flight already: the limit counts them.
                outstanding = entry.in_flight if entry.ramping else 0
                if not entry.paced or entry.ramping:
                    # Only the in-flight limit is known: no rate limit beyond it.
                    self._start(key, entry, now, _NO_RATE, measured=True)
                    entry.header_rate = entry.rate = entry.hold_rate = _NO_RATE
                if entry.flying is None:
                    entry.flying = deque([now] * outstanding)
                entry.limit = pace.concurrency
            if (
                entry.rate < _CUT * before
                or (entry.limit and not 0 < cap <= entry.limit)
                or (refill > 0.0 and entry.rate > 2.0 * before)
            ):
                # Tighter: the slots given out ahead are void. Looser by a refill shown: they
                # were given out at a pace the quota outgrew, so are they (the sends woken on
                # them ask again, behind those reserving at the new pace).
                self._changed(entry, now, spaced=True)
        if state is None or not state.reset:
            entry.horizon = entry.reset_at = _NEVER
        elif refill:
            # A refill shown holds on past the reset, but is still being learnt: slots go out
            # `_LOOKAHEAD` ahead at most, so a faster pace learnt next serves those after them.
            entry.horizon, entry.reset_at = now + _LOOKAHEAD, _NEVER
        else:
            # A pace read from what is left holds until the dated reset.
            entry.horizon = entry.reset_at = now + state.reset
        remaining, reset = limits.remaining, limits.reset
        if remaining is None:
            return
        # What is left, less the sends still in flight (the server has not counted them yet).
        in_flight = max(entry.reserved - entry.answered, 0)
        entry.tight = remaining <= 1 and entry.paced and entry.header_rate is not None
        if entry.paced and entry.header_rate is not None and entry.header_rate != _NO_RATE:
            # The quota refills at the pace: the send after those left waits for its unit. (A
            # dated window with no refill shown does not: what is left is read from the pace
            # itself, so the budget below keeps within it, and a spent one pauses.)
            short = in_flight + 1 - remaining
            if short > 0 and (state is None or (refill > 0.0 and remaining == 0)):
                entry.next_free = max(entry.next_free, now + short / entry.rate)
            if refill > 0.0 or (remaining == 0 and pace is not None and pace.refilling):
                # A quota refilling at a known rate: what is left is no budget to the reset,
                # and a spent one is paced, not paused.
                entry.budget = -1
                return
        if reset is None or reset <= 0.0:
            return
        until = now + reset
        if remaining == 0:
            # Nothing left until the reset: pause the origin until then. The quota is whole
            # after it: the slots given out for then keep the pace it had whole, not the
            # pace of its last few units.
            if entry.paced and entry.whole > entry.rate:
                entry.rate = entry.whole
            if until > entry.paused_until:
                entry.paused_until = until
                entry.calm_until = _NEVER
                self._changed(entry, now)
            entry.budget = -1
            return
        if not entry.paced:
            return  # a budget alone paces only an origin paced anyway
        flying = entry.flying
        if state is None:
            pass  # no dated reset: every slot given out counts against what is left
        elif flying is None:
            # The slots given out from now on, so those after the reset can be told apart.
            entry.flying = deque()
        else:
            # Slots after the reset spend the next window, not what is left of this one.
            later = 0
            for slot in reversed(flying):
                if slot < until:
                    break
                later += 1
            in_flight = max(in_flight - later, 0)
        budget = max(remaining - in_flight, 0)
        if budget == 0 and entry.ramping and entry.next_free > now:
            # What is left is spent by the sends in flight (a slow start's crowd, read first
            # with the quota still whole): the slots given out ahead are void, and their
            # holders wait for the reset instead of going into an empty quota.
            self._changed(entry, now, spaced=True)
        entry.budget, entry.budget_until = budget, until

    def _refilled(self, entry: _Origin, state: QuotaState, now: float) -> float:
        """The refill ``state`` has shown, in sends per second, doubled while it stays full
        (a probe); 0.0 when none is shown (see the module's notes).

        Readings at least `_REFILL_SPAN` apart that name the same reset (a window's boundary
        is never between them) are compared: the quota spent a unit on each success answered
        in between, so what it holds beyond that came back. The latest span's is the refill."""
        left, at = state.remaining, state.at
        assert left is not None and at is not None
        mark = entry.mark
        whole = state.limit is not None and left >= state.limit - 1
        if not whole:
            entry.all_whole = False
        if mark is None or mark[0] > now or (mark[2] != at and not entry.all_whole):
            entry.mark = (now, left, at, entry.spent)
            entry.all_whole = whole
        elif now - mark[0] >= _REFILL_SPAN and entry.spent - mark[3] >= _REFILL_FEWEST:
            since, before, _, spent = mark
            # Answers overtake one another by about the sends in flight: not evidence.
            slack = _REFILL_SLACK + entry.rate * entry.latency
            shown = max(left - before + entry.spent - spent - slack, 0.0) / (now - since)
            if shown >= entry.refill or now - entry.refill_heard >= _BOUND_FRESH:
                # A span the client sent less in shows less: the most shown lately holds.
                entry.refill, entry.refill_heard = shown, now
            entry.refill_last = now
            # Whole at both ends: the quota kept up with the sends, which may go faster.
            entry.kept_up = state.limit is not None and min(left, before) >= state.limit - 1
            entry.mark = (now, left, at, entry.spent)
            entry.all_whole = whole
        if now - entry.refill_last >= _BOUND_FRESH:
            entry.refill = 0.0  # nothing measured lately
        if entry.kept_up and state.limit is not None and 2 * left >= state.limit:
            return 2.0 * entry.refill  # a probe, while the quota stays well above empty
        return entry.refill

    def _maybe_pause(self, key: str, entry: _Origin, now: float, decision: Decision) -> None:
        wait = decision.retry_after or 0.0
        informative = decision.status == 503 or wait >= self._pause_after or decision.dated
        if informative:
            if now + wait > entry.paused_until:
                entry.paused_until = now + wait
                entry.calm_until = _NEVER
                self._changed(entry, now)
            if not entry.paced:
                span = max(now - entry.window_start, 0.1)
                seen = entry.window_successes + entry.previous_successes
                self._start(key, entry, now, max(seen / (span + 1.0), 1.0), measured=False)
                entry.last_429 = max(entry.last_429, now)

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < 60.0:
            return
        self._last_sweep = now
        expired = [k for k, e in self._origins.items() if now - e.last_seen > self._idle_expiry]
        for key in expired:
            entry = self._origins.pop(key)
            if entry.paced:
                self._calm(key, entry, now)
        for key in [k for k, (_, until) in self._learned.items() if until <= now]:
            del self._learned[key]
