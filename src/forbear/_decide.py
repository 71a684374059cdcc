"""`decide`: the pure function at the heart of forbear.

Given a policy, the state of one logical request and what its latest attempt produced, it says
what to do next. It reads no clock and draws no random number of its own when ``now``, ``wall``
and ``rng`` are given, it never sleeps and it never raises on anything a server sends. The rules
are applied in the order DESIGN.md gives them; each outcome names its rule in a stable slug.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Final

from ._policy import Jitter, Policy
from ._ratelimit import limits_wait, read_limits
from ._retry_after import field_names, header_value, parse_retry_after, retry_after_is_date
from ._state import NEVER_SENT_ERRORS, Action, Decision, Outcome, Reason, RetryState

__all__ = ["REASONS", "decide"]

#: Every reason `decide` can give, by slug, with its meaning. Docs and tests read this table.
REASONS: Final[dict[str, str]] = {reason.value: reason.description for reason in Reason}

#: Most jitter ever added on top of a server-named wait, in seconds.
_MAX_RETRY_AFTER_JITTER = 1.0
#: Decorrelated jitter grows the previous wait by up to this factor.
_DECORRELATED_GROWTH = 3.0

_module_rng = random.Random()

#: The members read on every decision, read once: on Python 3.11 each ``Enum.MEMBER`` read is
#: a descriptor call (~70 ns), and a decision makes several.
_RETURN: Final = Action.RETURN
_RETRY: Final = Action.RETRY
_SUCCESS: Final = Reason.SUCCESS
_FULL: Final = Jitter.FULL
_EQUAL: Final = Jitter.EQUAL
_DECORRELATED: Final = Jitter.DECORRELATED


#: A `Decision` from all nine of its fields, in order, as one tuple: the named tuple's generated
#: ``__new__`` is a Python frame of its own, a third of what building a decision costs.
_new_decision: Callable[[type[Decision], tuple[Any, ...]], Decision] = tuple.__new__


def decide(
    policy: Policy,
    state: RetryState,
    outcome: Outcome,
    *,
    now: float | None = None,
    wall: float | None = None,
    rng: random.Random | None = None,
    admit: Callable[[], bool] | None = None,
) -> Decision:
    """What to do after ``outcome``: RETURN, RETRY (after ``wait``), REAUTH or GIVE_UP.

    ``now`` is monotonic time (for the deadline), ``wall`` Unix time (for HTTP-dates) and
    ``rng`` the source of jitter; each defaults to the real thing when omitted. ``admit`` is
    the retry budget's admission: called once for a retry the other rules allow, except after
    a 429 (a rate limit is paced by the gate, not refused by the budget); False gives up.
    """
    status = outcome.status
    attempt = state.sends
    if outcome.kind is None:
        if status is None or status < 400:
            return _new_decision(
                Decision, (_RETURN, 0.0, _SUCCESS, attempt, status, None, None, False, None)
            )
        if status == 401 and state.can_reauth:
            if state.reauths >= policy.max_reauths:
                return Decision(Action.RETURN, 0.0, Reason.REAUTH_EXHAUSTED, attempt, status)
            # A re-exchange means a re-send: a one-shot body would go out empty.
            if not state.replayable:
                return Decision(Action.RETURN, 0.0, Reason.BODY_NOT_REPLAYABLE, attempt, status)
            return Decision(Action.REAUTH, 0.0, Reason.REAUTH, attempt, status)
        if status not in policy.retry_statuses:
            return Decision(Action.RETURN, 0.0, Reason.NOT_RETRYABLE, attempt, status)
    return _retry(policy, state, outcome, attempt, now, wall, rng, admit)


def _retry(
    policy: Policy,
    state: RetryState,
    outcome: Outcome,
    attempt: int,
    now: float | None,
    wall: float | None,
    rng: random.Random | None,
    admit: Callable[[], bool] | None,
) -> Decision:
    status, kind = outcome.status, outcome.kind
    if not state.replayable:
        return Decision(Action.RETURN, 0.0, Reason.BODY_NOT_REPLAYABLE, attempt, status, kind)
    safe = (
        status == 429
        or kind in NEVER_SENT_ERRORS
        or state.method in policy.idempotent_methods
        or state.has_idempotency_key
    )
    if not safe:
        return Decision(Action.RETURN, 0.0, Reason.NOT_SAFE_TO_RETRY, attempt, status, kind)

    server_wait, reason, dated, source = _server_wait(policy, outcome, wall)
    if state.attempts >= policy.max_attempts:
        return _give_up(Reason.ATTEMPTS_EXHAUSTED, attempt, outcome, server_wait, dated, source)
    rng = _module_rng if rng is None else rng
    if server_wait is not None:
        if server_wait > policy.max_wait:
            return _give_up(Reason.WAIT_EXCEEDS_MAX, attempt, outcome, server_wait, dated, source)
        # A floor, never shortened: jitter only adds, so released clients spread out a little.
        extra = min(server_wait * policy.retry_after_jitter, _MAX_RETRY_AFTER_JITTER)
        wait = min(server_wait + extra * rng.random(), max(policy.max_wait, server_wait))
    else:
        wait = min(_backoff(policy, state, rng), policy.max_wait)
    if policy.deadline is not None:
        elapsed = (time.monotonic() if now is None else now) - state.started
        if elapsed + wait > policy.deadline:
            return _give_up(Reason.DEADLINE_EXCEEDED, attempt, outcome, server_wait, dated, source)
    # The budget is asked last, so a retry refused by another rule never spends it.
    if admit is not None and status != 429 and not admit():
        return _give_up(Reason.BUDGET_EXHAUSTED, attempt, outcome, server_wait, dated, source)
    return _new_decision(
        Decision, (_RETRY, wait, reason, attempt, status, kind, server_wait, dated, source)
    )


def _give_up(
    reason: Reason,
    attempt: int,
    outcome: Outcome,
    server_wait: float | None,
    dated: bool,
    source: str | None,
) -> Decision:
    return Decision(
        Action.GIVE_UP,
        0.0,
        reason,
        attempt,
        outcome.status,
        outcome.kind,
        server_wait,
        dated,
        source,
    )


_NO_WAIT: Final = (None, Reason.BACKOFF, False, None)


def _server_wait(
    policy: Policy, outcome: Outcome, wall: float | None
) -> tuple[float | None, Reason, bool, str | None]:
    """The wait the server named, the reason, whether it was a time, and the header it was in.

    ``Retry-After`` first; without a valid one, the reset of an exhausted rate limit in any
    dialect `read_limits` knows (on a 429, or when the tightest limit has nothing remaining).
    """
    status = outcome.status
    if status is None:
        return _NO_WAIT
    headers = outcome.headers
    if not headers:
        return _NO_WAIT
    # A plain dict: the header as it is usually spelled, read straight; otherwise one look at
    # every name (`field_names`, joined in C for a dict) before reading any, since most answers
    # carry neither kind of header. Other header types are read as they are.
    names = None
    if type(headers) is dict:
        value = headers.get("Retry-After")
        if not isinstance(value, str):  # (a value of another type is no value)
            value = None
            names = field_names(headers)
            if names is None or "retry-after" in names:  # (in another case: looked up again)
                value = header_value(headers, "Retry-After", names)
    else:
        value = header_value(headers, "Retry-After")
    if value is not None:
        wait = parse_retry_after(value, wall=wall)
        if wait is not None:
            return wait, Reason.RETRY_AFTER, retry_after_is_date(value), "retry-after"
    if policy.rate_limit_headers and (names is None or "ratelimit" in names):
        limits = read_limits(headers, wall=wall)
        if limits is not None:
            found = limits_wait(limits, status=status)
            if found is not None:
                return found[0], Reason.RATE_LIMIT_RESET, limits.dated, found[1]
    return _NO_WAIT


def _backoff(policy: Policy, state: RetryState, rng: random.Random) -> float:
    backoff = policy.backoff
    base = backoff.base(state.attempts)
    jitter = backoff.jitter
    # ``random() * x`` is what ``uniform(0.0, x)`` computes, without its extra call.
    if jitter is _FULL:
        return rng.random() * base
    if jitter is _EQUAL:
        return base / 2 + rng.random() * (base / 2)
    if jitter is _DECORRELATED:
        previous = max(state.last_wait, backoff.initial)
        return min(backoff.max, rng.uniform(backoff.initial, previous * _DECORRELATED_GROWTH))
    return base
