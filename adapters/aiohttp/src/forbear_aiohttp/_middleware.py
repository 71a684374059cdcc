"""`RetryMiddleware`: forbear's retry loop as an aiohttp client middleware.

The loop itself is `forbear.RetryCall`'s (see its module docstring); this module only maps
aiohttp's types onto it: it sends through the next handler, releases discarded responses,
sleeps (`asyncio.sleep`: aiohttp is asyncio-only), and re-raises. No retry rule lives here:
which status, error, method or body may be retried, and how long to wait, is the core's to say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from contextvars import ContextVar

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.multipart import BodyPartReaderPayload

from forbear import (
    Action,
    EventHook,
    HostGate,
    Policy,
    Retrier,
    RetryBudget,
    RetryCall,
    TokenSource,
)

from ._errors import error_kind

__all__ = ["DRAIN_LIMIT", "RetryMiddleware"]

#: A discarded response whose whole body is at most this many bytes (by ``Content-Length``,
#: not compressed) is read before it is released, so its connection goes back to the pool; a
#: larger, unsized or compressed one is released unread and its connection closed.
DRAIN_LIMIT = 64 * 1024
#: The longest a small discarded body is waited for before its connection is closed instead.
_DRAIN_TIMEOUT = 0.25

_DEFAULT_POLICY = Policy()

#: Set while forbear runs the token exchange: a request made from inside the exchange goes
#: straight to the next handler, so an exchange that uses the same session never recurses.
_IN_EXCHANGE: ContextVar[bool] = ContextVar("forbear_aiohttp_in_exchange", default=False)

#: The error this task's last request ended with, with that request's timer and middleware.
#: aiohttp re-runs an idempotent request once after these errors (RFC 9112 section 9.3.1),
#: through the middleware again; forbear has already retried by its policy, so that re-run
#: gets the same error back without another send.
_GAVE_UP: ContextVar[tuple[BaseException, object, object] | None] = ContextVar(
    "forbear_aiohttp_gave_up", default=None
)
_RERUN_BY_AIOHTTP = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)

#: How many recent auth header values forbear remembers having attached (to strip them from a
#: request to an origin the token does not belong to).
_ATTACHED_MEMORY = 4


class RetryMiddleware:
    """An aiohttp client middleware that retries the way the server asks.

    Mount it on a session, ``aiohttp.ClientSession(middlewares=[RetryMiddleware()])``, or on
    one request, ``session.get(url, middlewares=[...])`` (a per-request list replaces the
    session's). One instance may serve any number of sessions and concurrent tasks. ``gate``
    and ``budget`` default to a fresh `HostGate` / `RetryBudget` for this middleware; pass the
    same objects to several middlewares to share them, or ``None`` to go without.

    Failure contract: when the core says stop, the last response is returned unread (stream it
    as usual), or the last exception is re-raised unchanged (aiohttp's own type) with the
    attempt history added as a note. A discarded response is released before the wait (read
    first only when it is small, see `DRAIN_LIMIT`), so the connector never runs dry. A body
    aiohttp cannot replay (an async generator, a stream) is sent once and its first answer
    handed back.

    ``token=TokenSource(...)`` attaches the token to requests for its origins only, on every
    redirect hop separately (aiohttp runs the middleware once per hop), and re-exchanges it
    once on a 401. The exchange never passes through this middleware: requests made from
    inside it go straight to the next handler. Pass ``middlewares=()`` in the exchange's own
    call as well, so that other middlewares on the session stay out of it too.

    ``ClientTimeout(total=...)`` covers the whole call, this middleware's sleeps included:
    every attempt *and* every back-off or Retry-After wait count against it, and when it runs
    out mid-wait aiohttp raises its ``TimeoutError`` and forbear stops. Size it as the sum of
    ``max_attempts`` attempts plus the waits between them (with ``Policy()``, up to
    0.25 + 0.5 + 1 + 2 s of back-off, more when a server names a longer Retry-After, up to
    ``max_wait`` each), or better: bound each attempt with ``sock_connect``/``sock_read``,
    leave ``total=None``, and bound the whole call with ``Policy(deadline=...)``, which gives
    up with the last answer instead of cancelling a wait.
    """

    __slots__ = ("_attached", "retrier")

    def __init__(
        self,
        *,
        policy: Policy = _DEFAULT_POLICY,
        token: TokenSource | None = None,
        gate: HostGate | bool | None = True,
        budget: RetryBudget | bool | None = True,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
    ) -> None:
        #: The shared retry machinery: policy, gate, budget, token source, event hook.
        self.retrier = Retrier(
            policy=policy,
            token=token,
            gate=gate,
            budget=budget,
            idempotency_keys=idempotency_keys,
            request_ids=request_ids,
            on_event=on_event,
        )
        self._attached: deque[str] = deque(maxlen=_ATTACHED_MEMORY)

    def __repr__(self) -> str:
        return f"RetryMiddleware(policy={self.policy!r}, token={self.token!r})"

    @property
    def policy(self) -> Policy:
        """The retry policy."""
        return self.retrier.policy

    @property
    def token(self) -> TokenSource | None:
        """The token source, if any."""
        return self.retrier.token

    @property
    def gate(self) -> HostGate | None:
        """The host gate, if any: pass it to another middleware to share it."""
        return self.retrier.gate

    @property
    def budget(self) -> RetryBudget | None:
        """The retry budget, if any: pass it to another middleware to share it."""
        return self.retrier.budget

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send ``request`` through ``handler`` until the core says stop; see the class doc."""
        if _IN_EXCHANGE.get():
            return await handler(request)
        gave_up = _GAVE_UP.get()
        if gave_up is not None:
            _GAVE_UP.set(None)
            if gave_up[1] is _timer_of(request) and gave_up[2] is self:
                raise gave_up[0]
        body = request.body
        payload = body if isinstance(body, aiohttp.Payload) else None
        call = self.retrier.begin(
            request.method,
            str(request.url),
            request.headers,
            replayable=payload is None or not _one_shot(payload),
        )
        added = call.headers()
        token = self.retrier.token
        while True:
            delay = call.gate_delay()
            if delay > 0.0:
                await asyncio.sleep(delay)
            if added:
                request.headers.update(added)
            if token is not None:
                await self._authorize(call, request, token)
            before = request.response
            try:
                response = await handler(request)
            except Exception as exc:
                kind = error_kind(exc, sent=request.response is not before)
                if kind is None:
                    call.annotate(exc)  # not judged, but the attempts before it are worth telling
                    raise
                if payload is not None:
                    _note_consumed(call, payload)
                decision = call.on_error(kind)
                if decision.action is not Action.RETRY:
                    call.annotate(exc)
                    if isinstance(exc, _RERUN_BY_AIOHTTP):
                        _GAVE_UP.set((exc, _timer_of(request), self))
                    raise
            else:
                if payload is not None:
                    _note_consumed(call, payload)
                decision = call.on_response(response.status, response.headers)
                action = decision.action
                if action is Action.RETURN or action is Action.GIVE_UP:
                    return response
                await _discard(response)
                if action is Action.REAUTH:
                    await _settle(request)
                    await self._reauth(call)
                    continue
            await _settle(request)
            if decision.wait > 0.0:
                await asyncio.sleep(decision.wait)

    async def _authorize(self, call: RetryCall, request: ClientRequest, token: TokenSource) -> None:
        if call.uses_token:
            reset = _IN_EXCHANGE.set(True)
            try:
                header = await call.auth_async()
            finally:
                _IN_EXCHANGE.reset(reset)
            if header is not None:
                name, value = header
                request.headers[name] = value
                if value not in self._attached:
                    self._attached.append(value)
        elif self._attached:
            # Not this origin's token: never send one forbear attached, whatever copied it here.
            sent = request.headers.getall(token.header, ())
            if any(value in self._attached for value in sent):
                request.headers.popall(token.header, None)

    async def _reauth(self, call: RetryCall) -> None:
        reset = _IN_EXCHANGE.set(True)
        try:
            await call.reauth_async()
        finally:
            _IN_EXCHANGE.reset(reset)


async def _discard(response: ClientResponse) -> None:
    """Release a response that is not the answer, reading its body first only if it is small."""
    length = response.content_length
    if (
        length is not None
        and 0 < length <= DRAIN_LIMIT
        and "Content-Encoding" not in response.headers  # never inflate what is thrown away
        and not response.content.is_eof()
    ):
        with contextlib.suppress(Exception):  # a stalled or broken body: just close it
            await asyncio.wait_for(response.content.read(), _DRAIN_TIMEOUT)
    # Unread, aiohttp closes the connection: an unbounded body is never drained.
    response.release()


async def _settle(request: ClientRequest) -> None:
    """Let the cancelled body writer finish, so a file payload rewinds before the re-send."""
    # Its failure, if any, already reached the attempt's response or error.
    with contextlib.suppress(Exception):
        await request.close()


def _timer_of(request: ClientRequest) -> object:
    # One timer per `ClientSession._request` call: it tells aiohttp's own re-run of a request
    # from a new request to the same URL.
    return getattr(request, "_timer", None)


def _one_shot(payload: aiohttp.Payload) -> bool:
    """Whether ``payload`` can be written only once (aiohttp's `Payload.consumed` API aside)."""
    if payload.consumed or isinstance(
        payload, (aiohttp.AsyncIterablePayload, BodyPartReaderPayload)
    ):
        return True
    if isinstance(payload, aiohttp.MultipartWriter):
        return any(_one_shot(part) for part, _, _ in payload)
    return False


def _note_consumed(call: RetryCall, payload: aiohttp.Payload) -> None:
    # A payload that turned out one-shot while being written (a file that cannot seek back)
    # cannot be re-sent: tell the core before it judges the attempt.
    if payload.consumed:
        call.mark_unreplayable()
