"""`RetryMiddleware`: forbear's one retry loop as an aiohttp client middleware.

The loop is the core's (`forbear.Retrier.run_async`); this module only says how aiohttp sends
a request with extra headers, how its responses and errors read as outcomes, whether a body can
be sent again, and how a discarded response is released. What stays here is aiohttp's own: its
silent re-run of an idempotent request, requests made from inside a token exchange, and a token
copied onto a request for another origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from types import EllipsisType
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse

from forbear import Budget, EventHook, Gate, Policy, Retrier, TokenSource

from ._attempts import Attempts

__all__ = ["RetryMiddleware"]

_WHERE = "RetryMiddleware.overrides()"

#: Set while forbear runs a request that carries a token: a request made meanwhile in the same
#: context (the token exchange, using the same session) goes straight to the next handler.
_IN_EXCHANGE: ContextVar[bool] = ContextVar("forbear_aiohttp_in_exchange", default=False)

#: The error this task's last request gave up with, with that request's timer and middleware.
#: aiohttp re-runs an idempotent request once after these errors (RFC 9112 section 9.3.1),
#: through the middleware again; forbear has already retried by its policy, so that re-run
#: gets the same error back without another send.
_GAVE_UP: ContextVar[tuple[BaseException, object, object] | None] = ContextVar(
    "forbear_aiohttp_gave_up", default=None
)
_RERUN_BY_AIOHTTP = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)


class RetryMiddleware:
    """An aiohttp client middleware that retries the way the server asks.

    Mount it on a session, ``aiohttp.ClientSession(middlewares=[retry])``, or on one request,
    ``session.get(url, middlewares=[retry])`` (a per-request list replaces the session's);
    ``retry.overrides(policy=..., retries=False)`` is the same middleware with per-request
    settings, for a request's own ``middlewares=``. ``inner`` is another client middleware
    called for every attempt in place of the handler (``await inner(request, handler)``), for
    per-attempt signing, say. ``gate`` and ``budget`` default to the process's (shared by every
    client in it); pass objects to narrow or widen the scope, or None to go without.

    When the core says stop, the last response is returned unread, or the last exception is
    re-raised unchanged (aiohttp's own type) with the attempt history as a note.
    """

    __slots__ = ("_attempts", "_override", "retrier")

    def __init__(
        self,
        inner: ClientMiddlewareType | None = None,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: Gate | EllipsisType | None = ...,
        budget: Budget | EllipsisType | None = ...,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
    ) -> None:
        if inner is not None and not callable(inner):
            raise TypeError(
                f"inner must be an aiohttp client middleware, got {type(inner).__name__}"
            )
        #: The retry loop and what it shares: policy, gate, budget, token source, events.
        self.retrier = Retrier(
            policy=policy,
            token=token,
            gate=gate,
            budget=budget,
            idempotency_keys=idempotency_keys,
            request_ids=request_ids,
            on_event=on_event,
        )
        self._attempts = Attempts(inner, token)
        self._override: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RetryMiddleware(policy={self.retrier.policy!r}, token={self.retrier.token!r})"

    @property
    def inner(self) -> ClientMiddlewareType | None:
        """The middleware called for every attempt in place of the handler, if any."""
        return self._attempts.inner

    def overrides(self, *, policy: Policy | None = None, retries: bool = True) -> RetryMiddleware:
        """This middleware with per-request settings, for one request's ``middlewares=``.

        ``session.get(url, middlewares=[retry.overrides(retries=False)])`` sends once, without
        retrying or re-exchanging; ``policy=`` swaps the policy. Gate, budget and token stay
        this middleware's. Bad values raise when the request is made.
        """
        copy = RetryMiddleware.__new__(RetryMiddleware)
        copy.retrier, copy._attempts = self.retrier, self._attempts
        settings: dict[str, Any] = {"retries": retries}
        if policy is not None:
            settings["policy"] = policy
        copy._override = settings
        return copy

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send ``request`` through ``handler`` until the core says stop."""
        if _IN_EXCHANGE.get():
            return await handler(request)
        gave_up = _GAVE_UP.get()
        if gave_up is not None:
            _GAVE_UP.set(None)
            if gave_up[1] is _timer_of(request) and gave_up[2] is self:
                raise gave_up[0]
        url = request.url
        # yarl has the URL parsed: its parts spell the origin cheaper than a cache would.
        origin = f"{url.scheme}://{url.host_port_subcomponent}"
        attempts = self._attempts
        reset = None
        if attempts.token is not None:
            attempts.strip(request, origin)
            reset = _IN_EXCHANGE.set(True)
        try:
            return await self.retrier.run_async(
                # `Attempts.send` returns the handler's awaitable instead of being a coroutine
                # function: awaited alike, one frame fewer (the protocol spells it `async def`).
                attempts,  # type: ignore[arg-type]
                (request, handler),
                request.method,
                url,
                request.headers,
                origin=origin,
                override=self._override,
                where=_WHERE,
            )
        except _RERUN_BY_AIOHTTP as exc:
            _GAVE_UP.set((exc, _timer_of(request), self))
            raise
        finally:
            if reset is not None:
                _IN_EXCHANGE.reset(reset)


def _timer_of(request: ClientRequest) -> object:
    # One timer per `ClientSession._request` call: it tells aiohttp's own re-run of a request
    # from a new request to the same URL.
    return getattr(request, "_timer", None)
