"""`CallSite` and `Stepper`: the one retry loop, driven from a retry library's callbacks.

Libraries such as backoff and tenacity run the loop themselves: they call the function, ask a
predicate, compute a wait, sleep, call again. A `Stepper` drives `Retrier.flow` from those
callbacks, so every decision is still the core's: each call of the function is the flow's
`Send`, and what it returned or raised (read by `forbear._readers`) answers it.

- A decorated function reveals its request (method, URL, headers) only in its response or
  exception, so the flow starts from the first attempt's result (`Retrier.flow`'s ``sent``).
  Before that attempt the gate's slot is taken for the origin the function's previous call
  went to (or the one declared with ``origin=``, `Retrier.first_slot`), and the token for
  that origin is read.
- A method nobody names (aiohttp's connection errors carry no request) is `UNKNOWN_METHOD`:
  not idempotent, so the request is not re-sent unless the server refused it (429) or it
  never left (a refused connection).
- Nothing sleeps while the flow is stepped, so every wait it asks for between two sends is
  measured from the same instant: the library is told the longest (`Stepper.wait`). I/O it
  asks for (a token exchange, a fleet's reservation, releasing a discarded response) is done
  by `proceed_sync` / `proceed_async`, from whichever callback of the library may do it.
- A first attempt that succeeds with nothing else to do (no gate slot held back, no token, no
  override: `Retrier._quick_key`) is the runners' fast path: no flow is started, the budget's
  deposit and the gate's success count are made directly, and its event is made only for
  someone listening (or on demand: `Stepper.event`).
- `attempt_headers` gives the function the headers forbear adds to the attempt it is making
  (the token): a decorator cannot set them on a request the function builds.

No retry rule lives here: the flow decides; this only answers its effects.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Generator, Mapping
from types import EllipsisType
from typing import Any

import anyio

from ._contract import Budget, Call, Flow, Gate, Release, Replayable, Send, Sleep
from ._events import Event, EventHook
from ._flow import Retrier, _origin, _success_event
from ._gate import origin_of
from ._policy import Policy
from ._readers import Attempt, arelease, read_exception, read_response, release
from ._state import Action
from ._token import TokenSource

__all__ = ["UNKNOWN_METHOD", "CallSite", "Stepper", "attempt_headers"]

#: The method of a request whose response or exception does not name it and whose function
#: declared none. Not in any policy's idempotent methods: it is never re-sent unsafely.
UNKNOWN_METHOD = "UNKNOWN"

_HEADERS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "forbear_attempt_headers", default=None
)
# What the I/O steps yield for a runner to perform (sync or async).
_Steps = Generator["Call | Release | Sleep", Any, Any]


def attempt_headers() -> dict[str, str]:
    """The headers forbear adds to the attempt being made now (the token), to set on it.

    Inside a function decorated by forbear-backoff or forbear-tenacity; empty elsewhere.
    """
    headers = _HEADERS.get()
    return {} if headers is None else dict(headers)


class CallSite:
    """What forbear keeps for one decorated function, across its calls.

    The keyword arguments are every adapter's (`Retrier`), plus: ``method`` declares the
    method the function sends, for attempts whose response or exception does not name it
    (None: unknown, so not safe to re-send); ``origin`` declares where its first attempts go,
    so the gate holds them and the token is sent. Without it, a call's first attempt waits
    for the origin the previous call went to (a token source for exactly one origin declares
    that one).
    """

    __slots__ = ("_declared", "last_origin", "last_url", "method", "retrier")

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
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {type(on_event).__name__}")
        self.retrier = Retrier(
            policy=policy, token=token, gate=gate, budget=budget, on_event=on_event
        )
        if method is not None and not (
            isinstance(method, str) and method.isascii() and method.isalpha()
        ):
            raise ValueError(f"method must be an HTTP method name such as 'POST', got {method!r}")
        self.method = None if method is None else method.upper()
        if origin is None and token is not None and len(token.origins) == 1:
            origin = next(iter(token.origins))
        if origin is not None and not origin_of(str(origin)):
            raise ValueError(
                f"origin must be a URL such as 'https://api.example.com', got {origin!r}"
            )
        self._declared = None if origin is None else origin_of(str(origin))
        #: The origin the latest call went to.
        self.last_origin: str | None = self._declared
        #: The URL the latest call went to (the gate's key may be per route or per API key).
        self.last_url: str | None = self._declared

    @property
    def policy(self) -> Policy:
        """The policy the decisions follow."""
        return self.retrier.policy

    def begin(self) -> Stepper:
        """A `Stepper` for one call of the function."""
        return Stepper(self)


class Stepper:
    """One call of a decorated function: the flow of its logical request, step by step.

    Per attempt: `enter_sync` / `enter_async` (wait what is still due; `attempt_headers`
    then gives the function the headers to send), the function's call, `leave`, then `judge`
    with what it returned or raised: True when the function is to be called again after
    `wait` seconds, False when `result` (a response to return, or an exception to raise)
    ends the call. `proceed_sync` / `proceed_async` may do the I/O due between two attempts
    earlier, from a callback of the library that can (the entry does what is left).
    """

    __slots__ = (
        "_effect",
        "_event",
        "_flow",
        "_owed",
        "_reset",
        "_site",
        "_started",
        "_success",
        "_token",
        "discarded",
        "done",
        "result",
        "wait",
    )

    def __init__(self, site: CallSite) -> None:
        self._site = site
        self._flow: Flow | None = None
        #: The effect the flow waits on: a `Send` (ready), I/O still to do, or None (ended).
        self._effect: Any = None
        self._owed = 0.0
        #: When the call began (monotonic), and the token its first attempt carried.
        self._started: float | None = None
        self._token: str | None = None
        self._reset: contextvars.Token[Mapping[str, str] | None] | None = None
        #: Whether `result` ends the call.
        self.done = False
        #: A response the flow discarded, released by the next `proceed_*` at the latest.
        self.discarded: Any = None
        #: Seconds to wait before the next attempt.
        self.wait = 0.0
        self._event: Event | None = None
        #: A first attempt that succeeded without a flow: its event is made on demand.
        self._success: Attempt | None = None
        #: What ends the call: the response to return or the exception to raise.
        self.result: Any = None

    @property
    def event(self) -> Event | None:
        """The latest decision, as the event forbear emitted for it (None: none yet)."""
        event = self._event
        if event is None and self._success is not None:
            attempt = self._success
            method = attempt.method or self._site.method or UNKNOWN_METHOD
            event = self._event = _success_event(attempt.outcome, method, attempt.url)
        return event

    @property
    def action(self) -> Action | None:
        """What the latest decision does next (`event`'s action, without making the event)."""
        if self._success is not None:
            return Action.RETURN
        event = self._event
        return None if event is None else event.action

    # -- around an attempt -------------------------------------------------------------------

    def enter_sync(self) -> None:
        """Before an attempt: wait what is still due, then expose its headers to the function."""
        headers = None if self._flow is None and self._quick() else _run_sync(self._entry())
        self._reset = _HEADERS.set(headers)

    async def enter_async(self) -> None:
        """The async twin of `enter_sync` (``anyio.sleep``: asyncio and trio)."""
        if self._flow is None and self._quick():
            self._reset = _HEADERS.set(None)
        else:
            self._reset = _HEADERS.set(await _run_async(self._entry()))

    def leave(self) -> None:
        """After an attempt: the function's headers are gone (safe to call more than once)."""
        reset, self._reset = self._reset, None
        if reset is not None:
            try:
                _HEADERS.reset(reset)
            except ValueError:  # entered in another context (a callback run elsewhere)
                _HEADERS.set(None)

    def proceed_sync(self) -> None:
        """Do the I/O the flow asks for before the next send (sync): see `due`."""
        self._owed = max(self._owed, _run_sync(self._pending()))

    async def proceed_async(self) -> None:
        """The async twin of `proceed_sync`."""
        self._owed = max(self._owed, await _run_async(self._pending()))

    def due(self) -> float:
        """The whole wait before the next attempt, for a library that asks after `proceed_*`.

        The waits the flow asked for after its I/O are in it, and are not slept again.
        """
        owed, self._owed = self._owed, 0.0
        return max(self.wait, owed)

    def _quick(self) -> bool:
        """Whether the first attempt goes at once with no headers added (`Retrier._quick_key`).

        True: it begins now. Without an origin expected there is nothing to wait for.
        """
        site = self._site
        retrier, origin = site.retrier, site.last_origin
        if origin is not None and retrier._quick_key(site.last_url, origin, None) is None:
            return False
        self._started = retrier.clock()
        return True

    def _entry(self) -> _Steps:
        """Before an attempt: the I/O and waits still due; returns the headers to send."""
        if self._flow is not None:
            owed = yield from self._pending()
            owed, self._owed = max(owed, self._owed), 0.0
            if owed > 0.0:
                yield Sleep(owed)
            effect = self._effect
            return effect.headers if type(effect) is Send else None
        # The first attempt: the gate's slot and the token for the origin expected.
        site = self._site
        retrier, origin = site.retrier, site.last_origin
        self._started = retrier.clock()
        if origin is None:
            return None
        yield from retrier.first_slot(origin, self._started, url=site.last_url)
        token = retrier.token
        if token is None or origin not in token.origins:
            return None
        self._token = yield Call(token.get_sync, token.get_async)
        return {token.header: token.header_value(self._token)}

    # -- after an attempt --------------------------------------------------------------------

    def judge(self, value: object, *, raised: bool) -> bool:
        """Answer the pending send with what the function returned or raised (``raised``).

        True: call the function again after `wait` seconds. False: the call ends with
        `result`. Anything forbear cannot read ends the call as it is.
        """
        attempt = read_exception(value) if raised else read_response(value)  # type: ignore[arg-type]
        flow = self._flow
        if (attempt is None and (flow is None or not raised)) or (
            flow is not None and type(self._effect) is not Send
        ):
            return self._end(value)  # nothing forbear can read, or the flow ended already
        if attempt is None:
            sent: Any = (None, value, None)
        else:
            sent = (attempt.response, value if raised else None, attempt.outcome)
        if flow is None:  # the flow starts by judging the first attempt
            assert attempt is not None
            status = attempt.outcome.status
            if status is not None and status < 400 and not raised:
                return self._succeeded(attempt, value)
            site = self._site
            self._flow = site.retrier.flow(
                attempt.method or site.method or UNKNOWN_METHOD,
                attempt.url,
                {} if attempt.request_headers is None else attempt.request_headers,
                sent=sent,
                started=self._started,
                sent_token=self._token,
                on_event=self._record,
            )
            site.last_origin = site._declared or origin_of(attempt.url) or site.last_origin
            site.last_url = attempt.url or site.last_url
            sent = None
        waits = self._advance(sent)
        self.wait = 0.0 if waits is None else waits
        return waits is not None

    def _succeeded(self, attempt: Attempt, value: object) -> bool:
        """A first attempt succeeded: the runners' bookkeeping, no flow; False, for `judge`."""
        site = self._site
        retrier = site.retrier
        url = attempt.url
        origin = _origin(url)
        key = retrier._request_key(url, origin)
        started = retrier._first(key, self._started)
        site.last_origin = site._declared or origin or site.last_origin
        site.last_url = url or site.last_url
        method = attempt.method or site.method or UNKNOWN_METHOD
        self._event = retrier._succeeded(key, attempt.outcome, method, url, started)
        self._success = attempt
        return self._end(value)

    def _record(self, event: Event) -> None:
        self._event = event

    def _advance(self, value: Any, error: BaseException | None = None) -> float | None:
        """Step the flow with ``value`` (or ``error``) up to its next send or I/O.

        The longest wait it asked for on the way (nothing sleeps while it is stepped, so each
        is measured from the same instant), or None when it ended with `result`.
        """
        flow = self._flow
        assert flow is not None
        waits = 0.0
        effect: Any
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
            while type(effect) is not Send and type(effect) is not Call:
                value = None
                if type(effect) is Sleep:
                    waits = max(waits, effect.seconds)
                elif type(effect) is Replayable:
                    value = True  # the function builds its request again on each call
                else:
                    self.discarded = effect.response  # released by the next `_pending`
                effect = flow.send(value)
        except StopIteration as stop:
            self._end(stop.value)
            return None
        except BaseException:
            self._effect = None  # the flow ended with this exception: the call ends with it
            raise
        self._effect = effect
        return waits

    def _pending(self) -> _Steps:
        """The I/O due before the next send: releases and calls; returns the extra wait."""
        extra = 0.0
        while True:
            if self.discarded is not None:
                response, self.discarded = self.discarded, None
                yield Release(response)
            call = self._effect
            if type(call) is not Call:
                return extra
            value, error = None, None
            try:
                value = yield call
            except BaseException as exc:
                error = exc
            extra = max(extra, self._advance(value, error) or 0.0)

    def _end(self, result: Any) -> bool:
        """The call ends with ``result``: False, for `judge`."""
        self._effect = None
        self.result = result
        self.done = True
        if self._flow is not None:
            self._flow.close()
        return False


def _run_sync(steps: _Steps) -> Any:
    """Perform the I/O ``steps`` yield, synchronously; what they return."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            if isinstance(effect, Sleep):
                time.sleep(effect.seconds)
            elif isinstance(effect, Release):
                release(effect.response)
            else:
                value = effect.sync(*effect.args)
        except BaseException as exc:
            error = exc


async def _run_async(steps: _Steps) -> Any:
    """Perform the I/O ``steps`` yield, awaiting it; what they return."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            if isinstance(effect, Sleep):
                await anyio.sleep(effect.seconds)
            elif isinstance(effect, Release):
                await arelease(effect.response)
            else:
                value = await effect.asynchronous(*effect.args)
        except BaseException as exc:
            error = exc
