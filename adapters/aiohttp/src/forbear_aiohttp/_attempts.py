"""aiohttp's part of the retry loop: send one attempt, read its outcome, release what is discarded.

The `forbear.AsyncAdapter` that `RetryMiddleware` hands to `forbear.Retrier.run_async`. It holds
no retry rule: it only translates between aiohttp's types and the core's.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar

import aiohttp
import anyio
from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse
from aiohttp.multipart import BodyPartReaderPayload

from forbear import TokenSource, drain_length, error_kind
from forbear.flow import Reading
from forbear.rules import RELEASE_SECONDS

__all__ = ["Attempts"]

#: One attempt's request: the request, the handler that sends it, and the `RetryMiddleware`
#: running it.
Call = tuple[ClientRequest, ClientHandlerType, object]

#: How many recent auth header values forbear remembers having attached (to strip them from a
#: request to an origin the token does not belong to).
_ATTACHED_MEMORY = 4

#: The error this task's last request gave up with, with that request's timer and middleware.
#: aiohttp re-runs an idempotent request once after these errors (RFC 9112 section 9.3.1),
#: through the middleware again; forbear has already retried by its policy, so that re-run
#: gets the same error back without another send.
_GAVE_UP: ContextVar[tuple[BaseException, object, object] | None] = ContextVar(
    "forbear_aiohttp_gave_up", default=None
)
_RERUN_BY_AIOHTTP = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)

#: False until the process builds a `RetryMiddleware` with a token or one gives up with an
#: error aiohttp re-runs after: until then no context holds an exchange or a noted error, and
#: `RetryMiddleware.__call__` skips reading them.
watch = False


class Attempts:
    """Sends attempts of aiohttp requests for the core's loop; one per `RetryMiddleware`."""

    __slots__ = ("_attached", "_header", "inner", "token")

    def __init__(self, inner: ClientMiddlewareType | None, token: TokenSource | None) -> None:
        self.inner = inner
        self.token = token
        self._header = None if token is None else token.header
        self._attached: deque[str] = deque(maxlen=_ATTACHED_MEMORY)

    def send(self, call: Call, headers: Mapping[str, str] | None) -> Awaitable[ClientResponse]:
        """One attempt, to be awaited. A plain function: a first send hands back the handler's
        own awaitable, one coroutine frame fewer per request than an ``async def`` around it."""
        request, handler, _ = call
        if headers or request.response is not None:
            return self._resend(request, handler, headers)
        inner = self.inner
        return handler(request) if inner is None else inner(request, handler)

    async def _resend(
        self, request: ClientRequest, handler: ClientHandlerType, headers: Mapping[str, str] | None
    ) -> ClientResponse:
        if request.response is not None:
            # A re-send: let the last attempt's cancelled body writer settle first, so a file
            # payload rewinds. Its failure, if any, already reached that attempt's outcome.
            with contextlib.suppress(Exception):
                await request.close()
        if headers:
            # aiohttp builds each redirect hop from the caller's headers, not from this
            # request's: what forbear sets here never follows a hop.
            request.headers.update(headers)
            attached = None if self._header is None else headers.get(self._header)
            if attached is not None and attached not in self._attached:
                self._attached.append(attached)
        inner = self.inner
        return await (handler(request) if inner is None else inner(request, handler))

    def outcome(self, response: ClientResponse) -> Reading:
        # The plain tuple an `Outcome` would hold: the core reads it by position, and making
        # the `Outcome` subclass costs three times as much on every request. A method, not a
        # staticmethod: the core's call to it is then specialized by the interpreter.
        return (response.status, response.headers, None)

    failure = staticmethod(error_kind)

    @staticmethod
    def replayable(call: Call) -> bool:
        body = call[0].body
        return not isinstance(body, aiohttp.Payload) or not _one_shot(body)

    @staticmethod
    async def release(response: ClientResponse) -> None:
        try:
            if drain_length(response.headers) is not None and not response.content.is_eof():
                with anyio.move_on_after(RELEASE_SECONDS):
                    await response.content.read()
        except Exception:  # a broken body: the release below closes its connection
            pass
        finally:
            # Unread, aiohttp closes the connection: an unbounded body is never drained.
            response.release()

    @staticmethod
    def raised(call: Call, error: BaseException) -> None:
        """The core is about to raise ``error``: noted when aiohttp re-runs a request after it."""
        if isinstance(error, _RERUN_BY_AIOHTTP):
            global watch
            watch = True
            _GAVE_UP.set((error, _timer_of(call[0]), call[2]))

    def strip(self, request: ClientRequest, origin: str) -> None:
        """Remove a token forbear attached from a request to an origin the token is not for."""
        token = self.token
        if self._attached and token is not None and origin not in token.origins:
            sent = request.headers.getall(token.header, ())
            if any(value in self._attached for value in sent):
                request.headers.popall(token.header, None)


def _one_shot(payload: aiohttp.Payload) -> bool:
    """Whether ``payload`` can be written only once (or was consumed while being written)."""
    if payload.consumed or isinstance(
        payload, (aiohttp.AsyncIterablePayload, BodyPartReaderPayload)
    ):
        return True
    if isinstance(payload, aiohttp.MultipartWriter):
        return any(_one_shot(part) for part, _, _ in payload)
    return False


def _timer_of(request: ClientRequest) -> object:
    # One timer per `ClientSession._request` call: it tells aiohttp's own re-run of a request
    # from a new request to the same URL.
    return getattr(request, "_timer", None)
