"""`RetryMiddleware`: forbear's one retry loop as an aiohttp client middleware.

The loop is the core's (`forbear.Retrier.run_async`); this module only says how aiohttp sends
a request with extra headers, how its responses and errors read as outcomes, whether a body can
be sent again, and how a discarded response is released. What stays here is aiohttp's own: its
silent re-run of an idempotent request, requests made from inside a token exchange, and a token
copied onto a request for another origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from types import EllipsisType
from typing import Any

from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse
from yarl import URL

from forbear import Budget, EventHook, Gate, Policy, Retrier, TokenSource

from . import _attempts
from ._attempts import _GAVE_UP, Attempts, _timer_of

__all__ = ["RetryMiddleware"]

_WHERE = "RetryMiddleware.overrides()"

#: Set while forbear runs a request that carries a token: a request made meanwhile in the same
#: context (the token exchange, using the same session) goes straight to the next handler.
_IN_EXCHANGE: ContextVar[bool] = ContextVar("forbear_aiohttp_in_exchange", default=False)

#: No last origin yet (a scheme is never None: no URL matches it).
_NO_ORIGIN: tuple[str | None, str | None, str] = (None, None, "")
#: yarl keeps a URL's scheme and netloc in slots of these names (every yarl aiohttp 3.12 and
#: later install); read by `RetryMiddleware.__call__` when present.
_SLOTS = all(hasattr(URL("http://a.test/"), name) for name in ("_scheme", "_netloc"))


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

    __slots__ = ("_attempts", "_origin", "_override", "retrier")

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
        if token is not None:
            _attempts.watch = True
        self._override: Mapping[str, Any] | None = None
        self._origin: tuple[str | None, str | None, str] = _NO_ORIGIN

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
        copy._origin = _NO_ORIGIN
        return copy

    def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> Awaitable[ClientResponse]:
        """Send ``request`` through ``handler`` until the core says stop (to be awaited).

        A plain function handing back the core's coroutine: no frame of its own around the
        retry loop. aiohttp's re-run is noted by `Attempts.raised`, which the core calls.
        """
        if _attempts.watch:
            if _IN_EXCHANGE.get():
                return handler(request)
            gave_up = _GAVE_UP.get()
            if gave_up is not None:
                _GAVE_UP.set(None)
                if gave_up[1] is _timer_of(request) and gave_up[2] is self:
                    return _raise(gave_up[0])
        url = request.url
        # yarl has the URL parsed: the origin of the last request is kept by its parts, so one
        # to the same origin reuses its string (and its hash). The parts are yarl's own slots
        # where it has them (plain attribute reads; its public properties are cached ones, two
        # lookups each): the origin is a function of the scheme and the netloc either way.
        scheme: str | None
        netloc: str | None
        if _SLOTS:
            scheme, netloc = url._scheme, url._netloc
        else:  # pragma: no cover - a yarl without the slots
            scheme, netloc = url.scheme, url.host_port_subcomponent
        last = self._origin
        if netloc == last[1] and scheme == last[0]:
            origin = last[2]
        else:
            origin = f"{url.scheme}://{url.host_port_subcomponent}"
            self._origin = (scheme, netloc, origin)
        attempts = self._attempts
        if attempts.token is not None:
            return self._exchanging(request, handler, origin)
        override = self._override
        if override is None:
            return self.retrier.run_async(
                # `Attempts.send` returns the handler's awaitable instead of being a coroutine
                # function: awaited alike, one frame fewer (the protocol spells it `async def`).
                attempts,  # type: ignore[arg-type]
                (request, handler, self),
                request.method,
                url,
                request.headers,
                origin,
            )
        return self.retrier.run_async(
            attempts,  # type: ignore[arg-type]
            (request, handler, self),
            request.method,
            url,
            request.headers,
            origin,
            override,
            _WHERE,
        )

    async def _exchanging(
        self, request: ClientRequest, handler: ClientHandlerType, origin: str
    ) -> ClientResponse:
        """`__call__` for a middleware with a token: requests made meanwhile in this context
        (the token exchange) go straight to the next handler."""
        self._attempts.strip(request, origin)
        reset = _IN_EXCHANGE.set(True)
        try:
            return await self.retrier.run_async(
                self._attempts,  # type: ignore[arg-type]
                (request, handler, self),
                request.method,
                request.url,
                request.headers,
                origin=origin,
                override=self._override,
                where=_WHERE,
            )
        finally:
            _IN_EXCHANGE.reset(reset)


async def _raise(error: BaseException) -> ClientResponse:
    raise error
