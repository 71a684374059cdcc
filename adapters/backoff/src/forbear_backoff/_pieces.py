"""`Pieces`: forbear's wait generator and predicates, to compose your own backoff decorators.

backoff makes one wait generator per call of the decorated function and sends it each return
value or exception it retries on, so the generator steps that call's flow: it yields the wait
of a retry and ends on anything else (backoff then gives up). backoff's predicate and
``giveup`` are shared by every call, so they can only ask whether the outcome is one forbear
retries at all; the generator, which knows the attempts, the deadline and the budget, has the
last word.
"""

from __future__ import annotations

from collections.abc import Generator
from types import EllipsisType
from typing import Any

from forbear import (
    Action,
    Budget,
    EventHook,
    Gate,
    Policy,
    RetryState,
    decide,
)
from forbear.flow import UNKNOWN_METHOD, CallSite, read_attempt

__all__ = ["Pieces"]


class Pieces:
    """The wait generator, predicate and ``giveup`` for plain backoff decorators.

    Use ``jitter=None`` with them: backoff's default jitter would shorten a Retry-After::

        pieces = Pieces(policy=Policy(max_attempts=4))

        @backoff.on_predicate(pieces.wait_gen, pieces.retryable, jitter=None)
        def fetch(url): ...

    The options are `on_response`'s, without a token: plain backoff decorators have no hook
    before each attempt to hand one to the function.
    """

    __slots__ = ("_site",)

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        method: str | None = None,
        gate: Gate | EllipsisType | None = ...,
        budget: Budget | EllipsisType | None = ...,
        on_event: EventHook | None = None,
    ) -> None:
        self._site = CallSite(
            policy=policy, method=method, gate=gate, budget=budget, on_event=on_event
        )

    def __repr__(self) -> str:
        return f"Pieces(policy={self.policy!r}, method={self._site.method!r})"

    @property
    def policy(self) -> Policy:
        """The policy the decisions follow."""
        return self._site.policy

    def wait_gen(self) -> Generator[float, Any, None]:
        """A generator function for backoff: each retry's wait, ending when the flow ends.

        It releases each retried response before backoff sleeps; the exception backoff
        re-raises when it ends carries the attempt history as a note.
        """
        stepper = self._site.begin()
        value = yield 0.0  # backoff primes the generator with send(None)
        while stepper.judge(value, raised=isinstance(value, BaseException)):
            stepper.proceed_sync()
            value = yield stepper.due()

    def retryable(self, value: object) -> bool:
        """backoff's predicate: True for a response (or exception) forbear would retry."""
        attempt = read_attempt(value)
        if attempt is None:
            return False
        headers = {} if attempt.request_headers is None else attempt.request_headers
        method = attempt.method or self._site.method or UNKNOWN_METHOD
        first = RetryState.start(method, headers=headers)
        return decide(self.policy, first, attempt.outcome).action is not Action.RETURN

    def giveup(self, exc: BaseException) -> bool:
        """backoff's ``giveup``: True for an exception forbear would not retry."""
        return not self.retryable(exc)
