"""`on_response` and `on_exception`: backoff's decorators running forbear's one retry loop.

Each call of a decorated function is one logical request: a `forbear.flow.Stepper` steps the
core's flow, and everything backoff asks
during that call (the predicate or ``giveup``, the wait generator, the handlers) is answered
from it. The function itself is wrapped so that each attempt first waits what the gate still
asks and sees the headers forbear adds (`forbear_backoff.headers()`). backoff runs the loop,
sleeps and calls the handlers; forbear says whether and how long. backoff's jitter is off:
the wait is the core's (a ``Retry-After`` is a floor, never shortened).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterable
from contextvars import ContextVar
from types import EllipsisType
from typing import Any, TypeVar, cast

import backoff

from forbear import Action, Budget, EventHook, Gate, Policy, TokenSource
from forbear.flow import CallSite, Stepper

__all__ = ["DECISION_KEY", "on_exception", "on_response"]

#: The key of the core's decision (a `forbear.Event`) in the details backoff gives handlers.
DECISION_KEY = "decision"

F = TypeVar("F", bound=Callable[..., Any])

_HANDLERS = ("on_success", "on_backoff", "on_giveup")
_PASSED = frozenset({"logger", "backoff_log_level", "giveup_log_level"})
#: backoff options forbear owns, and what to use instead.
_REFUSED = {
    "jitter": "forbear's Policy sets every wait (see Backoff.jitter) and backoff's jitter "
    "would shorten a Retry-After; leave it out",
    "max_tries": "use Policy(max_attempts=...)",
    "max_time": "use Policy(deadline=...): backoff's max_time would cut a Retry-After short",
    "giveup": "forbear decides what is retried; compose forbear_backoff.Pieces for your own",
    "predicate": "forbear decides what is retried; compose forbear_backoff.Pieces for your own",
}
# The state of the call backoff's loop runs for: set per call, so threads, tasks and nested
# decorated calls each see their own.
_CURRENT: ContextVar[Stepper] = ContextVar("forbear_backoff_call")


def on_response(
    *,
    policy: Policy | None = None,
    method: str | None = None,
    token: TokenSource | None = None,
    gate: Gate | EllipsisType | None = ...,
    budget: Budget | EllipsisType | None = ...,
    on_event: EventHook | None = None,
    origin: str | None = None,
    **backoff_options: Any,
) -> Callable[[F], F]:
    """Retry a function returning an httpx, requests or aiohttp response, as forbear decides.

    Sync and async functions alike. The last response is returned as it is; each one retried
    is released first. ``method`` declares the method the function sends, for responses that
    do not name it; ``origin`` where it sends (see the README: the gate on first attempts,
    the token). ``backoff_options``: ``on_success``, ``on_backoff``, ``on_giveup``,
    ``logger``, ``backoff_log_level``, ``giveup_log_level``.
    """
    options = _check_options(backoff_options, allowed=_PASSED)
    site = CallSite(
        policy=policy, method=method, token=token, gate=gate, budget=budget,
        on_event=on_event, origin=origin,
    )  # fmt: skip

    def decorate(fn: F) -> F:
        handlers = _handlers(options, fn, raises=False)
        return _per_call(
            fn, site, backoff.on_predicate(_waits, _judge_value, jitter=None, **handlers)
        )

    return decorate


def on_exception(
    exception_types: type[Exception] | tuple[type[Exception], ...],
    *,
    policy: Policy | None = None,
    method: str | None = None,
    token: TokenSource | None = None,
    gate: Gate | EllipsisType | None = ...,
    budget: Budget | EllipsisType | None = ...,
    on_event: EventHook | None = None,
    origin: str | None = None,
    **backoff_options: Any,
) -> Callable[[F], F]:
    """Retry a function raising an httpx, requests or aiohttp exception, as forbear decides.

    A status error (``raise_for_status()``) is judged by its response, a transport error by
    its kind; any other exception is re-raised at once. The last exception is re-raised
    unchanged with the attempt history as a note. Options as `on_response`, plus backoff's
    ``raise_on_giveup``.
    """
    options = _check_options(backoff_options, allowed=_PASSED | {"raise_on_giveup"})
    site = CallSite(
        policy=policy, method=method, token=token, gate=gate, budget=budget,
        on_event=on_event, origin=origin,
    )  # fmt: skip

    def decorate(fn: F) -> F:
        handlers = _handlers(options, fn, raises=True)
        loop = backoff.on_exception(
            _waits, exception_types, giveup=_giveup, jitter=None, **handlers
        )
        return _per_call(fn, site, loop, judge_returns=True)

    return decorate


def _per_call(
    fn: F, site: CallSite, loop: Callable[[Callable[..., Any]], Any], *, judge_returns: bool = False
) -> F:
    """``fn`` under backoff's ``loop``, with a fresh `Stepper` for every call.

    ``judge_returns``: what the function returns ends the flow (``on_exception`` judges only
    what it raises), so the gate and the events see the success.
    """
    if inspect.iscoroutinefunction(fn):

        async def attempt_async(*args: Any, **kwargs: Any) -> Any:
            stepper = _CURRENT.get()
            await stepper.enter_async()
            try:
                value = await fn(*args, **kwargs)
            finally:
                stepper.leave()
            if judge_returns:
                stepper.judge(value, raised=False)
            return value

        retried_async = loop(attempt_async)

        @functools.wraps(fn)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            reset = _CURRENT.set(site.begin())
            try:
                return await retried_async(*args, **kwargs)
            finally:
                _CURRENT.reset(reset)

        return cast(F, call_async)

    def attempt(*args: Any, **kwargs: Any) -> Any:
        stepper = _CURRENT.get()
        stepper.enter_sync()
        try:
            value = fn(*args, **kwargs)
        finally:
            stepper.leave()
        if judge_returns:
            stepper.judge(value, raised=False)
        return value

    retried = loop(functools.wraps(fn)(attempt))

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        reset = _CURRENT.set(site.begin())
        try:
            return retried(*args, **kwargs)
        finally:
            _CURRENT.reset(reset)

    return cast(F, call)


def _judge_value(value: Any) -> bool:
    """backoff's predicate: True to retry (or give up: the wait generator ends), else False."""
    stepper = _CURRENT.get()
    if stepper.judge(value, raised=False):
        return True
    return stepper.action is Action.GIVE_UP  # a give-up goes to backoff's on_giveup handlers


def _giveup(exc: BaseException) -> bool:
    """backoff's ``giveup``: False only when the core says retry."""
    return not _CURRENT.get().judge(exc, raised=True)


def _waits() -> Generator[float, Any, None]:
    """backoff's wait generator: each retry's wait; it ends with the flow (backoff gives up)."""
    stepper = _CURRENT.get()
    yield 0.0  # backoff primes the generator with send(None) and ignores this value
    while not stepper.done:
        yield stepper.wait


def _show_decision(details: Any) -> None:
    details[DECISION_KEY] = _CURRENT.get().event


def _release(details: Any) -> None:
    _CURRENT.get().proceed_sync()


async def _arelease(details: Any) -> None:
    await _CURRENT.get().proceed_async()


def _handlers(options: dict[str, Any], fn: Any, *, raises: bool) -> dict[str, Any]:
    """backoff's options: the user's handlers between forbear's own."""
    handlers = dict(options)
    # Only handlers read the details: without any, the decision is not put in them (its event
    # is made on demand, so a success nobody reads costs no event).
    on_success = options["on_success"]
    handlers["on_success"] = [_show_decision, *on_success] if on_success else []
    # The discarded response is released last, so the user's handlers can still read it.
    release = _arelease if inspect.iscoroutinefunction(fn) else _release
    handlers["on_backoff"] = [_show_decision, *options["on_backoff"], release]
    handlers["on_giveup"] = [_show_decision, *options["on_giveup"]]
    return handlers


def _check_options(options: dict[str, Any], *, allowed: frozenset[str]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name == "jitter" and value is None:
            continue  # already forbear's choice
        if name in _REFUSED:
            raise TypeError(f"forbear_backoff does not take backoff's {name!r}: {_REFUSED[name]}")
        if name in _HANDLERS:
            checked[name] = _handler_list(name, value)
        elif name in allowed:
            checked[name] = value
        else:
            raise TypeError(f"forbear_backoff got an unexpected keyword argument {name!r}")
    for name in _HANDLERS:
        checked.setdefault(name, ())
    # backoff's default log lines quote the response or exception (URLs with their query,
    # aiohttp's headers): forbear logs each decision on its own, redacted, logger instead.
    checked.setdefault("logger", None)
    return checked


def _handler_list(name: str, value: Any) -> tuple[Any, ...]:
    """backoff's handler argument (None, one callable or an iterable of them) as a tuple."""
    if value is None:
        return ()
    if callable(value):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        handlers = tuple(value)
        if all(callable(handler) for handler in handlers):
            return handlers
    raise TypeError(f"{name} must be a callable or an iterable of callables, got {value!r}")
