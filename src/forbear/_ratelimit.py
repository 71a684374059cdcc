"""Rate-limit headers in every dialect, read into typed policies and current limits.

Pure parsing: nothing here sleeps, keeps state between calls (beyond a bounded parse cache) or
raises on header input. The gate and `decide` use three functions:

- `read_limits` reads every dialect a response may carry into one `Limits`: the announced
  `QuotaPolicy` items and the current `QuotaState` items, with the tightest one's remaining
  quota, reset (seconds from now) and source header.
- `reset_wait` is the wait on a 429 (or on a response saying nothing remains) that carries no
  ``Retry-After``, with the lower-case name of the header it came from.
- `announced_rate` is the pace a server announces: the tightest request rate of several
  policies, a limit on requests in flight, and the partition it applies to.

Dialects understood:

- IETF ``RateLimit-Policy: "burst";q=100;w=60`` and ``RateLimit: "burst";r=50;t=30``
  (draft-ietf-httpapi-ratelimit-headers, RFC 9651 Lists; names may be Tokens or Strings), the
  older ``RateLimit-Policy: 100;w=60`` syntax, and the draft-07 Dictionary
  ``RateLimit: limit=100, remaining=50, reset=5``.
- The older drafts' ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset``.
- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (GitHub: reset in epoch seconds; Discord:
  epoch seconds with decimals, ``X-RateLimit-Reset-After`` in seconds, ``X-RateLimit-Bucket``),
  with ``X-RateLimit-Bucket`` or ``X-RateLimit-Resource`` as the partition.
- OpenAI's ``x-ratelimit-{limit,remaining,reset}-requests`` and the ``-tokens`` twins, with
  Go-style durations (``6m0s``, ``12ms``, ``1s``).

A reset may be delta seconds (fractions allowed), a duration, an RFC 3339 timestamp, an
HTTP-date, or a Unix time in seconds or milliseconds. Absolute times are turned into seconds
from now against the response's ``Date`` header when it is valid (``reset - Date``: the
server's clock on both sides, so skew between server and client cancels out), else against the
client's wall clock. A bare number is told apart by magnitude (see `EPOCH_SECONDS_FROM`); every
reset is clamped to ``[0, MAX_RESET]``; conflicting repeats resolve to the longest reset and
the smallest remaining quota, so a client never waits less than the server meant.
"""

from __future__ import annotations

import base64
import calendar
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple, TypeGuard

from ._retry_after import field_names, parse_http_date
from ._sf import InnerList, Item, Token, parse_dictionary, parse_list

__all__ = [
    "ABSURD_FROM",
    "EPOCH_MILLIS_FROM",
    "EPOCH_SECONDS_FROM",
    "MAX_RESET",
    "AnnouncedRate",
    "Limits",
    "QuotaPolicy",
    "QuotaState",
    "announced_rate",
    "limits_wait",
    "parse_reset",
    "read_limits",
    "refill_state",
    "reset_wait",
]

#: The longest reset reported, in seconds (32 days: longer than any calendar-month quota).
#: Anything longer is absurd and clamped here; the caller's ``max_wait`` still applies.
MAX_RESET = 32 * 86_400.0
#: A bare number at least this large is a Unix time in seconds, not a delay: 1e9 s is
#: 2001-09-09 as a date but 31.7 years as a delay, which no server means.
EPOCH_SECONDS_FROM = 1e9
#: A bare number at least this large is a Unix time in milliseconds: as seconds it would be
#: past the year 5000, as milliseconds it is after 1973-03-03.
EPOCH_MILLIS_FROM = 1e11
#: From here (the year 5138 in milliseconds) a number is no time at all: clamped to `MAX_RESET`.
ABSURD_FROM = 1e14

#: Quota units counted per request (the draft's default is ``requests``; early drafts said
#: ``request``).
REQUEST_UNITS = frozenset({"requests", "request"})
#: The quota unit that limits requests in flight rather than a rate.
CONCURRENT_REQUESTS = "concurrent-requests"


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """One quota policy a server announces: at most ``quota`` units per ``window`` seconds."""

    #: The policy's identifier (``"burst"``), or None in the older anonymous syntax.
    name: str | None
    #: The quota (``q``): units allowed per window. For ``concurrent-requests``, in flight.
    quota: int
    #: The window (``w``) in seconds, or None when the server did not state it.
    window: float | None
    #: The quota unit (``qu``), lower-cased: ``requests`` (default), ``content-bytes``,
    #: ``concurrent-requests``, or a vendor's unit such as ``tokens``.
    unit: str
    #: The partition key (``pk``, or a vendor's bucket), opaque: compare it, never read it.
    #: A Byte Sequence keeps its ``:base64:`` form. None when the server named none.
    partition: str | None


@dataclass(frozen=True, slots=True)
class QuotaState:
    """The quota currently left under one policy, and when it resets."""

    #: The policy it belongs to (``RateLimit``'s item name, an OpenAI suffix such as
    #: ``requests``), or None for the anonymous dialects.
    name: str | None
    #: Quota units left (``r``, ``*-Remaining``), or None when only a reset was sent.
    remaining: int | None
    #: Seconds from now until the quota resets, in ``[0, MAX_RESET]``; None when not sent.
    reset: float | None
    #: The partition key, as in `QuotaPolicy.partition`.
    partition: str | None
    #: The quota unit, from the policy of the same name (default ``requests``).
    unit: str
    #: The lower-case header name the reset (or, without one, the remaining) came from.
    source: str
    #: True when ``reset`` is the time until a continuously refilling quota is whole again
    #: (OpenAI's dialect) rather than the end of a window: its pace comes from its policy, not
    #: from ``remaining / reset``.
    refills: bool = False
    #: True when the server sent the reset as an absolute time (a Unix time, an RFC 3339
    #: timestamp, an HTTP-date): it names when the server expects traffic again.
    dated: bool = False
    #: The quota the state counts down from (``*-Limit``), when the dialect sends it with the
    #: state; None otherwise.
    limit: int | None = None
    #: The Unix time a dated reset names (as read against ``Date``), None for a delay: two
    #: readings naming the same one count down to the same reset. (Not compared: ``reset``
    #: says the same from now.)
    at: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Limits:
    """Everything a response says about rate limits, in every dialect it used."""

    #: The announced quota policies, in the order read (may be empty).
    policies: tuple[QuotaPolicy, ...]
    #: The current limits, in the order read (may be empty).
    states: tuple[QuotaState, ...]
    #: The tightest state's remaining quota (exhausted first, then the fewest requests left).
    remaining: int | None
    #: The tightest state's reset in seconds from now; of several exhausted ones, the latest.
    reset: float | None
    #: The lower-case header name the tightest state (or, without states, the first policy)
    #: came from.
    source: str
    #: The tightest state's reset was an absolute time (see `QuotaState.dated`).
    dated: bool = False


class AnnouncedRate(NamedTuple):
    """The pace a server announces, for the gate."""

    #: Sends per second allowed by the tightest request policy or current limit (> 0), or
    #: None when nothing announces a request rate.
    rate: float | None
    #: The most requests allowed in flight (a ``concurrent-requests`` quota), or None.
    concurrency: int | None
    #: The partition key the rate applies to, or None.
    partition: str | None
    #: True when ``rate`` is a lower bound of a continuously refilling quota's rate (read from
    #: its remaining and the time until it is whole again): a server refilling at it refills
    #: at least that fast, so the highest such bound heard lately still holds.
    bound: bool = False
    #: True when the tightest quota refills continuously at ``rate`` (a token bucket): a spent
    #: quota is a wait for the next unit at that rate, not for its reset.
    refilling: bool = False


# -- numbers, durations and times --------------------------------------------------------

_DECIMAL = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")
_COUNT = re.compile(r"[0-9]{1,15}")
_DURATION = re.compile(r"(?:[0-9]{1,15}(?:\.[0-9]{1,15})?(?:h|m|s|ms|us|µs|μs|ns)){1,8}")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|μs|ns)")
_DURATION_UNITS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
}
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


class _Clock:
    """The reference "now" for absolute resets: the ``Date`` header when valid, else ``wall``."""

    __slots__ = ("_date", "_now", "_wall")

    def __init__(self, date: str | None, wall: float | None) -> None:
        self._date = date
        self._wall = wall
        self._now: float | None = None

    def now(self) -> float:
        if self._now is None:
            when = parse_http_date(self._date, wall=self._wall) if self._date else None
            if when is None:
                when = time.time() if self._wall is None else self._wall
            self._now = when
        return self._now


#: A reset in seconds from now, and whether the server sent it as an absolute time.
_Reset = tuple[float, bool]


def _clamp(seconds: float) -> float:
    if not seconds > 0.0:  # also NaN
        return 0.0
    return seconds if seconds < MAX_RESET else MAX_RESET


def _from_number(number: float, clock: _Clock) -> _Reset:
    if number < EPOCH_SECONDS_FROM:
        return _clamp(number), False
    if number < EPOCH_MILLIS_FROM:
        return _clamp(number - clock.now()), True
    if number < ABSURD_FROM:
        return _clamp(number / 1000.0 - clock.now()), True
    return MAX_RESET, False


def _rfc3339(match: re.Match[str]) -> float | None:
    year, month, day, hour, minute, second = (int(match[n]) for n in range(1, 7))
    try:
        # A leap second (60) is read as the next second.
        stamp = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone.utc)
    except ValueError:
        return None
    if second > 60:
        return None
    epoch = float(calendar.timegm(stamp.timetuple()) + (second - min(second, 59)))
    if match[7]:
        epoch += float(match[7])
    if match[8]:
        offset_h, offset_m = int(match[9]), int(match[10])
        if offset_h > 23 or offset_m > 59:
            return None
        offset = offset_h * 3600 + offset_m * 60
        epoch += -offset if match[8] == "+" else offset
    return epoch


def _reset_one(text: str, clock: _Clock) -> _Reset | None:
    if _DECIMAL.fullmatch(text):
        return _from_number(float(text), clock)
    if _DURATION.fullmatch(text):
        total = sum(
            float(amount) * _DURATION_UNITS[unit] for amount, unit in _DURATION_PART.findall(text)
        )
        return _clamp(total), False
    match = _RFC3339.fullmatch(text)
    epoch = _rfc3339(match) if match is not None else parse_http_date(text, wall=clock.now())
    return None if epoch is None else (_clamp(epoch - clock.now()), True)


def _reset(value: str | None, clock: _Clock) -> _Reset | None:
    """A reset field's seconds from now and whether it was a time; repeats give the longest."""
    if value is None:
        return None
    text = value.strip(" \t")
    if not text or len(text) > 200:
        return None
    single = _reset_one(text, clock)
    if single is not None or "," not in text:
        return single
    longest: _Reset | None = None
    for part in text.split(","):
        found = _reset_one(part.strip(" \t"), clock)
        if found is None:
            return None
        if longest is None or found[0] > longest[0]:
            longest = found
    return longest


def parse_reset(
    value: str | None, *, date: str | None = None, wall: float | None = None
) -> float | None:
    """Seconds from now until a reset, whatever its form, or None when it is not one.

    ``value`` may be delta seconds, a Go-style duration, an RFC 3339 timestamp, an HTTP-date,
    or a bare number decided by magnitude: below `EPOCH_SECONDS_FROM` delta seconds, below
    `EPOCH_MILLIS_FROM` Unix seconds, below `ABSURD_FROM` Unix milliseconds, beyond that
    `MAX_RESET`. Absolute times count from ``date`` (the response's ``Date`` header) when it is
    a valid HTTP-date, else from ``wall`` (Unix time; default now). The result is clamped to
    ``[0, MAX_RESET]``.
    """
    if not isinstance(value, str):
        return None
    found = _reset(value, _Clock(date, wall))
    return None if found is None else found[0]


def _smallest_count(value: str | None) -> int | None:
    """A count field's value; repeats that disagree give the smallest. None if any is bad."""
    if value is None:
        return None
    smallest: int | None = None
    for part in value.split(","):
        text = part.strip(" \t")
        if not _COUNT.fullmatch(text):
            return None
        count = int(text)
        smallest = count if smallest is None else min(smallest, count)
    return smallest


# -- Structured Fields items -----------------------------------------------------------------


def _is_count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0  # not bool, which is an int too


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Token):
        return value.value
    return None


def _partition(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    if text is not None:
        return text
    if isinstance(value, bytes):
        return f":{base64.b64encode(value).decode('ascii')}:"
    if _is_count(value):
        return str(value)
    return None


def _policy_item(item: Item) -> QuotaPolicy | None:
    value, params = item
    name = _text(value)
    if name is not None:
        quota = params.get("q")
    elif _is_count(value):  # the older syntax: ``100;w=60``
        quota = value
    else:
        return None
    if not _is_count(quota):
        return None
    window: float | None = None
    w = params.get("w")
    if w is not None:
        if not _is_count(w) or w == 0:
            return None
        window = float(w)
    unit = _text(params.get("qu", "requests"))
    if not unit:
        return None
    pk = params.get("pk")
    partition = _partition(pk)
    if pk is not None and partition is None:
        return None
    return QuotaPolicy(name, quota, window, unit.lower(), partition)


#: One ``RateLimit`` item before its reset is read against the clock: name, r, t, pk.
_RawState = tuple[str | None, int, int | None, str | None]


@lru_cache(maxsize=256)
def _policy_field(value: str) -> tuple[QuotaPolicy, ...]:
    members = parse_list(value)
    if not members:
        return ()
    policies = (_policy_item(m) for m in members if not isinstance(m, InnerList))
    return tuple(p for p in policies if p is not None)


def _state_item(item: Item) -> _RawState | None:
    value, params = item
    name = _text(value)
    if name is None:
        return None
    remaining, reset, pk = params.get("r"), params.get("t"), params.get("pk")
    if not _is_count(remaining) or (reset is not None and not _is_count(reset)):
        return None
    partition = _partition(pk)
    if pk is not None and partition is None:
        return None
    return (name, remaining, reset, partition)


@lru_cache(maxsize=256)
def _state_field(value: str) -> tuple[tuple[QuotaPolicy, ...], tuple[_RawState, ...]]:
    members = parse_list(value)
    if members is not None:
        states = (_state_item(m) for m in members if not isinstance(m, InnerList))
        return (), tuple(s for s in states if s is not None)
    # Draft-07: ``RateLimit: limit=100, remaining=50, reset=5`` (a Dictionary).
    fields = parse_dictionary(value)
    if not fields:
        return (), ()
    numbers = {
        key: member.value
        for key, member in fields.items()
        if isinstance(member, Item) and _is_count(member.value)
    }
    policies: tuple[QuotaPolicy, ...] = ()
    limit = numbers.get("limit")
    if isinstance(limit, int):
        policies = (QuotaPolicy(None, limit, None, "requests", None),)
    remaining = numbers.get("remaining")
    if not isinstance(remaining, int):
        return policies, ()
    reset = numbers.get("reset")
    return policies, ((None, remaining, reset if isinstance(reset, int) else None, None),)


@lru_cache(maxsize=256)
def _limit_field(value: str) -> tuple[QuotaPolicy, ...]:
    """``RateLimit-Limit: 100`` or the early drafts' ``100, 100;w=60, 1000;w=3600``."""
    members = parse_list(value)
    if members is None:
        count = _smallest_count(value)
        return () if count is None else (QuotaPolicy(None, count, None, "requests", None),)
    policies: list[QuotaPolicy] = []
    for member in members:
        if isinstance(member, Item) and _is_count(member.value):
            policy = _policy_item(member)
            if policy is not None and policy not in policies:
                policies.append(policy)
    windowed = {p.quota for p in policies if p.window is not None}
    return tuple(p for p in policies if p.window is not None or p.quota not in windowed)


# -- reading headers -------------------------------------------------------------------------

_PREFIXES = ("ratelimit", "x-ratelimit", "anthropic-ratelimit-")
#: The first characters, in either case, of the names `_scan` keeps (`_PREFIXES` and "date").
#: No other character lowers to one of these.
_FIRSTS = frozenset("raxdRAXD")
#: The fields of the ``<prefix>limit`` / ``-remaining`` / ``-reset`` dialects, by prefix.
_TRIPLETS = {
    prefix: frozenset(prefix + suffix for suffix in ("limit", "remaining", "reset", "reset-after"))
    for prefix in ("ratelimit-", "x-ratelimit-")
}
#: Every fixed field name read or knowingly skipped: any other one may be a vendor's.
_FIXED = frozenset(
    {
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-policy",
        *_TRIPLETS["ratelimit-"],
        *_TRIPLETS["x-ratelimit-"],
        *(p + s for p in ("ratelimit-", "x-ratelimit-") for s in ("bucket", "resource", "used")),
        "x-ratelimit-scope",
        "x-ratelimit-global",
    }
)
#: OpenAI: ``x-ratelimit-<field>-<unit>``; Anthropic: ``anthropic-ratelimit-<unit>-<field>``.
_OPENAI = re.compile(r"x-ratelimit-(limit|remaining|reset)-(?!after$)([a-z0-9][a-z0-9_-]*)")
_ANTHROPIC = re.compile(r"anthropic-ratelimit-([a-z0-9][a-z0-9_-]*?)-(limit|remaining|reset)")


def _scan(headers: Mapping[str, str] | Any) -> tuple[dict[str, str], str | None] | None:
    """The rate-limit fields by lower-case name (repeats joined) and ``Date``, in one pass."""
    if not headers:
        return None
    found: dict[str, str] = {}
    date: str | None = None
    try:
        items: Iterable[tuple[Any, Any]]
        if type(headers) is dict:  # a plain dict has no multi-value API: skip probing for one
            # Its names are joined in C: one look tells when none is kept (every kept one holds
            # "ratelimit", see `_PREFIXES`). Other header types build their names in Python,
            # which costs more than the loop below saves.
            names = field_names(headers)
            if names is not None and "ratelimit" not in names:
                return None
            items = headers.items()
        else:
            multi = getattr(headers, "multi_items", None)
            items = multi() if multi is not None else headers.items()
        for key, value in items:
            # Only a name starting as a kept one can be one: any other is passed over unlowered.
            if not isinstance(key, str) or key[:1] not in _FIRSTS:
                continue
            name = key.lower()
            if name.startswith(_PREFIXES):
                if isinstance(value, str):
                    found[name] = f"{found[name]}, {value}" if name in found else value
            elif name == "date" and date is None and isinstance(value, str):
                date = value
    except Exception:  # a header object that cannot be read announces nothing
        return None
    return (found, date) if found else None


def _unit_of(policies: tuple[QuotaPolicy, ...], name: str | None, partition: str | None) -> str:
    fallback = "requests"
    for policy in policies:
        if policy.name == name and name is not None:
            if policy.partition == partition:
                return policy.unit
            fallback = policy.unit
    return fallback


def _triplet(
    fields: dict[str, str], prefix: str, clock: _Clock
) -> tuple[tuple[QuotaPolicy, ...], QuotaState | None, str | None]:
    limit_name = prefix + "limit"
    limit = fields.get(limit_name)
    policies = _limit_field(limit) if limit is not None else ()
    remaining_name = prefix + "remaining"
    remaining = _smallest_count(fields.get(remaining_name))
    # Discord's delay is explicit and free of clock skew: it wins over the absolute reset.
    reset: float | None = None
    dated = False
    source = ""
    for name in (prefix + "reset-after", prefix + "reset"):
        found_reset = _reset(fields.get(name), clock)
        if found_reset is not None:
            reset, dated = found_reset
            source = name
            break
    if remaining is None and reset is None:
        return policies, None, limit_name if policies else None
    partition = None
    for name in (prefix + "bucket", prefix + "resource"):
        text = fields.get(name)
        if text is not None and text.strip():
            partition = text.strip()
            break
    if partition is not None:
        policies = tuple(
            QuotaPolicy(p.name, p.quota, p.window, p.unit, partition) for p in policies
        )
    quotas = [p.quota for p in policies if p.unit in REQUEST_UNITS]
    state = QuotaState(
        None,
        remaining,
        reset,
        partition,
        "requests",
        source or remaining_name,
        dated=dated,
        limit=min(quotas) if quotas else None,
        at=clock.now() + reset if dated and reset is not None else None,
    )
    return policies, state, state.source


def _vendor(
    fields: dict[str, str], clock: _Clock
) -> tuple[list[QuotaPolicy], list[QuotaState], str | None]:
    """The vendors' refilling quotas, one state per unit: OpenAI's
    ``x-ratelimit-{limit,remaining,reset}-<unit>`` (resets are durations) and Anthropic's
    ``anthropic-ratelimit-<unit>-{limit,remaining,reset}`` (resets are RFC 3339 times)."""
    groups: dict[str, dict[str, str]] = {}
    for name in fields:
        match = _OPENAI.fullmatch(name)
        if match is not None:
            groups.setdefault(match[2], {})[match[1]] = name
            continue
        match = _ANTHROPIC.fullmatch(name)
        if match is not None:
            groups.setdefault(match[1], {})[match[2]] = name
    policies: list[QuotaPolicy] = []
    states: list[QuotaState] = []
    first: str | None = None
    for suffix, names in groups.items():
        unit = "requests" if suffix in REQUEST_UNITS else suffix
        limit = _smallest_count(fields.get(names.get("limit", "")))
        remaining = _smallest_count(fields.get(names.get("remaining", "")))
        found_reset = _reset(fields.get(names.get("reset", "")), clock)
        reset, dated = (None, False) if found_reset is None else found_reset
        if limit is not None:
            # The reset is the time until the whole quota is back: the quota refills at the
            # units used over it. ``remaining`` is rounded down (a unit partly back is not
            # counted), so up to one fewer unit was used than it says: (used - 1) / reset is
            # a rate the quota refills at least as fast as, and the window is limit over it.
            window = None
            used = limit - remaining if remaining is not None else 0
            if reset and 1 < used <= limit:
                window = limit * reset / (used - 1)
            policies.append(QuotaPolicy(suffix, limit, window, unit, None))
            first = first or names["limit"]
        if remaining is not None or reset is not None:
            source = names["reset"] if reset is not None else names["remaining"]
            states.append(
                QuotaState(
                    suffix,
                    remaining,
                    reset,
                    None,
                    unit,
                    source,
                    refills=True,
                    dated=dated,
                    limit=limit,
                )
            )
            first = first or source
    return policies, states, first


def _rank(state: QuotaState) -> tuple[bool, bool, bool, float, float]:
    """Sort key: the tightest state first."""
    remaining = math.inf if state.remaining is None else float(state.remaining)
    return (
        state.remaining != 0,
        state.reset is None,
        state.unit not in REQUEST_UNITS,
        remaining,
        -(state.reset or 0.0),
    )


def read_limits(headers: Mapping[str, str] | Any, *, wall: float | None = None) -> Limits | None:
    """Every rate-limit dialect in ``headers``, or None when there is none (or none valid).

    ``headers`` may be a plain dict (any case), httpx ``Headers``, requests' case-insensitive
    dict or aiohttp's multidict. ``wall`` is the client's Unix time (default now), used for
    absolute resets only when the response has no valid ``Date``. Never raises.
    """
    scanned = _scan(headers)
    if scanned is None:
        return None
    fields, date = scanned
    clock = _Clock(date, wall)
    policies: list[QuotaPolicy] = []
    states: list[QuotaState] = []
    sources: list[str] = []

    for name in ("ratelimit-policy", "x-ratelimit-policy"):
        value = fields.get(name)
        if value is not None:
            found = _policy_field(value)
            if found:
                policies.extend(found)
                sources.append(name)
    value = fields.get("ratelimit")
    if value is not None:
        extra, raw = _state_field(value)
        policies.extend(extra)
        known = tuple(policies)
        for label, remaining, t, partition in raw:
            found_reset = None if t is None else _from_number(float(t), clock)
            reset, dated = (None, False) if found_reset is None else found_reset
            unit = _unit_of(known, label, partition)
            states.append(
                QuotaState(label, remaining, reset, partition, unit, "ratelimit", dated=dated)
            )
        if extra or raw:
            sources.append("ratelimit")
    present = fields.keys()
    for prefix, names in _TRIPLETS.items():
        if not present.isdisjoint(names):
            found, state, source = _triplet(fields, prefix, clock)
            policies.extend(found)
            if state is not None:
                states.append(state)
            if source is not None:
                sources.append(source)
    if not present <= _FIXED:
        found_policies, found_states, source = _vendor(fields, clock)
        policies.extend(found_policies)
        states.extend(found_states)
        if source is not None:
            sources.append(source)

    if not states:
        if not policies:
            return None
        return Limits(tuple(policies), (), None, None, sources[0])
    tightest = min(states, key=_rank) if len(states) > 1 else states[0]
    return Limits(
        tuple(policies),
        tuple(states),
        tightest.remaining,
        tightest.reset,
        tightest.source,
        tightest.dated,
    )


def limits_wait(limits: Limits, *, status: int) -> tuple[float, str] | None:
    """`reset_wait` over limits already read: the tightest reset on a 429 or when none remain."""
    if limits.reset is None:
        return None
    if status == 429 or limits.remaining == 0:
        return limits.reset, limits.source
    return None


def reset_wait(
    headers: Mapping[str, str] | Any, *, status: int, wall: float | None = None
) -> tuple[float, str] | None:
    """Seconds to wait and the lower-case header they came from, for a response without a
    ``Retry-After``: on a 429, or on any response whose tightest limit has nothing remaining.

    None when the response names no reset (the caller backs off instead). The wait is in
    ``[0, MAX_RESET]``; of several exhausted limits the latest reset counts. Never raises.
    """
    limits = read_limits(headers, wall=wall)
    return None if limits is None else limits_wait(limits, status=status)


def announced_rate(limits: Limits) -> AnnouncedRate | None:
    """The pace ``limits`` announce, or None when they announce neither a rate nor concurrency.

    The rate is the tightest over the request-unit quotas, read the safe way (never faster
    than the server said):

    - A policy with a current state (a ``RateLimit`` item of the same name and partition)
      whose reset is ahead gives ``remaining / reset``: what is left, spent evenly until the
      reset. Its reset now (``t=0``: the quota is back) gives ``quota / window``, and so does
      a spent one whose reset is at most a second away while the policy's next unit comes
      sooner: ``t`` is whole seconds, and ``r=0;t=1`` from a bucket refilling at ``q / w``
      means "the next unit within a second", not "nothing for a second".
    - A policy without a state gives ``quota / window``.
    - A refilling vendor quota (OpenAI, Anthropic) gives its policy's rate (a lower bound,
      see `QuotaPolicy.window` there).
    - An anonymous state (``RateLimit-Remaining`` / ``-Reset``, ``X-RateLimit-*``) gives
      ``remaining / reset``; when its reset is a delay under a second and its limit is known,
      it is a bucket's time until whole again, and the rate is the lower of that and the
      bucket's refill, ``(limit - remaining - 1) / reset`` (``remaining`` is rounded down, so
      up to one unit fewer was used than it says): near a full bucket what is left says
      nothing about the pace after it is spent.

    ``concurrent-requests`` policies give the in-flight limit instead; other units
    (``content-bytes``, ``tokens``) say nothing about a request rate and are left out. A
    quota with nothing remaining is a wait (see `reset_wait`), not a rate, unless it refills
    at a known rate: then it paces at that rate and `AnnouncedRate.refilling` is set.
    """
    rate: float | None = None
    partition: str | None = None
    concurrency: int | None = None
    bound = False
    spent_refill = spent_wait = False
    paced: set[int] = set()  # states that stood in for their policy's quota / window

    def offer(candidate: float | None, part: str | None, lower: bool) -> None:
        nonlocal rate, partition, bound
        if candidate is not None and candidate > 0.0 and (rate is None or candidate < rate):
            rate, partition, bound = candidate, part, lower

    for policy in limits.policies:
        if policy.unit == CONCURRENT_REQUESTS:
            if policy.quota > 0 and (concurrency is None or policy.quota < concurrency):
                concurrency = policy.quota
            continue
        if policy.unit not in REQUEST_UNITS:
            continue
        if policy.window is None or any(s.refills and s.name == policy.name for s in limits.states):
            continue  # no window, or a vendor's refilling quota: read with the states below
        state = _state_of(limits.states, policy)
        sustained = policy.quota / policy.window if policy.quota > 0 and policy.window else None
        if state is None:
            offer(sustained, policy.partition, False)
            continue
        paced.add(id(state))
        left, until = state.remaining or 0, state.reset or 0.0
        if left and until:
            offer(left / until, policy.partition, False)
        elif left:
            offer(sustained, policy.partition, False)  # the quota is back now
        elif sustained is not None and until <= 1.0 and 1.0 / sustained < until:
            spent_refill = True
            offer(sustained, policy.partition, False)
        else:
            spent_wait = True
    for state in limits.states:
        if id(state) in paced or state.unit not in REQUEST_UNITS:
            continue
        remaining, reset = state.remaining, state.reset
        if state.refills:
            if remaining == 0:
                window = _window_of(limits.policies, state)
                if window is None:
                    spent_wait = True
                else:
                    spent_refill = True
            for policy in limits.policies:
                mine = policy.name == state.name and policy.partition == state.partition
                if mine and policy.quota > 0 and policy.window:
                    offer(policy.quota / policy.window, state.partition, True)
            continue
        if remaining is None or not reset:
            continue
        limit = state.limit
        # Discord's ``Reset-After`` counts down a window; a bare sub-second delay is a bucket's.
        bucket = not state.dated and not state.source.endswith("-after")
        if limit is not None and reset < 1.0 and bucket and limit > remaining:
            refill = (limit - remaining - 1) / reset
            if remaining == 0:
                spent_wait = True  # a window may end there: wait for it
                offer(refill, state.partition, True)
            else:
                offer(min(remaining / reset, refill), state.partition, True)
        elif remaining:
            offer(remaining / reset, state.partition, False)
        else:
            spent_wait = True
    if rate is None and concurrency is None:
        return None
    return AnnouncedRate(rate, concurrency, partition, bound, spent_refill and not spent_wait)


def refill_state(limits: Limits) -> QuotaState | None:
    """The state whose refill the gate may learn from successive readings, or None: the
    tightest state, when it counts requests down to a dated reset (an absolute time, so two
    readings can tell whether they name the same reset) and is no vendor's refilling quota."""
    states = limits.states
    if not states:
        return None
    state = min(states, key=_rank) if len(states) > 1 else states[0]
    if (
        state.at is None
        or state.remaining is None
        or state.refills
        or state.unit not in REQUEST_UNITS
    ):
        return None
    return state


def _window_of(policies: tuple[QuotaPolicy, ...], state: QuotaState) -> float | None:
    for policy in policies:
        if policy.name == state.name and policy.partition == state.partition:
            return policy.window
    return None


def _state_of(states: tuple[QuotaState, ...], policy: QuotaPolicy) -> QuotaState | None:
    """The window state of a policy (same name, or both anonymous, and same partition)."""
    for state in states:
        if (
            state.name == policy.name
            and state.partition == policy.partition
            and state.reset is not None
            and state.remaining is not None
            and not state.refills
        ):
            return state
    return None
