"""The values the decision core works on: `Outcome` in, `Decision` out, `RetryState` between.

All immutable. `RetryState.next` returns a new state, so a state can be inspected, logged or
kept as history without copying, and one request's state never leaks into another's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import Enum
from typing import Any, NamedTuple

from ._retry_after import header_value

__all__ = [
    "NEVER_SENT_ERRORS",
    "Action",
    "Decision",
    "ErrorKind",
    "Outcome",
    "Reason",
    "RetryState",
]


class Action(str, Enum):
    """What the adapter does next."""

    #: Hand the response back (or re-raise the error): it is the answer.
    RETURN = "return"
    #: Wait `Decision.wait` seconds, then send the same request again.
    RETRY = "retry"
    #: Exchange the token for a fresh one, then send the same request again at once.
    REAUTH = "reauth"
    #: Retrying is still warranted but a limit says stop: hand back the last response or error.
    GIVE_UP = "give-up"


class ErrorKind(str, Enum):
    """A transport failure, classified by whether the request may have reached the server."""

    #: The connection was never established: the server saw nothing.
    CONNECT = "connect"
    #: Connecting timed out: the server saw nothing.
    CONNECT_TIMEOUT = "connect_timeout"
    #: No answer in time after sending: the server may have acted on the request.
    READ_TIMEOUT = "read_timeout"
    #: Sending timed out part-way: the server may have acted on the request.
    WRITE_TIMEOUT = "write_timeout"
    #: The connection dropped after sending: the server may have acted on the request.
    DISCONNECT = "disconnect"
    #: The server broke HTTP framing: it may have acted on the request.
    PROTOCOL = "protocol"


class Reason(str, Enum):
    """Why `decide` chose its action. The values are stable slugs, safe to log and match on."""

    #: A 1xx/2xx/3xx answer: handed back.
    SUCCESS = "success"
    #: A status no rule retries (most 4xx): handed back.
    NOT_RETRYABLE = "not-retryable"
    #: A 401 with a token source: re-exchange the token, then re-send once.
    REAUTH = "reauth"
    #: A second 401 after the re-exchange: handed back.
    REAUTH_EXHAUSTED = "reauth-exhausted"
    #: The request may have reached the server and is not idempotent: handed back.
    NOT_SAFE_TO_RETRY = "not-safe-to-retry"
    #: The body was a one-shot stream: it cannot be sent again.
    BODY_NOT_REPLAYABLE = "body-not-replayable"
    #: The server named a wait (``Retry-After``): waited in full.
    RETRY_AFTER = "retry-after"
    #: The server named its rate-limit reset (``RateLimit``, ``X-RateLimit-Reset``, ...): the
    #: header it came from is `Decision.source`.
    RATE_LIMIT_RESET = "rate-limit-reset"
    #: No wait named: exponential backoff with jitter.
    BACKOFF = "backoff"
    #: The next send would exceed `Policy.max_attempts`.
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    #: The server asked for longer than `Policy.max_wait`.
    WAIT_EXCEEDS_MAX = "wait-exceeds-max"
    #: The wait would pass `Policy.deadline`.
    DEADLINE_EXCEEDED = "deadline-exceeded"
    #: The retry budget is spent (outage protection); a 429 never spends it.
    BUDGET_EXHAUSTED = "budget-exhausted"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def description(self) -> str:
        """One line saying what the reason means (for docs and ``forbear explain``)."""
        return _REASON_TEXT[self]


_REASON_TEXT: dict[Reason, str] = {
    Reason.SUCCESS: "a 1xx/2xx/3xx answer: handed back",
    Reason.NOT_RETRYABLE: "a status no rule retries (most 4xx): handed back",
    Reason.REAUTH: "a 401 with a token source: re-exchange the token, then re-send once",
    Reason.REAUTH_EXHAUSTED: "a second 401 after the re-exchange: handed back",
    Reason.NOT_SAFE_TO_RETRY: "the request may have reached the server and is not idempotent",
    Reason.BODY_NOT_REPLAYABLE: "the body was a one-shot stream: it cannot be sent again",
    Reason.RETRY_AFTER: "the server named a wait (Retry-After): waited in full",
    Reason.RATE_LIMIT_RESET: (
        "the server named its rate-limit reset (the header is Decision.source): waited in full"
    ),
    Reason.BACKOFF: "no wait named: exponential backoff with jitter",
    Reason.ATTEMPTS_EXHAUSTED: "the next send would exceed Policy.max_attempts",
    Reason.WAIT_EXCEEDS_MAX: "the server asked for longer than Policy.max_wait",
    Reason.DEADLINE_EXCEEDED: "the wait would pass Policy.deadline",
    Reason.BUDGET_EXHAUSTED: "the retry budget is spent (outage protection)",
}


#: Error kinds after which the request certainly did not reach the server.
NEVER_SENT_ERRORS: frozenset[ErrorKind] = frozenset({ErrorKind.CONNECT, ErrorKind.CONNECT_TIMEOUT})


class Outcome(NamedTuple):
    """What one attempt produced: a response (status and headers) or a transport error."""

    #: The response status, or None for a transport error.
    status: int | None
    #: The response headers (any mapping: dict, httpx, requests or aiohttp headers).
    headers: Mapping[str, str]
    #: The transport error's kind, or None for a response.
    kind: ErrorKind | None = None

    @classmethod
    def response(cls, status: int, headers: Mapping[str, str] | Any = None) -> Outcome:
        """A response with this status and headers."""
        return cls(status, {} if headers is None else headers, None)

    @classmethod
    def error(cls, kind: ErrorKind | str) -> Outcome:
        """A transport failure of this kind (an `ErrorKind` or its value)."""
        return cls(None, {}, ErrorKind(kind))


#: What an adapter's ``outcome`` may return instead of an `Outcome`: the plain tuple of its
#: fields, ``(status, headers, kind)``. The loop reads it by position and makes an `Outcome`
#: of it only when the attempt is judged (a success never is): a plain tuple costs a third of
#: what building the `Outcome` subclass costs, on every request.
Reading = tuple[int | None, Mapping[str, str] | Any, ErrorKind | None]


class Decision(NamedTuple):
    """The core's answer for one attempt; also the record kept in `RetryState.history`."""

    #: What to do next.
    action: Action
    #: Seconds to wait before the next send (0.0 unless the action is RETRY).
    wait: float
    #: Why: a `Reason`, whose value is a short stable slug ("success", "retry-after", ...).
    reason: Reason
    #: The number of the send that was judged (1-based; re-sends after a re-exchange included).
    attempt: int
    #: The response status judged, or None for a transport error.
    status: int | None = None
    #: The transport error's kind, or None for a response.
    kind: ErrorKind | None = None
    #: The server's requested wait as read from its headers, when it named a valid one.
    retry_after: float | None = None
    #: The server's wait was an absolute time (an HTTP-date, an epoch reset): it says when the
    #: server expects traffic again, not merely "later", so the gate may pause the whole origin.
    dated: bool = False
    #: The lower-case name of the header the server's wait came from (``"retry-after"``,
    #: ``"x-ratelimit-reset"``, ``"ratelimit"``, ...), or None when it named none.
    source: str | None = None

    def describe(self) -> str:
        """One line for humans and exception notes: never contains header values."""
        what = (
            str(self.status)
            if self.status is not None
            else str(self.kind.value if self.kind else "?")
        )
        reason = str(self.reason)
        if self.reason == Reason.RATE_LIMIT_RESET and self.source:
            reason = f"{reason} from {self.source}"
        text = f"#{self.attempt} {what}: {self.action.value} ({reason})"
        if self.action is Action.RETRY:
            text += f" after {self.wait:.3f}s"
        return text


class RetryState(NamedTuple):
    """Where one logical request stands. Immutable: `next` returns the following state.

    A named tuple rather than a frozen dataclass: one is made for every request, and this is
    the cheapest immutable record Python offers. Derive a changed copy with ``_replace``.
    """

    #: The request method, upper-case.
    method: str
    #: The request carries an ``Idempotency-Key`` header, so any method may be re-sent.
    has_idempotency_key: bool
    #: A token source can re-exchange the credential on a 401.
    can_reauth: bool
    #: The body can be sent again (False for one-shot streams and generators).
    replayable: bool
    #: Monotonic time of the first send; the `Policy.deadline` counts from here.
    started: float
    #: Sends counted against `Policy.max_attempts` so far (the one being judged included).
    attempts: int = 1
    #: Token re-exchanges used so far.
    reauths: int = 0
    #: The previous wait, for decorrelated jitter.
    last_wait: float = 0.0
    #: Every decision made for this request so far, oldest first.
    history: tuple[Decision, ...] = ()

    @classmethod
    def start(
        cls,
        method: str,
        *,
        headers: Mapping[str, str] | Any,
        can_reauth: bool = False,
        replayable: bool = True,
        now: float | None = None,
    ) -> RetryState:
        """The state of a logical request about to make its first send."""
        return cls(
            method if method.isupper() else method.upper(),
            _has_key(headers),
            can_reauth,
            replayable,
            time.monotonic() if now is None else now,
        )

    @property
    def sends(self) -> int:
        """Every send made so far, re-sends after a re-exchange included."""
        return self.attempts + self.reauths

    def next(self, decision: Decision) -> RetryState:
        """The state after acting on ``decision``; RETURN and GIVE_UP only extend the history."""
        history = (*self.history, decision)
        if decision.action is Action.RETRY:
            return self._replace(
                attempts=self.attempts + 1, last_wait=decision.wait, history=history
            )
        if decision.action is Action.REAUTH:
            return self._replace(reauths=self.reauths + 1, history=history)
        return self._replace(history=history)

    def note(self) -> str:
        """The attempt history as an exception note: statuses, actions, waits; no secrets."""
        lines = "; ".join(decision.describe() for decision in self.history)
        return f"forbear: {self.method} made {self.sends} send(s): {lines}"


def _has_key(headers: Mapping[str, str] | Any) -> bool:
    """Whether ``headers`` carry a non-empty ``Idempotency-Key`` (an empty one keys nothing)."""
    value = header_value(headers, "Idempotency-Key")
    return value is not None and value.strip(" \t,") != ""
