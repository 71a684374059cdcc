"""`CallSite` and `Stepper`: the one retry loop, driven from a retry library's callbacks.

Libraries such as backoff and tenacity run the loop themselves: they call the function, ask a
predicate, compute a wait, sleep, call again. A `Stepper` drives `Retrier.flow` from those
callbacks, so every decision is still the core's: each call of the function is the flow's
`Send`, and what it returned or raised (read by `forbear._readers`) answers it.

- A decorated function reveals its request (method, URL, headers) only in its response or
  exception, so the flow starts from the first attempt's result. Before that attempt the gate
  is asked for a slot for the origin the function's previous call went to (or the one
  declared with ``origin=``), and the token for that origin is read.
- A method nobody names (aiohttp's connection errors carry no request) is `UNKNOWN_METHOD`:
  not idempotent, so the request is not re-sent unless the server refused it (429) or it
  never left (a refused connection).
- Nothing sleeps while the flow is stepped, so every wait it asks for between two sends is
  measured from the same instant: the library is told the longest (`Stepper.wait`). I/O it
  asks for (a token exchange, a fleet's reservation, releasing a discarded response) is done
  by `proceed_sync` / `proceed_async`, from whichever callback of the library may do it.
- `attempt_headers` gives the function the headers forbear adds to the attempt it is making
  (the token): a decorator cannot set them on a request the function builds.

No retry rule lives here: the flow decides; this only answers its effects.
"""

from __future__ import annotations

import contextvars
import copy
import time
from collections.abc import Generator, Mapping
from types import EllipsisType
from typing import Any

import anyio

from ._budget import RetryBudget
from ._events import Event, EventHook
from ._flow import Call, Release, Replayable, Retrier, Send, Sleep
from ._gate import HostGate, origin_of
from ._policy import Policy
from ._readers import arelease, read_exception, read_response, release
from ._token import TokenSource

__all__ = ["UNKNOWN_METHOD", "CallSite", "Stepper", "attempt_headers"]

#: The method of a request whose response or exception does not name it and whose function
#: declared none. Not in any policy's idempotent methods: it is never re-sent unsafely.
UNKNOWN_METHOD = "UNKNOWN"

_HEADERS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "forbear_attempt_headers", default=None
)
# What the I/O steps yield: a `Call` to perform, or a `Release` to do (sync or async).
_Steps = Generator["Call | Release", Any, Any]


def attempt_headers() -> dict[str, str]:
    """The headers forbear adds to the attempt being made now (the token), to set on it.

    Inside a function decorated by forbear-backoff or forbear-tenacity; empty elsewhere.
    """
    headers = _HEADERS.get()
    return {} if headers is None else dict(headers)


def checked_method(method: str | None) -> str | None:
    """A declared method, upper-case; ValueError for anything that is not a method name."""
    if method is None:
        return None
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise ValueError(f"method must be an HTTP method name such as 'POST', got {method!r}")
    return method.upper()


class CallSite:
    """What forbear keeps for one decorated function, across its calls.

    The keyword arguments are every adapter's (`Retrier`), plus: ``method`` declares the
    method the function sends, for attempts whose response or exception does not name it
    (None: unknown, so not safe to re-send); ``origin`` declares where its first attempts go,
    so the gate holds them and the token is sent. Without it, a call's first attempt waits
    for the origin the previous call went to (a token source for exactly one origin declares
    that one).
    """

    __slots__ = ("_declared", "last_origin", "method", "on_event", "retrier")

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        method: str | None = None,
        token: TokenSource | None = None,
        gate: HostGate | EllipsisType | None = ...,
        budget: RetryBudget | EllipsisType | None = ...,
        on_event: EventHook | None = None,
        origin: str | None = None,
    ) -> None:
        self.retrier = Retrier(policy=policy, token=token, gate=gate, budget=budget)
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {type(on_event).__name__}")
        self.on_event = on_event
        self.method = checked_method(method)
        if origin is None and token is not None and len(token.origins) == 1:
            origin = next(iter(token.origins))
        if origin is not None and not origin_of(str(origin)):
            raise ValueError(
                f"origin must be a URL such as 'https://api.example.com', got {origin!r}"
            )
        self._declared = None if origin is None else origin_of(str(origin))
        #: The origin the latest call went to.
        self.last_origin: str | None = self._declared

    @property
    def policy(self) -> Policy:
        """The policy the decisions follow."""
        return self.retrier.policy

    def begin(self) -> Stepper:
        """A `Stepper` for one call of the function."""
        return Stepper(self)


class _SlotTaken:
    """The gate for a flow whose first send already had its slot (taken before the call)."""

    __slots__ = ("_gate", "_taken", "key")

    def __init__(self, gate: Any) -> None:
        self._gate = gate
        self._taken = True
        self.key = getattr(gate, "key", origin_of)

    def delay(self, key: str) -> Any:
        if self._taken:
            self._taken = False
            return 0.0
        return self._gate.delay(key)

    def succeeded(self, *args: Any, **kwargs: Any) -> None:
        self._gate.succeeded(*args, **kwargs)

    def observe(self, *args: Any, **kwargs: Any) -> None:
        self._gate.observe(*args, **kwargs)


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
        "_flow",
        "_owed",
        "_reserved",
        "_reset",
        "_sent_token",
        "_site",
        "discarded",
        "done",
        "event",
        "result",
        "wait",
    )

    def __init__(self, site: CallSite) -> None:
        self._site = site
        self._flow: Generator[Any, Any, Any] | None = None
        #: The effect the flow waits on: a `Send` (ready), I/O still to do, or None (ended).
        self._effect: Any = None
        self._reserved = False
        self._owed = 0.0
        #: Whether `result` ends the call.
        self.done = False
        self._sent_token: str | None = None
        self._reset: contextvars.Token[Mapping[str, str] | None] | None = None
        #: A response the flow discarded, released by the next `proceed_*` at the latest.
        self.discarded: Any = None
        #: Seconds to wait before the next attempt.
        self.wait = 0.0
        #: The latest decision, as the event forbear emitted for it.
        self.event: Event | None = None
        #: What ends the call: the response to return or the exception to raise.
        self.result: Any = None

    # -- around an attempt -------------------------------------------------------------------

    def enter_sync(self) -> None:
        """Before an attempt: wait what is still due, then expose its headers to the function."""
        if self._flow is None:
            headers = _run_sync(self._first())
        else:
            self.proceed_sync()
            owed, self._owed = self._owed, 0.0
            time.sleep(owed)
            headers = self._headers()
        self._reset = _HEADERS.set(headers)

    async def enter_async(self) -> None:
        """The async twin of `enter_sync` (``anyio.sleep``: asyncio and trio)."""
        if self._flow is None:
            headers = await _run_async(self._first())
        else:
            await self.proceed_async()
            owed, self._owed = self._owed, 0.0
            await anyio.sleep(owed)
            headers = self._headers()
        self._reset = _HEADERS.set(headers)

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

    def _first(self) -> _Steps:
        """Before the first attempt: the gate's slot and the token for the expected origin."""
        origin = self._site.last_origin
        retrier = self._site.retrier
        if origin is None:
            return None
        gate, policy = retrier.gate, retrier.policy
        if gate is not None:
            key = origin if retrier._key is None else retrier._key(origin)
            slot: Any = gate.delay(key)
            if type(slot) is Call:
                slot = yield slot
            self._reserved = True
            slot = min(slot, policy.max_wait, policy.deadline or policy.max_wait)
            if slot > 0.0:
                yield Call(time.sleep, anyio.sleep, (slot,))
        token = retrier.token
        if token is None or origin not in token.origins:
            return None
        self._sent_token = yield Call(token.get_sync, token.get_async)
        return {token.header: token.header_value(self._sent_token)}

    def _headers(self) -> Mapping[str, str] | None:
        effect = self._effect
        return effect.headers if type(effect) is Send else None

    # -- after an attempt --------------------------------------------------------------------

    def judge(self, value: object, *, raised: bool) -> bool:
        """Answer the pending send with what the function returned or raised (``raised``).

        True: call the function again after `wait` seconds. False: the call ends with
        `result`. Anything forbear cannot read ends the call as it is.
        """
        attempt = read_exception(value) if raised else read_response(value)  # type: ignore[arg-type]
        if self._flow is None:
            if attempt is None:
                self.result = value  # the first attempt is nothing forbear can read
                self.done = True
                return False
            self._start(attempt.method, attempt.url, attempt.request_headers)
        elif type(self._effect) is not Send or (attempt is None and not raised):
            self._end(value)  # the flow ended, or something it cannot judge was handed back
            return False
        if attempt is None:
            sent: Any = (None, value, None)
        else:
            sent = (attempt.response, value if raised else None, attempt.outcome)
        return self._advance(sent)

    def _start(self, method: str | None, url: str, headers: Any) -> None:
        """Start the flow from the first attempt, answering what it asks before that send."""
        site = self._site
        retrier = site.retrier
        retrier = copy.copy(site.retrier)  # this call's: its events come here first
        retrier.on_event = self._record
        if self._reserved and retrier.gate is not None:
            retrier.gate = _SlotTaken(retrier.gate)  # type: ignore[assignment]
        method = method or site.method or UNKNOWN_METHOD
        flow = self._flow = retrier.flow(method, url, {} if headers is None else headers)
        site.last_origin = site._declared or origin_of(url) or site.last_origin
        token = retrier.token
        effect = next(flow)
        while type(effect) is not Send:
            # The first send was made already: its waits are over, its token was this one.
            is_token = token is not None and type(effect) is Call and effect.sync == token.get_sync
            effect = flow.send(
                self._sent_token if is_token else 0.0 if type(effect) is Call else None
            )
        self._effect = effect

    def _record(self, event: Event) -> None:
        self.event = event
        if self._site.on_event is not None:
            self._site.on_event(event)

    def _advance(self, value: Any) -> bool:
        """Step the flow with ``value`` up to its next send or I/O, or to its end."""
        flow = self._flow
        assert flow is not None
        waits = 0.0
        try:
            effect = flow.send(value)
            while type(effect) is not Send and type(effect) is not Call:
                value = None
                if type(effect) is Sleep:
                    waits = max(waits, effect.seconds)
                elif type(effect) is Replayable:
                    value = True  # the function builds its request again on each call
                else:
                    self.discarded = effect.response
                effect = flow.send(value)
        except StopIteration as stop:
            self._end(stop.value)
            return False
        self._effect = effect
        self.wait = waits
        return True

    def _pending(self) -> _Steps:
        """The I/O due before the next send: releases and calls; returns the extra wait."""
        extra = 0.0
        if self.discarded is not None:
            response, self.discarded = self.discarded, None
            yield Release(response)
        flow, effect = self._flow, self._effect
        try:
            while type(effect) is not Send:
                assert flow is not None and effect is not None
                value = None
                if type(effect) is Call:
                    try:
                        value = yield effect
                    except BaseException as exc:
                        effect = flow.throw(exc)
                        continue
                elif type(effect) is Sleep:
                    extra = max(extra, effect.seconds)
                elif type(effect) is Release:
                    yield effect
                elif type(effect) is Replayable:
                    value = True
                effect = flow.send(value)
        except BaseException:
            self._effect = None  # the flow ended with this exception: the call ends with it
            raise
        self._effect = effect
        return extra

    def _end(self, result: Any) -> None:
        self._effect = None
        self.result = result
        self.done = True
        if self._flow is not None:
            self._flow.close()


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
            if isinstance(effect, Release):
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
            if isinstance(effect, Release):
                await arelease(effect.response)
            else:
                value = await effect.asynchronous(*effect.args)
        except BaseException as exc:
            error = exc
