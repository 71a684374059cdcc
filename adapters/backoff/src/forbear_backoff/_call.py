"""`CallState`: one call of a decorated function, attempt by attempt, on forbear's driver.

Each call of a decorated function is one logical request. Its `forbear.RetryCall` starts with
the first attempt, because only the response or exception tells which request the function
made (method, URL, headers). Everything backoff asks for during that call (the predicate,
``giveup``, the wait generator, the handlers) is answered from here, from one decision per
attempt. No retry rule lives here: the core decides, this only carries the decision.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from forbear import Action, Decision, Policy, Retrier, RetryCall

from ._clients import Attempt, arelease, read_exception, read_response, release

__all__ = ["DECISION_KEY", "CallState", "checked_method", "checked_retrier"]

#: The key of the core's `Decision` in the details dict backoff hands to handlers.
DECISION_KEY = "decision"

_ADDS_HEADERS = (
    "forbear-backoff cannot add headers to the requests your function makes, so its Retrier "
    "must have no {what}; use forbear-httpx, forbear-requests or forbear-aiohttp for that"
)


class CallState:
    """What forbear knows of one call of a decorated function."""

    __slots__ = ("_method", "_policy", "_retrier", "call", "decision", "discard")

    def __init__(self, retrier: Retrier, policy: Policy | None, method: str) -> None:
        self._retrier = retrier
        self._policy = policy
        self._method = method
        #: The driver of this logical request, from its first judged attempt on.
        self.call: RetryCall | None = None
        #: The decision on the latest attempt (None when it was nothing forbear can read).
        self.decision: Decision | None = None
        #: The response of a retried attempt, released before the next one.
        self.discard: Any = None

    def judge(self, attempt: Attempt) -> Decision:
        """The core's decision on ``attempt``, recorded in this request's history."""
        call = self.call
        if call is None:
            headers = {} if attempt.request_headers is None else attempt.request_headers
            method = attempt.method or self._method
            call = self.call = self._retrier.begin(
                method, attempt.url, headers, policy=self._policy
            )
        outcome = attempt.outcome
        if outcome.kind is None:
            assert outcome.status is not None
            decision = call.on_response(outcome.status, outcome.headers)
        else:
            decision = call.on_error(outcome.kind)
        self.decision = decision
        self.discard = attempt.response if decision.action is Action.RETRY else None
        return decision

    def wait(self) -> float:
        """Seconds before the next attempt: the decision's wait, longer while the gate holds."""
        decision, call = self.decision, self.call
        assert decision is not None and call is not None
        return max(decision.wait, call.gate_delay())

    def annotate(self, exc: BaseException) -> None:
        """Add the attempt history to an exception that ends the request, when there is one."""
        if self.call is not None:
            self.call.annotate(exc)

    # -- what backoff calls ------------------------------------------------------------------

    def retry_response(self, value: Any) -> bool:
        """backoff's predicate: True to retry or give up, False to hand ``value`` back."""
        attempt = read_response(value)
        if attempt is None:
            self.decision = None  # not a response forbear can read: it is the answer
            return False
        return self.judge(attempt).action is not Action.RETURN

    def giveup(self, exc: BaseException) -> bool:
        """backoff's ``giveup``: False only when the core says RETRY."""
        attempt = read_exception(exc)
        if attempt is None:
            self.decision = None  # an exception forbear cannot read is never retried
        elif self.judge(attempt).action is Action.RETRY:
            return False
        self.annotate(exc)
        return True

    def waits(self) -> Generator[float, Any, None]:
        """backoff's wait generator: each RETRY's wait; it ends on GIVE_UP (backoff gives up)."""
        yield 0.0  # backoff primes the generator with send(None) and ignores this value
        while self.decision is not None and self.decision.action is Action.RETRY:
            yield self.wait()

    # -- handlers ----------------------------------------------------------------------------

    def show_decision(self, details: Any) -> None:
        """Put this attempt's decision into the details every later handler receives."""
        details[DECISION_KEY] = self.decision

    @staticmethod
    def show_no_decision(details: Any) -> None:
        """The function returned without raising: ``on_exception`` judged nothing."""
        details[DECISION_KEY] = None

    def release_discarded(self, details: Any) -> None:
        """Release the retried response, after the user's ``on_backoff`` handlers saw it."""
        response, self.discard = self.discard, None
        release(response)

    async def arelease_discarded(self, details: Any) -> None:
        """The async twin of `release_discarded`."""
        response, self.discard = self.discard, None
        await arelease(response)


def checked_retrier(policy: Policy | None, retrier: Retrier | None) -> Retrier:
    """The `Retrier` to run on: the caller's (checked) or a new one with ``policy``."""
    if policy is not None and not isinstance(policy, Policy):
        raise TypeError(f"policy must be a forbear.Policy, got {type(policy).__name__}")
    if retrier is None:
        return Retrier(policy=policy)
    if not isinstance(retrier, Retrier):
        raise TypeError(f"retrier must be a forbear.Retrier, got {type(retrier).__name__}")
    if retrier.token is not None:
        raise ValueError(_ADDS_HEADERS.format(what="token source"))
    if retrier.idempotency_keys:
        raise ValueError(_ADDS_HEADERS.format(what="idempotency_keys"))
    if retrier.request_ids:
        raise ValueError(_ADDS_HEADERS.format(what="request_ids"))
    return retrier


def checked_method(method: str) -> str:
    """The fallback method, upper-case; ValueError for anything that is not a method name."""
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise ValueError(f"method must be an HTTP method name such as 'GET', got {method!r}")
    return method.upper()
