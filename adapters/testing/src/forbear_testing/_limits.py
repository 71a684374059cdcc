"""Limiters the servers answer 429 with: `TokenBucket`, `FixedWindow`, `EpochWindow`, `InFlight`.

`bucket_headers` announces a token bucket's state in one of the rate-limit dialects
(`DIALECTS`).

They are plain objects driven by the caller's clock (``now`` is an argument), so their tests
need no sleeping; the servers pass ``time.monotonic()`` (``time.time()`` for `EpochWindow`) and
hold their own lock around them.
"""

from __future__ import annotations

import math

__all__ = [
    "DIALECTS",
    "EpochWindow",
    "FixedWindow",
    "InFlight",
    "TokenBucket",
    "bucket_headers",
    "retry_after_seconds",
]

#: The rate-limit dialects `bucket_headers` speaks.
DIALECTS = ("ietf", "draft", "x", "openai")


def retry_after_seconds(wait: float) -> int:
    """A wait as a whole ``Retry-After`` delta: rounded up, at least 1."""
    return max(1, math.ceil(wait - 1e-9))


class TokenBucket:
    """nginx ``limit_req`` with ``nodelay``: ``rate`` requests a second, ``burst`` extra at once.

    The bucket holds ``1 + burst`` tokens, starts full and refills at ``rate`` tokens a second;
    each request takes one. `take` answers 0.0 when a token was taken, else the seconds until
    one will be there (the request is refused and takes nothing).
    """

    def __init__(self, rate: float, burst: int = 0, *, now: float) -> None:
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise ValueError(f"burst must be an int >= 0, got {burst!r}")
        self.rate = float(rate)
        self.capacity = 1 + burst
        self._tokens = float(self.capacity)
        self._updated = now

    def take(self, now: float) -> float:
        """Take a token at ``now``: 0.0 if one was there, else the seconds until there is one."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def level(self, now: float) -> float:
        """The tokens the bucket holds at ``now`` (a fraction while one refills); takes none."""
        elapsed = max(0.0, now - self._updated)
        return min(float(self.capacity), self._tokens + elapsed * self.rate)

    def set_rate(self, rate: float, *, now: float) -> None:
        """From ``now`` on, refill at ``rate`` (the tokens earned until ``now`` are kept)."""
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)
        self.rate = float(rate)


def _milliseconds_up(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000.0 - 1e-6))


def _go_duration(seconds: float) -> str:
    """Seconds as a Go-style duration, rounded up to the millisecond: ``12ms``, ``1.5s``,
    ``6m0s``."""
    millis = _milliseconds_up(seconds)
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


def bucket_headers(
    dialect: str, bucket: TokenBucket, *, now: float, wall: float
) -> tuple[tuple[str, str], ...]:
    """``bucket``'s state at monotonic ``now`` (Unix time ``wall``) in a rate-limit dialect.

    What remains is the whole tokens the bucket holds. The dialects:

    - ``"ietf"``: ``RateLimit-Policy: "bucket";q=<Q>;w=<W>``, the bucket's rate as a quota per
      window (``W`` the whole seconds it takes to refill an empty bucket, at least 1, and
      ``Q`` the tokens it gains in them), and ``RateLimit: "bucket";r=<remaining>;t=<T>`` with
      ``T`` the whole seconds until a token is there, rounded up (0 while one is).
    - ``"draft"``: ``RateLimit-Limit`` (the capacity, ``1 + burst``), ``RateLimit-Remaining``
      and ``RateLimit-Reset``: delta seconds until the bucket is full again, rounded up to the
      millisecond.
    - ``"x"``: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``:
      the Unix time in whole seconds (rounded up) at which the bucket is full again (GitHub).
    - ``"openai"``: ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and
      ``x-ratelimit-reset-requests``: the time until the bucket is full again as a Go-style
      duration rounded up to the millisecond (``55ms``, ``1.5s``).
    """
    tokens = bucket.level(now)
    remaining = math.floor(tokens + 1e-9)
    capacity = bucket.capacity
    full = max(0.0, (capacity - tokens) / bucket.rate)
    if dialect == "ietf":
        window = max(1, math.ceil(capacity / bucket.rate - 1e-9))
        quota = max(1, round(bucket.rate * window))
        until = 0 if remaining >= 1 else math.ceil((1.0 - tokens) / bucket.rate - 1e-9)
        return (
            ("RateLimit-Policy", f'"bucket";q={quota};w={window}'),
            ("RateLimit", f'"bucket";r={remaining};t={until}'),
        )
    if dialect == "draft":
        reset = f"{_milliseconds_up(full) / 1000:.3f}".rstrip("0").rstrip(".")
        return (
            ("RateLimit-Limit", str(capacity)),
            ("RateLimit-Remaining", str(remaining)),
            ("RateLimit-Reset", reset),
        )
    if dialect == "x":
        return (
            ("X-RateLimit-Limit", str(capacity)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(math.ceil(wall + full - 1e-9))),
        )
    if dialect == "openai":
        return (
            ("x-ratelimit-limit-requests", str(capacity)),
            ("x-ratelimit-remaining-requests", str(remaining)),
            ("x-ratelimit-reset-requests", _go_duration(full)),
        )
    raise ValueError(f"unknown rate-limit dialect {dialect!r}; one of {', '.join(DIALECTS)}")


def check_dialect(dialect: str | None) -> None:
    """Raise ValueError unless ``dialect`` is None or one of `DIALECTS`."""
    if dialect is not None and dialect not in DIALECTS:
        raise ValueError(f"unknown rate-limit dialect {dialect!r}; one of {', '.join(DIALECTS)}")


class FixedWindow:
    """``limit`` requests per key per window of ``window`` seconds (the policy API's 100/min).

    Windows start at the key's first request. `hit` answers 0.0 when the request fits, else the
    seconds until the window resets.
    """

    def __init__(self, limit: int, window: float) -> None:
        _check_limit(limit)
        if not (isinstance(window, (int, float)) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        self.limit = limit
        self.window = float(window)
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, now: float) -> float:
        """Count a request for ``key`` at ``now``: 0.0 if allowed, else seconds to the reset."""
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.limit:
            self._windows[key] = (start, count)
            return start + self.window - now
        self._windows[key] = (start, count + 1)
        return 0.0

    def clear(self) -> None:
        """Forget every window."""
        self._windows.clear()


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")


class EpochWindow:
    """``limit`` requests per key per window of ``window`` seconds, windows aligned to Unix time.

    Every key's windows start at multiples of ``window`` since the epoch (GitHub's and many
    gateways' fixed windows), so a window's end is a wall-clock instant every client can be
    told: `hit` answers ``(allowed, remaining, reset)`` with ``reset`` the window's end in Unix
    seconds. Once a window's quota is spent every request gets refused until its end.
    """

    def __init__(self, limit: int, window: float) -> None:
        _check_limit(limit)
        if not (isinstance(window, (int, float)) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        self.limit = limit
        self.window = float(window)
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, wall: float) -> tuple[bool, int, float]:
        """Count a request for ``key`` at Unix time ``wall``: allowed, what remains, the reset."""
        index = math.floor(wall / self.window)
        current, count = self._counts.get(key, (index, 0))
        if current != index:
            count = 0
        reset = (index + 1) * self.window
        if count >= self.limit:
            self._counts[key] = (index, count)
            return False, 0, reset
        self._counts[key] = (index, count + 1)
        return True, self.limit - count - 1, reset


class InFlight:
    """At most ``limit`` requests at once: `enter` admits one (True) or refuses it (False)."""

    def __init__(self, limit: int) -> None:
        _check_limit(limit)
        self.limit = limit
        #: Requests admitted and not yet left.
        self.flying = 0

    def enter(self) -> bool:
        """Admit a request if fewer than ``limit`` are in flight."""
        if self.flying >= self.limit:
            return False
        self.flying += 1
        return True

    def leave(self) -> None:
        """An admitted request ended."""
        self.flying = max(self.flying - 1, 0)
