"""`decide`: the pure function at the heart of forbear.

Given a policy, the state of one logical request and what its latest attempt produced, it says
what to do next. It reads no clock and draws no random number of its own when ``now``, ``wall``
and ``rng`` are given, it never sleeps and it never raises on anything a server sends. The rules
are applied in the order DESIGN.md gives them; each outcome names its rule in a stable slug.
"""

from __future__ import annotations

import random
import time
from typing import Final

from ._policy import Jitter, Policy
from ._retry_after import parse_retry_after, reset_from_fields, wait_fields
from ._state import NEVER_SENT_ERRORS, Action, Decision, Outcome, RetryState

__all__ = ["REASONS", "decide"]

#: Every reason slug `decide` can give, with its meaning. Docs and tests read this table.
REASONS: Final[dict[str, str]] = {
    "success": "a 1xx/2xx/3xx answer: handed back",
    "not-retryable": "a status no rule retries (most 4xx): handed back",
    "reauth": "a 401 with a token source: re-exchange the token, then re-send once",
    "reauth-exhausted": "a second 401 after the re-exchange: handed back",
    "not-safe-to-retry": "the request may have reached the server and is not idempotent",
    "body-not-replayable": "the body was a one-shot stream: it cannot be sent again",
    "retry-after": "the server named a wait (Retry-After): waited in full",
    "rate-limit-reset": "the server named its rate-limit reset: waited in full",
    "backoff": "no wait named: exponential backoff with jitter",
    "attempts-exhausted": "the next send would exceed Policy.max_attempts",
    "wait-exceeds-max": "the server asked for longer than Policy.max_wait",
    "deadline-exceeded": "the wait would pass Policy.deadline",
    "budget-exhausted": "the retry budget is spent (outage protection)",
}

#: Most jitter ever added on top of a server-named wait, in seconds.
_MAX_RETRY_AFTER_JITTER = 1.0
#: Decorrelated jitter grows the previous wait by up to this factor.
_DECORRELATED_GROWTH = 3.0

_module_rng = random.Random()


def decide(
    policy: Policy,
    state: RetryState,
    outcome: Outcome,
    *,
    now: float | None = None,
    wall: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """What to do after ``outcome``: RETURN, RETRY (after ``wait``), REAUTH or GIVE_UP.

    ``now`` is monotonic time (for the deadline), ``wall`` Unix time (for HTTP-dates) and
    ``rng`` the source of jitter; each defaults to the real thing when omitted.
    """
    status = outcome.status
    attempt = state.sends
    if outcome.kind is None:
        if status is None or status < 400:
            return Decision(Action.RETURN, 0.0, "success", attempt, status)
        if status == 401 and state.can_reauth:
            if state.reauths >= policy.max_reauths:
                return Decision(Action.RETURN, 0.0, "reauth-exhausted", attempt, status)
            # A re-exchange means a re-send: a one-shot body would go out empty.
            if not state.replayable:
                return Decision(Action.RETURN, 0.0, "body-not-replayable", attempt, status)
            return Decision(Action.REAUTH, 0.0, "reauth", attempt, status)
        if status not in policy.retry_statuses:
            return Decision(Action.RETURN, 0.0, "not-retryable", attempt, status)
    return _retry(policy, state, outcome, attempt, now, wall, rng)


def _retry(
    policy: Policy,
    state: RetryState,
    outcome: Outcome,
    attempt: int,
    now: float | None,
    wall: float | None,
    rng: random.Random | None,
) -> Decision:
    status, kind = outcome.status, outcome.kind
    if not state.replayable:
        return Decision(Action.RETURN, 0.0, "body-not-replayable", attempt, status, kind)
    safe = (
        status == 429
        or kind in NEVER_SENT_ERRORS
        or state.method in policy.idempotent_methods
        or state.has_idempotency_key
    )
    if not safe:
        return Decision(Action.RETURN, 0.0, "not-safe-to-retry", attempt, status, kind)

    server_wait, reason = _server_wait(policy, outcome, wall)
    if state.attempts >= policy.max_attempts:
        return _give_up("attempts-exhausted", attempt, outcome, server_wait)
    rng = _module_rng if rng is None else rng
    if server_wait is not None:
        if server_wait > policy.max_wait:
            return _give_up("wait-exceeds-max", attempt, outcome, server_wait)
        # A floor, never shortened: jitter only adds, so released clients spread out a little.
        extra = min(server_wait * policy.retry_after_jitter, _MAX_RETRY_AFTER_JITTER)
        wait = min(server_wait + extra * rng.random(), max(policy.max_wait, server_wait))
    else:
        reason = "backoff"
        wait = min(_backoff(policy, state, rng), policy.max_wait)
    if policy.deadline is not None:
        elapsed = (time.monotonic() if now is None else now) - state.started
        if elapsed + wait > policy.deadline:
            return _give_up("deadline-exceeded", attempt, outcome, server_wait)
    return Decision(Action.RETRY, wait, reason, attempt, status, kind, server_wait)


def _give_up(reason: str, attempt: int, outcome: Outcome, server_wait: float | None) -> Decision:
    return Decision(Action.GIVE_UP, 0.0, reason, attempt, outcome.status, outcome.kind, server_wait)


def _server_wait(policy: Policy, outcome: Outcome, wall: float | None) -> tuple[float | None, str]:
    if outcome.status is None:
        return None, "backoff"
    fields = wait_fields(outcome.headers)
    if not fields:
        return None, "backoff"
    value = fields.get("retry-after")
    if value is not None:
        wait = parse_retry_after(value, wall=wall)
        if wait is not None:
            return wait, "retry-after"
    if policy.rate_limit_headers:
        wait = reset_from_fields(fields, status=outcome.status, wall=wall)
        if wait is not None:
            return wait, "rate-limit-reset"
    return None, "backoff"


def _backoff(policy: Policy, state: RetryState, rng: random.Random) -> float:
    backoff = policy.backoff
    base = backoff.base(state.attempts)
    jitter = backoff.jitter
    # ``random() * x`` is what ``uniform(0.0, x)`` computes, without its extra call.
    if jitter is Jitter.FULL:
        return rng.random() * base
    if jitter is Jitter.EQUAL:
        return base / 2 + rng.random() * (base / 2)
    if jitter is Jitter.DECORRELATED:
        previous = max(state.last_wait, backoff.initial)
        return min(backoff.max, rng.uniform(backoff.initial, previous * _DECORRELATED_GROWTH))
    return base
