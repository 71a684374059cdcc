"""`on_response` and `on_exception`: backoff's decorators with forbear deciding.

Each call of a decorated function is one logical request with its own `CallState`: backoff's
predicate or ``giveup``, its wait generator and its handlers all read the one decision the
core made for each attempt of that call. backoff runs the loop, sleeps and calls the
handlers; forbear says whether and how long. backoff's jitter is always off: the wait is the
core's (a ``Retry-After`` is a floor, never shortened).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import backoff

from forbear import Policy, Retrier

from ._call import CallState, checked_method, checked_retrier

__all__ = ["on_exception", "on_response"]

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


def on_response(
    policy: Policy | None = None,
    *,
    method: str = "GET",
    retrier: Retrier | None = None,
    **backoff_options: Any,
) -> Callable[[F], F]:
    """Retry a function returning an httpx, requests or aiohttp response, as forbear decides.

    Sync and async functions alike. The function is called again exactly when the core says
    RETRY, after exactly its wait; on RETURN or GIVE_UP the last response is returned as it is
    (a retried one is closed first). ``method`` is used when a response does not name its
    request's. ``retrier`` shares a `forbear.Retrier` (gate, budget, ``on_event``) between
    decorated functions; by default each gets its own. ``backoff_options`` are backoff's
    handler and logging options: ``on_success``, ``on_backoff``, ``on_giveup``, ``logger``,
    ``backoff_log_level``, ``giveup_log_level``. Handlers find the core's `forbear.Decision`
    in ``details["decision"]``. backoff's ``logger`` defaults to None here: forbear logs each
    decision on the ``forbear`` logger, without the URL's query or any header value.
    """
    options = _check_options(backoff_options, allowed=_PASSED)
    shared = checked_retrier(policy, retrier)
    fallback = checked_method(method)

    def decorate(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)
        handlers = _handlers(options, is_async=is_async, raises=False)
        loop = backoff.on_predicate(_waits, _retry_response, jitter=None, **handlers)(fn)
        return _per_call(fn, loop, shared, policy, fallback)

    return decorate


def on_exception(
    exception_types: type[Exception] | tuple[type[Exception], ...],
    policy: Policy | None = None,
    *,
    method: str = "GET",
    retrier: Retrier | None = None,
    **backoff_options: Any,
) -> Callable[[F], F]:
    """Retry a function raising an httpx, requests or aiohttp exception, as forbear decides.

    ``exception_types`` are caught as backoff would catch them. An HTTP status error (after
    ``raise_for_status()``) is judged by its response; a transport error by its kind; any
    other exception is re-raised at once. The last exception is re-raised unchanged, with the
    attempt history added as a note. Besides the options `on_response` takes, backoff's
    ``raise_on_giveup`` is passed through. In ``on_success`` (the function returned) the
    details' ``"decision"`` is None: nothing was judged.
    """
    options = _check_options(backoff_options, allowed=_PASSED | {"raise_on_giveup"})
    shared = checked_retrier(policy, retrier)
    fallback = checked_method(method)

    def decorate(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)
        handlers = _handlers(options, is_async=is_async, raises=True)
        loop = backoff.on_exception(
            _waits, exception_types, giveup=_giveup, jitter=None, **handlers
        )(fn)
        return _per_call(fn, loop, shared, policy, fallback)

    return decorate


# backoff's loop is built once per decorated function; what it calls finds the state of the
# call it runs for here. Each call sets it and resets it on the way out, so threads, tasks and
# nested decorated calls each see their own.
_CURRENT: ContextVar[CallState] = ContextVar("forbear_backoff_call")


def _per_call(
    fn: F, loop: Callable[..., Any], retrier: Retrier, policy: Policy | None, method: str
) -> F:
    """``fn`` running ``loop`` with a fresh `CallState` for every call."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def retried_async(*args: Any, **kwargs: Any) -> Any:
            token = _CURRENT.set(CallState(retrier, policy, method))
            try:
                return await loop(*args, **kwargs)
            finally:
                _CURRENT.reset(token)

        return cast(F, retried_async)

    @functools.wraps(fn)
    def retried(*args: Any, **kwargs: Any) -> Any:
        token = _CURRENT.set(CallState(retrier, policy, method))
        try:
            return loop(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return cast(F, retried)


def _retry_response(value: Any) -> bool:
    return _CURRENT.get().retry_response(value)


def _giveup(exc: BaseException) -> bool:
    return _CURRENT.get().giveup(exc)


def _waits() -> Generator[float, Any, None]:
    return _CURRENT.get().waits()


def _show_decision(details: Any) -> None:
    _CURRENT.get().show_decision(details)


def _release(details: Any) -> None:
    _CURRENT.get().release_discarded(details)


async def _arelease(details: Any) -> None:
    await _CURRENT.get().arelease_discarded(details)


def _handlers(options: dict[str, Any], *, is_async: bool, raises: bool) -> dict[str, Any]:
    """backoff's options: the user's handlers between forbear's own."""
    handlers = dict(options)
    success_decision = CallState.show_no_decision if raises else _show_decision
    handlers["on_success"] = [success_decision, *options["on_success"]]
    # The discarded response is released last, so the user's handlers can still read it.
    release = _arelease if is_async else _release
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
