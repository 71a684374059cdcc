"""`Strategies` and `retry`: tenacity's loop running forbear's one retry loop.

tenacity calls ``before`` ahead of each attempt, the function, then ``retry`` with the
outcome, ``wait`` and ``stop``. Each call of a retried function (one `tenacity.RetryCallState`)
is one logical request: a `forbear.flow.Stepper` steps the core's flow from those callbacks.
``retry`` says True only when the core retries, so when it stops tenacity itself returns the
last response or raises the client's own exception (never `tenacity.RetryError`), which
carries the attempt history as a note.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import EllipsisType
from typing import Any, TypeVar

import tenacity

from forbear import Budget, EventHook, Gate, Policy, TokenSource
from forbear.flow import CallSite, Stepper

__all__ = ["AsyncStrategies", "Strategies", "retry"]

F = TypeVar("F", bound=Callable[..., Any])

#: tenacity options forbear owns, and what to use instead.
_REFUSED = {
    "stop": "use Policy(max_attempts=...) or Policy(deadline=...)",
    "wait": "use Policy(backoff=Backoff(...)) and Policy(max_wait=...): a Retry-After is a floor",
    "retry": "forbear decides what is retried: use Policy(retry_statuses=...)",
    "before": "forbear's before= waits for the gate and sets the attempt's headers",
    "reraise": "the client's own exception is raised already",
    "retry_error_cls": "the client's own exception is raised, never a RetryError",
    "retry_error_callback": "the last response is returned or its exception raised",
}
_PASSED = frozenset({"after", "before_sleep", "sleep", "name", "enabled"})


class Strategies:
    """forbear's ``retry``, ``wait``, ``stop`` and ``before`` for `tenacity.Retrying`::

        strategies = Strategies(policy=forbear.profiles.sarucci)
        for attempt in tenacity.Retrying(**strategies.options()):
            with attempt:
                response = client.get(url, headers=forbear_tenacity.headers())

    Keyword options as `retry`. A ``stop`` or ``wait`` of tenacity's own next to them is
    refused at the first attempt, naming the `forbear.Policy` field to use instead.
    """

    __slots__ = ("_site",)

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        method: str | None = None,
        token: TokenSource | None = None,
        gate: Gate | EllipsisType | None = ...,
        budget: Budget | EllipsisType | None = ...,
        on_event: EventHook | None = None,
        origin: str | None = None,
    ) -> None:
        self._site = CallSite(
            policy=policy, method=method, token=token, gate=gate, budget=budget,
            on_event=on_event, origin=origin,
        )  # fmt: skip

    def options(self) -> dict[str, Any]:
        """The keyword arguments for `tenacity.Retrying` (or `tenacity.retry`)."""
        return {"retry": self.retry, "wait": self.wait, "stop": self.stop, "before": self.before}

    def stepper(self, retry_state: tenacity.RetryCallState) -> Stepper:
        """The flow of the call ``retry_state`` belongs to."""
        stepper: Stepper | None = getattr(retry_state, "_forbear", None)
        if stepper is None:
            _refuse_mixed(self, retry_state.retry_object)
            stepper = self._site.begin()
            retry_state._forbear = stepper  # type: ignore[attr-defined]
        return stepper

    def before(self, retry_state: tenacity.RetryCallState) -> None:
        """Ahead of each attempt: wait what the gate asks; the headers for `headers()`."""
        self.stepper(retry_state).enter_sync()

    def retry(self, retry_state: tenacity.RetryCallState) -> bool:
        """True when the core retries: otherwise tenacity hands back the outcome as it is."""
        stepper = self.stepper(retry_state)
        stepper.leave()
        outcome = retry_state.outcome
        assert outcome is not None
        if outcome.failed:
            return stepper.judge(outcome.exception(), raised=True)
        return stepper.judge(outcome.result(), raised=False)

    def wait(self, retry_state: tenacity.RetryCallState) -> float:
        """The core's wait: a discarded response is released and a token re-exchanged first."""
        stepper = self.stepper(retry_state)
        stepper.proceed_sync()
        return stepper.due()

    def stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """Never: the core ends the loop through `retry`, so no `RetryError` is raised."""
        return False


class AsyncStrategies(Strategies):
    """`Strategies` for `tenacity.AsyncRetrying`: ``before`` and ``wait`` are awaited."""

    __slots__ = ()

    async def before(self, retry_state: tenacity.RetryCallState) -> None:  # type: ignore[override]
        """Ahead of each attempt: wait what the gate asks; the headers for `headers()`."""
        await self.stepper(retry_state).enter_async()

    async def wait(self, retry_state: tenacity.RetryCallState) -> float:  # type: ignore[override]
        """The core's wait: a discarded response is released and a token re-exchanged first."""
        stepper = self.stepper(retry_state)
        await stepper.proceed_async()
        return stepper.due()


def retry(
    *,
    policy: Policy | None = None,
    method: str | None = None,
    token: TokenSource | None = None,
    gate: Gate | EllipsisType | None = ...,
    budget: Budget | EllipsisType | None = ...,
    on_event: EventHook | None = None,
    origin: str | None = None,
    **tenacity_options: Any,
) -> Callable[[F], F]:
    """Retry a function returning (or raising with) an httpx, requests or aiohttp response.

    Sync and async functions alike. ``tenacity_options``: ``after``, ``before_sleep``,
    ``sleep``, ``name``, ``enabled``; the ones forbear owns are refused with what to use.
    """
    for name in tenacity_options:
        if name in _REFUSED:
            raise TypeError(f"forbear_tenacity.retry does not take {name!r}: {_REFUSED[name]}")
        if name not in _PASSED:
            raise TypeError(f"forbear_tenacity.retry got an unexpected keyword argument {name!r}")
    options: dict[str, Any] = {"policy": policy, "method": method, "token": token, "gate": gate}
    options.update(budget=budget, on_event=on_event, origin=origin)
    Strategies(**options)  # refuse bad options here, not at the first call

    def decorate(fn: F) -> F:
        kind = AsyncStrategies if inspect.iscoroutinefunction(fn) else Strategies
        strategies = kind(**options)
        return tenacity.retry(**strategies.options(), **tenacity_options)(fn)  # type: ignore[no-any-return]

    return decorate


def _refuse_mixed(strategies: Strategies, retrying: Any) -> None:
    """Refuse tenacity's own ``stop`` or ``wait`` next to forbear's: they would contradict it."""
    if retrying.wait != strategies.wait:
        raise TypeError(f"forbear_tenacity does not take tenacity's own wait: {_REFUSED['wait']}")
    if retrying.stop != strategies.stop and retrying.stop is not tenacity.stop_never:
        raise TypeError(f"forbear_tenacity does not take tenacity's own stop: {_REFUSED['stop']}")
