"""`forbear explain`: what forbear would do with one response, in words a user understands.

Pure text in, text out: the command-line front end lives in `forbear.__main__`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

from . import profiles
from ._decide import decide
from ._policy import Policy
from ._retry_after import header_value
from ._state import Action, Decision, ErrorKind, Outcome, RetryState

__all__ = ["PROFILES", "explain", "parse_header_args"]

#: The policies `--profile` can name.
PROFILES: dict[str, Policy] = {
    "default": Policy(),
    "partner_api": profiles.partner_api,
    "policy_api": profiles.policy_api,
    "sarucci": profiles.sarucci,
}


def parse_header_args(pairs: Sequence[str]) -> dict[str, str]:
    """``["Name: value", ...]`` as a dict; raises ValueError naming a malformed entry."""
    headers: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"a header must look like 'Name: value', got {pair!r}")
        headers[name.strip()] = value.strip()
    return headers


def explain(
    status_or_error: str,
    *,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    attempt: int = 1,
    profile: str = "default",
    can_reauth: bool = False,
    reauths: int = 0,
    wall: float | None = None,
) -> tuple[Decision, str]:
    """The decision for ``status_or_error`` (a status code or an error kind) and its wording.

    The wait shown is the floor: jitter (which only ever adds to a server's wait) is left out.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    policy = PROFILES[profile]
    if attempt < 1:
        raise ValueError(f"--attempt must be >= 1, got {attempt}")
    headers = dict(headers or {})
    if status_or_error.isascii() and status_or_error.isdigit():
        outcome = Outcome.response(int(status_or_error), headers)
    else:
        kinds = ", ".join(kind.value for kind in ErrorKind)
        try:
            outcome = Outcome.error(status_or_error)
        except ValueError:
            raise ValueError(f"expected a status code or one of {kinds}") from None
    state = RetryState.start(method, headers=headers, can_reauth=can_reauth, now=0.0)
    state = state._replace(attempts=attempt, reauths=reauths)
    # A fixed seed and zero Retry-After jitter: the words name the floor, the same every run.
    exact = replace(policy, retry_after_jitter=0.0)
    decision = decide(exact, state, outcome, now=0.0, wall=wall, rng=random.Random(0))
    return decision, _words(decision, policy, outcome, method.upper())


def _words(decision: Decision, policy: Policy, outcome: Outcome, method: str) -> str:
    of = f"(attempt {decision.attempt} of {policy.max_attempts})"
    retry_after = header_value(outcome.headers, "Retry-After")
    action = decision.action
    reason = decision.reason
    if action is Action.RETRY:
        if reason == "retry-after":
            why = f"the server asked for Retry-After: {retry_after}"
        elif reason == "rate-limit-reset":
            why = "the server's rate-limit window resets then"
        else:
            jitter = policy.backoff.jitter.value
            why = f"exponential backoff ({jitter} jitter) since the server named no wait"
        return f"RETRY in {decision.wait:.1f} s: {why} {of}"
    if action is Action.REAUTH:
        return "REAUTH: exchange the token for a fresh one, then send again at once (only once)"
    texts = {
        "success": "RETURN: a success; handed back as it is",
        "not-retryable": f"RETURN: {decision.status} is not retried; fix the request instead",
        "reauth-exhausted": "RETURN: a second 401 after re-exchanging the token; handed back",
        "not-safe-to-retry": (
            f"RETURN: {method} is not idempotent and may have reached the server; "
            "send an Idempotency-Key to make it safe to retry"
        ),
        "body-not-replayable": "RETURN: the body was a one-shot stream and cannot be re-sent",
        "attempts-exhausted": f"GIVE UP: no attempts left {of}",
        "wait-exceeds-max": (
            f"GIVE UP: the server asked for {decision.retry_after:.0f} s, more than "
            f"max_wait ({policy.max_wait:g} s); answering now beats hanging"
            if decision.retry_after is not None
            else "GIVE UP: the wait exceeds max_wait"
        ),
        "deadline-exceeded": "GIVE UP: the wait would pass the deadline",
    }
    return texts.get(reason, f"{action.value.upper()}: {reason}")
