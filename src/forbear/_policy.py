"""Configuration: the named defaults, `Backoff` and `Policy`.

Everything here is frozen and validated at construction, so one `Policy` can be shared by any
number of threads and tasks. Only configuration raises (`ValueError` naming the field); the
decisions made with a policy never do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_REAUTHS",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_RETRY_AFTER_JITTER",
    "DEFAULT_RETRY_STATUSES",
    "IDEMPOTENT_METHODS",
    "Backoff",
    "Jitter",
    "Policy",
]

#: Statuses retried by default: RFC 6585's 429 and the transient 5xx family named by every seed.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})

#: RFC 9110 section 9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Sends counted against the cap, the first included (seed 001: "Give up after 5 attempts").
DEFAULT_MAX_ATTEMPTS = 5

#: Token re-exchanges per logical request (seed 004: "re-exchanging a token on a 401 and
#: retrying once").
DEFAULT_MAX_REAUTHS = 1

#: Longest wait forbear will sleep; a server asking for more gets a prompt answer instead.
DEFAULT_MAX_WAIT = 60.0

#: Retry-After is a floor; jitter may add at most this fraction of it (capped at one second).
DEFAULT_RETRY_AFTER_JITTER = 0.1


class Jitter(str, Enum):
    """How randomness is applied to the exponential backoff schedule."""

    #: A uniform draw in ``[0, base]``: the best spread, the default.
    FULL = "full"
    #: Half the base plus a uniform draw in ``[0, base / 2]``: never shorter than half.
    EQUAL = "equal"
    #: A uniform draw in ``[initial, 3 * previous wait]``, capped: spreads without a schedule.
    DECORRELATED = "decorrelated"
    #: The exact schedule ``initial * multiplier ** (n - 1)``, capped at ``max``.
    NONE = "none"


def _check_number(name: str, value: float, *, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """The wait when the server names none: ``initial * multiplier ** (n - 1)``, capped.

    ``n`` is the number of the attempt that just failed, so the first retry waits about
    ``initial``. ``jitter`` is a `Jitter` or its value (``"full"``, ``"equal"``,
    ``"decorrelated"``, ``"none"``).
    """

    initial: float = 0.25
    multiplier: float = 2.0
    max: float = 10.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        _check_number("Backoff.initial", self.initial)
        _check_number("Backoff.multiplier", self.multiplier, minimum=1.0)
        _check_number("Backoff.max", self.max)
        if self.max < self.initial:
            raise ValueError(
                f"Backoff.max ({self.max}) must be >= Backoff.initial ({self.initial})"
            )
        try:
            jitter = Jitter(self.jitter)
        except ValueError:
            choices = ", ".join(repr(j.value) for j in Jitter)
            raise ValueError(
                f"Backoff.jitter must be one of {choices}, got {self.jitter!r}"
            ) from None
        object.__setattr__(self, "jitter", jitter)
        # Past this exponent the schedule is pinned at `max`: computing it would only overflow.
        object.__setattr__(self, "_cap_exponent", _cap_exponent(self))

    _cap_exponent: int = field(init=False, repr=False, compare=False, default=0)

    def base(self, failed_attempt: int) -> float:
        """The un-jittered wait after attempt number ``failed_attempt`` (1-based) failed."""
        exponent = max(failed_attempt - 1, 0)
        if self.initial <= 0.0 or self.multiplier == 1.0:
            return self.initial
        if exponent >= self._cap_exponent:
            return self.max
        return min(self.max, self.initial * self.multiplier**exponent)


def _cap_exponent(backoff: Backoff) -> int:
    if backoff.initial <= 0.0 or backoff.multiplier <= 1.0:
        return 1 << 62  # the schedule never grows, so it never reaches the cap
    # Logs of each bound, not of their ratio: max / initial overflows for a tiny initial.
    ratio = math.log(backoff.max) - math.log(backoff.initial)
    return max(0, math.ceil(ratio / math.log(backoff.multiplier)))


def _status_set(name: str, statuses: Iterable[int]) -> frozenset[int]:
    result = frozenset(statuses)
    for status in result:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"{name} must hold HTTP status codes (100-599), got {status!r}")
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What to retry, how often and how long to wait. Frozen: share it freely.

    ``max_attempts`` counts sends, the first included; re-sends after a token re-exchange do not
    count, so a logical request makes at most ``max_attempts + max_reauths`` sends.
    ``max_wait`` bounds any single wait: a server asking for longer is answered by giving up.
    ``deadline``, when set, bounds the whole logical request in seconds from its first send.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    idempotent_methods: frozenset[str] = IDEMPOTENT_METHODS
    backoff: Backoff = field(default_factory=Backoff)
    max_wait: float = DEFAULT_MAX_WAIT
    deadline: float | None = None
    max_reauths: int = DEFAULT_MAX_REAUTHS
    retry_after_jitter: float = DEFAULT_RETRY_AFTER_JITTER
    #: Read ``RateLimit-Reset``, ``X-RateLimit-Reset`` and ``RateLimit: ...;t=`` when a 429 (or
    #: a response saying nothing remains) carries no ``Retry-After``.
    rate_limit_headers: bool = True

    def __post_init__(self) -> None:
        for name in ("max_attempts", "max_reauths"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Policy.{name} must be an int >= 0, got {value!r}")
        if self.max_attempts < 1:
            raise ValueError(f"Policy.max_attempts must be >= 1, got {self.max_attempts!r}")
        if not isinstance(self.backoff, Backoff):
            raise ValueError(f"Policy.backoff must be a Backoff, got {self.backoff!r}")
        _check_number("Policy.max_wait", self.max_wait)
        if self.deadline is not None:
            _check_number("Policy.deadline", self.deadline)
        _check_number("Policy.retry_after_jitter", self.retry_after_jitter)
        if self.retry_after_jitter > 1.0:
            raise ValueError(
                f"Policy.retry_after_jitter must be <= 1.0, got {self.retry_after_jitter!r}"
            )
        if isinstance(self.retry_statuses, (str, bytes)):
            raise ValueError("Policy.retry_statuses must be a collection of ints")
        object.__setattr__(
            self, "retry_statuses", _status_set("Policy.retry_statuses", self.retry_statuses)
        )
        if isinstance(self.idempotent_methods, str):
            raise ValueError("Policy.idempotent_methods must be a collection of method names")
        methods = frozenset(str(method).upper() for method in self.idempotent_methods)
        object.__setattr__(self, "idempotent_methods", methods)
