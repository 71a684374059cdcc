"""`Pieces`: forbear's wait generator and predicates, to compose your own backoff decorators.

backoff makes one wait generator per call of the decorated function and sends it each return
value or exception it retries on, so the generator carries that call's `forbear.RetryCall`:
it asks the core, yields the wait of a RETRY and ends on anything else (backoff then gives
up). backoff's predicate and ``giveup`` are shared by every call, so they can only ask whether
the outcome is one forbear retries at all (its status, error kind and method); the generator,
which knows the attempt count, the deadline and the budget, has the last word.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from forbear import Action, Policy, Retrier, RetryState, decide

from ._call import CallState, checked_method, checked_retrier
from ._clients import read_attempt, release

__all__ = ["Pieces"]


class Pieces:
    """The wait generator, predicate and ``giveup`` that `on_response`/`on_exception` build on.

    Use ``jitter=None`` with them: backoff's default jitter would shorten a Retry-After::

        pieces = Pieces(Policy(max_attempts=4))

        @backoff.on_predicate(pieces.wait_gen, pieces.retryable, jitter=None)
        def fetch(url): ...

        @backoff.on_exception(pieces.wait_gen, httpx.HTTPError, giveup=pieces.giveup,
                              jitter=None)
        def fetch_json(url): ...

    ``method`` is used when an outcome does not name its request's method; ``retrier``
    shares a `forbear.Retrier` (gate, budget, ``on_event``), by default one per `Pieces`.
    """

    __slots__ = ("_method", "_policy", "_retrier")

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        method: str = "GET",
        retrier: Retrier | None = None,
    ) -> None:
        self._retrier = checked_retrier(policy, retrier)
        self._policy = policy
        self._method = checked_method(method)

    def __repr__(self) -> str:
        return f"Pieces(policy={self.policy!r}, method={self._method!r})"

    @property
    def policy(self) -> Policy:
        """The policy the decisions follow."""
        return self._policy if self._policy is not None else self._retrier.policy

    def wait_gen(self) -> Generator[float, Any, None]:
        """A generator function for backoff: each RETRY's wait, ending on RETURN or GIVE_UP.

        It releases each retried response it can close synchronously (an unread streamed
        ``httpx.AsyncClient`` response cannot be: read or close it, or use `on_response`), and
        adds the attempt history as a note to the exception backoff re-raises when it ends.
        """
        state = CallState(self._retrier, self._policy, self._method)
        value = yield 0.0  # backoff primes the generator with send(None)
        while True:
            attempt = read_attempt(value)
            if attempt is None:
                return
            if state.judge(attempt).action is not Action.RETRY:
                if isinstance(value, BaseException):
                    state.annotate(value)
                return
            release(attempt.response)
            value = yield state.wait()

    def retryable(self, value: object) -> bool:
        """backoff's predicate: True for a response (or exception) forbear would retry."""
        attempt = read_attempt(value)
        if attempt is None:
            return False
        headers = {} if attempt.request_headers is None else attempt.request_headers
        first = RetryState.start(attempt.method or self._method, headers=headers)
        return decide(self.policy, first, attempt.outcome).action is not Action.RETURN

    def giveup(self, exc: BaseException) -> bool:
        """backoff's ``giveup``: True for an exception forbear would not retry."""
        return not self.retryable(exc)
