"""The one retry loop: `Retrier`, the per-request flow, and its sync and async runners.

In the manner of httpx's ``Auth.auth_flow``: the flow of one logical request is a generator
that yields *effects* (send with these headers, sleep, release a response, call this piece of
I/O) and receives what they produced. It holds every step of the loop (the gate's slot, the
deadline, the headers forbear adds, the token, `decide`, the budget, events) and performs no
I/O itself. `Retrier.run_sync` and `Retrier.run_async` perform the effects, with
``time.sleep`` or ``anyio.sleep`` (asyncio and trio alike).

An adapter supplies only what its client knows (`SyncAdapter` / `AsyncAdapter`): how to send a
request with extra headers, how a response or an exception reads as an `Outcome`, whether the
body can still be sent again, and how to release a discarded response. A retry rule written in
an adapter is a bug here. Shared pieces that need I/O of their own (a fleet's store) return a
`Call` effect instead of an answer, and the runners perform it: no adapter changes.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from types import EllipsisType
from typing import Any

import anyio

from ._budget import RetryBudget
from ._contract import (
    _OVERRIDES,
    _REPLAYABLE,
    _SCOPED,
    _SEND_PLAIN,
    AsyncAdapter,
    Budget,
    Call,
    Flow,
    Gate,
    Release,
    Replayable,
    RequestT,
    ResponseT,
    Send,
    Sent,
    Sleep,
    SyncAdapter,
    add_note,
    process_budget,
    process_gate,
    resolve_overrides,
)
from ._decide import decide
from ._events import _SENDING, Event, EventHook, Sending, _Hub, logger, redact_url
from ._gate import Again, HostGate, origin_of
from ._policy import Policy
from ._retry_after import header_value
from ._state import Action, Decision, Outcome, Reading, Reason, RetryState
from ._token import TokenSource

__all__ = ["IDEMPOTENCY_KEY_METHODS", "Retrier"]

#: Methods that get an ``Idempotency-Key`` when `Retrier.idempotency_keys` is on.
IDEMPOTENCY_KEY_METHODS: frozenset[str] = frozenset({"POST", "PATCH"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)

#: The most times a send woken on a void slot (or a wait with none, `Again`) asks the gate
#: again before it goes.
_RECONFIRMS = 32


def _slot_wait(
    slot: float, policy: Policy, deadline_at: float | None, clock: Callable[[], float]
) -> float:
    """How long a request waits for its gate slot: never past ``max_wait`` or its deadline."""
    slot = min(slot, policy.max_wait)
    if deadline_at is not None:
        slot = max(min(slot, deadline_at - clock()), 0.0)
    return slot


def _checked(value: Any, kind: type, name: str, methods: tuple[str, ...]) -> Any:
    if value is None or isinstance(value, kind):
        return value
    if all(callable(getattr(value, method, None)) for method in methods):
        return value  # another implementation of the same protocol (a fleet's, say)
    raise TypeError(
        f"{name} must be a forbear.{kind.__name__}, another object with "
        f"{', '.join(methods)}, or None; got {type(value).__name__}"
    )


_GATE_METHODS = ("delay", "succeeded", "observe")
_BUDGET_METHODS = ("deposit", "try_withdraw")
_TOKEN_METHODS = ("get_sync", "get_async", "refresh_sync", "refresh_async", "header_value")


#: Origins already read from URL strings, by the URL's ``scheme://authority`` prefix.
_ORIGINS: dict[str, str] = {}


def _origin(url: object) -> str:
    """`origin_of` for a URL string, cached by its prefix: a client meets few origins often."""
    text = str(url)
    start = text.find("://")
    if start < 0:
        return origin_of(text)
    end = text.find("/", start + 3)
    prefix = text if end < 0 else text[:end]
    origin = _ORIGINS.get(prefix)
    if origin is None:
        origin = origin_of(prefix)
        if "?" not in prefix and "#" not in prefix:  # a query before any path: not cached
            if len(_ORIGINS) >= 1024:
                _ORIGINS.clear()
            _ORIGINS[prefix] = origin
    return origin


#: Bound once, for the runners' first send: a method of an imported name (or a callable
#: kept on an instance) called as ``obj.name()`` is looked up through its type on every call;
#: read into a name and then called, the interpreter's specialized paths serve it.
_scoped_overrides = _OVERRIDES.get
_logs = logger.isEnabledFor
#: The answers `_logs` keeps per level (logging empties this dict in place whenever a level
#: changes): a success reads "no" here without calling it. A level not yet asked, or a logger
#: without the cache, reads None and asks `_logs`.
_logs_cached = getattr(logger, "_cache", {}).get


#: The settings the runners' derived state (`Retrier._derive`) is worked out from.
_DERIVED_FROM = frozenset(
    {"gate", "budget", "token", "idempotency_keys", "request_ids", "clock", "wall"}
)
#: Books of no keys: the fast path's lookup for a gate or budget it cannot read in place.
_NO_BOOKS: dict[str, Any] = {}


def _always(key: str) -> bool:
    return True


def _never(key: str) -> bool:
    return False


# -- the retrier -----------------------------------------------------------------------------


class Retrier:
    """What one adapter shares across its requests, and the loop it runs for each.

    ``gate`` and ``budget`` default (``...``) to the process's own (`process_gate`,
    `process_budget`), so every client in the process coordinates per origin; pass objects to
    narrow the scope (or a fleet's, to widen it), or None to go without. ``clock``
    (monotonic), ``wall`` (Unix time) and ``rng`` (jitter) default to the real ones; inject
    them for tests and simulations.
    """

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: Gate | EllipsisType | None = ...,
        budget: Budget | EllipsisType | None = ...,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy must be a forbear.Policy, got {type(policy).__name__}")
        self.policy: Policy = _DEFAULT_POLICY if policy is None else policy
        self.token: TokenSource | None = _checked(token, TokenSource, "token", _TOKEN_METHODS)
        self.gate: Gate | None = _checked(
            process_gate() if gate is ... else gate, HostGate, "gate", _GATE_METHODS
        )
        self.budget: Budget | None = _checked(
            process_budget() if budget is ... else budget, RetryBudget, "budget", _BUDGET_METHODS
        )
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {type(on_event).__name__}")
        self.idempotency_keys = bool(idempotency_keys)
        self.request_ids = bool(request_ids)
        self.on_event = on_event
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self._derive()

    #: Set once `_derive` has run: from then on a changed setting is derived again.
    _derived = False

    def __setattr__(self, name: str, value: Any) -> None:
        # (Never through ``self.__dict__``: reading it makes the instance's attributes a
        # plain dict, and the interpreter then reads them slowly on every request.)
        object.__setattr__(self, name, value)
        if self._derived and name in _DERIVED_FROM:
            self._derive()  # a setting changed after construction: the fast path follows it

    def _derive(self) -> None:
        """What the runners read on every request, worked out once from the settings."""
        gate, budget, token = self.gate, self.budget, self.token
        #: No header to add: a first send may skip the flow.
        self._plain = not (self.idempotency_keys or self.request_ids)
        self._token_origins: frozenset[str] = frozenset() if token is None else token.origins
        #: The gate's cheap "holds nothing back for this key" check. A gate without one is
        #: asked for a slot on every send: the first send never skips it.
        free = getattr(gate, "free", None)
        self._gate_free: Callable[[str], bool] = (
            _always if gate is None else _never if free is None else free
        )
        #: The process gate's and budget's own books, read in place on the fast path (see
        #: `HostGate` "calm lanes" and `RetryBudget.deposit`); other implementations are asked
        #: through their methods.
        self._lane: Callable[[str], Any] = (
            gate._origins.get if type(gate) is HostGate else _NO_BOOKS.get
        )
        self._account: Callable[[str], Any] = (
            budget._accounts.get if type(budget) is RetryBudget else _NO_BOOKS.get
        )
        key = getattr(gate, "key", origin_of)
        self._key: Callable[[str], str] | None = None if key is origin_of else key
        #: The gate's check that a slot waited out still holds (`HostGate.confirm`), with the
        #: view it was reserved under; None for a gate without one: the slot is kept.
        generation = getattr(gate, "generation", None)
        confirm = getattr(gate, "confirm", None)
        self._confirm: tuple[Callable[[str], int], Callable[[str, int], Any]] | None = (
            None if generation is None or confirm is None else (generation, confirm)
        )
        self._real_clocks = self.clock is time.monotonic and self.wall is time.time
        self._derived = True

    def __repr__(self) -> str:
        return f"Retrier(policy={self.policy!r}, token={self.token!r})"

    def settings(self) -> dict[str, Any]:
        """The constructor's keyword arguments, to build an equal retrier (pickling, copies)."""
        return {
            "policy": self.policy,
            "token": self.token,
            "gate": self.gate,
            "budget": self.budget,
            "idempotency_keys": self.idempotency_keys,
            "request_ids": self.request_ids,
            "on_event": self.on_event,
        }

    # -- the runners -------------------------------------------------------------------------

    def run_sync(
        self,
        adapter: SyncAdapter[RequestT, ResponseT],
        request: RequestT,
        method: str,
        url: object,
        headers: Mapping[str, str] | Any,
        origin: str | None = None,
        override: Mapping[str, Any] | None = None,
        where: str = "overrides",
    ) -> ResponseT:
        """Send ``request`` through ``adapter`` until the core says stop; sleeps with time.sleep.

        Returns the last response untouched, or raises the last transport error unchanged with
        the attempt history as a note. ``origin`` is the request's ``scheme://host[:port]``
        when the client has it parsed already; ``override`` a per-request override mapping
        (named ``where`` in error messages). Adapters pass these three by position: the
        interpreter specializes a call without keywords, and this one is made per request.
        """
        # `_quick_key` and `_first` written out: a call costs more than its work here.
        key = None
        if override is None and self._plain and (not _SCOPED[0] or _scoped_overrides() is None):
            if origin is None:
                origin = _origin(url)
            if origin not in self._token_origins:
                key = origin if self._key is None else self._key(str(url))
                clock = self.clock  # (attributes read, then called: a call of ``self.x()`` is
                lane_of = self._lane  # looked up as a method, slowly, on every request)
                started = clock()
                # The gate's calm lane (see `HostGate`): no call while it runs.
                lane = lane_of(key)
                if lane is None or started >= lane.calm_until:
                    lane = None
                    gate_free = self._gate_free  # read, then called: see `_scoped_overrides`
                    if not gate_free(key):
                        key = None
        if key is None:
            flow = self._flow(method, url, headers, origin, override, where)
        else:
            # The common case, unwrapped: one send, and on success nothing else to do
            # (`RetryBudget.deposit` and `HostGate.succeeded` in place when they are those).
            account_of = self._account
            account = account_of(key)
            if account is not None and started < account.end:
                next(account.current)
            elif self.budget is not None:
                self.budget.deposit(key, now=started)
            try:
                response = adapter.send(request, None)
            except Exception as exc:
                failed = adapter.failure(exc)
                sent: Sent = (None, exc, None if failed is None else Outcome.error(failed))
            else:
                outcome = adapter.outcome(response)
                status = outcome[0]  # `Outcome.status`, by index: no descriptor looked up
                if status is not None and status < 400:
                    if lane is not None and started < lane.calm_until:
                        lane.window_successes += 1
                    elif self.gate is not None:
                        self.gate.succeeded(key, outcome[1], started)  # `Outcome.headers`
                    if (
                        self.on_event is not None
                        or _Hub.hooks
                        or (_logs_cached(10) is not False and _logs(10))
                    ):
                        self._succeeded(key, outcome, method, url, started, counted=True)
                    return response
                sent = (response, None, outcome)
            flow = self._flow(method, url, headers, origin, override, where, (key, started, sent))
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result = stop.value
                if isinstance(result, BaseException):
                    raise result from None
                return result  # type: ignore[no-any-return]
            error = None
            kind = type(effect)
            try:
                if kind is Send:
                    try:
                        response = adapter.send(request, effect.headers)  # type: ignore[union-attr]
                    except Exception as exc:
                        failed = adapter.failure(exc)
                        value = (None, exc, None if failed is None else Outcome.error(failed))
                    else:
                        value = (response, None, adapter.outcome(response))
                elif kind is Sleep:
                    time.sleep(effect.seconds)  # type: ignore[union-attr]
                    value = None
                elif kind is Release:
                    adapter.release(effect.response)  # type: ignore[union-attr]
                    value = None
                elif kind is Replayable:
                    value = adapter.replayable(request)
                else:
                    value = effect.sync(*effect.args)  # type: ignore[union-attr]
            except BaseException as exc:
                error = exc

    async def run_async(
        self,
        adapter: AsyncAdapter[RequestT, ResponseT],
        request: RequestT,
        method: str,
        url: object,
        headers: Mapping[str, str] | Any,
        origin: str | None = None,
        override: Mapping[str, Any] | None = None,
        where: str = "overrides",
    ) -> ResponseT:
        """The async twin of `run_sync`: sleeps with ``anyio.sleep`` (asyncio and trio).

        An adapter with ``raised`` hears of every exception raised here (see `AsyncAdapter`).
        """
        try:
            # `_quick_key` and `_first` written out: a call costs more than its work here.
            key = None
            if override is None and self._plain and (not _SCOPED[0] or _scoped_overrides() is None):
                if origin is None:
                    origin = _origin(url)
                if origin not in self._token_origins:
                    key = origin if self._key is None else self._key(str(url))
                    clock = self.clock  # (attributes read, then called: a call of ``self.x()`` is
                    lane_of = self._lane  # looked up as a method, slowly, on every request)
                    started = clock()
                    # The gate's calm lane (see `HostGate`): no call while it runs.
                    lane = lane_of(key)
                    if lane is None or started >= lane.calm_until:
                        lane = None
                        gate_free = self._gate_free  # read, then called: see `_scoped_overrides`
                        if not gate_free(key):
                            key = None
            if key is None:
                flow = self._flow(method, url, headers, origin, override, where)
            else:
                # The common case, unwrapped: one send, and on success nothing else to do
                # (`RetryBudget.deposit` and `HostGate.succeeded` in place when they are those).
                account_of = self._account
                account = account_of(key)
                if account is not None and started < account.end:
                    next(account.current)
                elif self.budget is not None:
                    self.budget.deposit(key, now=started)
                try:
                    response = await adapter.send(request, None)
                except Exception as exc:
                    failed = adapter.failure(exc)
                    sent: Sent = (None, exc, None if failed is None else Outcome.error(failed))
                else:
                    outcome = adapter.outcome(response)
                    status = outcome[0]  # `Outcome.status`, by index: no descriptor looked up
                    if status is not None and status < 400:
                        if lane is not None and started < lane.calm_until:
                            lane.window_successes += 1
                        elif self.gate is not None:
                            self.gate.succeeded(key, outcome[1], started)  # `Outcome.headers`
                        if (
                            self.on_event is not None
                            or _Hub.hooks
                            or (_logs_cached(10) is not False and _logs(10))
                        ):
                            self._succeeded(key, outcome, method, url, started, counted=True)
                        return response
                    sent = (response, None, outcome)
                flow = self._flow(
                    method, url, headers, origin, override, where, (key, started, sent)
                )
            value: Any = None
            error: BaseException | None = None
            while True:
                try:
                    effect = flow.send(value) if error is None else flow.throw(error)
                except StopIteration as stop:
                    result = stop.value
                    if isinstance(result, BaseException):
                        raise result from None
                    return result  # type: ignore[no-any-return]
                error = None
                kind = type(effect)
                try:
                    if kind is Send:
                        try:
                            response = await adapter.send(request, effect.headers)  # type: ignore[union-attr]
                        except Exception as exc:
                            failed = adapter.failure(exc)
                            value = (None, exc, None if failed is None else Outcome.error(failed))
                        else:
                            value = (response, None, adapter.outcome(response))
                    elif kind is Sleep:
                        await anyio.sleep(effect.seconds)  # type: ignore[union-attr]
                        value = None
                    elif kind is Release:
                        await adapter.release(effect.response)  # type: ignore[union-attr]
                        value = None
                    elif kind is Replayable:
                        value = adapter.replayable(request)
                    else:
                        value = await effect.asynchronous(*effect.args)  # type: ignore[union-attr]
                except BaseException as exc:
                    error = exc
        except BaseException as exc:
            # No cost until something is raised: the adapter hears how the request ended.
            raised = getattr(adapter, "raised", None)
            if raised is not None:
                raised(request, exc)
            raise

    # -- the flow ----------------------------------------------------------------------------

    def flow(
        self,
        method: str,
        url: object,
        headers: Mapping[str, str] | Any,
        *,
        origin: str | None = None,
        override: Mapping[str, Any] | None = None,
        where: str = "overrides",
        sent: Sent | None = None,
        started: float | None = None,
        on_event: EventHook | None = None,
        sent_token: str | None = None,
    ) -> Flow:
        """The flow of one logical request, for a library that runs the loop itself.

        A generator: ``send`` it what each effect produced (None first). `Send`: the
        `Sent` triple ``(response, error, outcome)``, with ``outcome`` None for an error
        forbear does not judge; `Sleep` and `Release`: None; `Replayable`: a bool; `Call`:
        its result (or ``throw`` its exception). It returns the response to hand back or the
        exception to raise. The runners `run_sync` / `run_async` drive it for ordinary
        clients.

        ``sent`` is the first attempt when it was already made (its gate slot taken, its
        headers set): a library that learns the request only from its first answer starts
        the flow there, and ``started`` (monotonic) says when that attempt began, for the
        deadline, and ``sent_token`` which token it carried (the one a 401 makes stale); see
        `first_slot` for its gate slot. ``on_event`` receives this request's events, besides
        the retrier's hook.
        """
        if sent is None:
            return self._flow(method, url, headers, origin, override, where, None, on_event)
        if origin is None:
            origin = _origin(url)
        key = self._request_key(url, origin)
        first = (key, self._first(key, started), sent)
        return self._flow(
            method, url, headers, origin, override, where, first, on_event, sent_token
        )

    def first_slot(
        self, origin: str, started: float, *, url: object | None = None
    ) -> Generator[Call | Sleep, Any, None]:
        """The gate's slot for a first attempt made outside a flow (`flow`'s ``sent``), as effects.

        The flow's own step before a send, for ``origin``: a `Call` when the gate needs I/O
        (its result: the wait), then a `Sleep`, never longer than ``max_wait`` nor past the
        deadline counted from ``started`` (monotonic). ``url`` is where the attempt goes, when
        known, for a gate keyed by more than the origin.
        """
        gate = self.gate
        if gate is None:
            return
        key = self._request_key(origin if url is None else url, origin)
        slot: Any = gate.delay(key)
        if type(slot) is Call:
            slot = yield slot
        if slot > 0.0:
            seen = 0 if self._confirm is None else self._confirm[0](key)
            again = type(slot) is Again
            policy = self._policy(None, "")
            deadline_at = None if policy.deadline is None else started + policy.deadline
            slot = _slot_wait(slot, policy, deadline_at, self.clock)
            if slot > 0.0:
                yield Sleep(slot)
                if self._confirm is not None:
                    yield from self._reconfirm(key, seen, slot, policy, deadline_at, again)

    def _reconfirm(
        self,
        key: str,
        seen: int,
        held: float,
        policy: Policy,
        deadline_at: float | None,
        again: bool,
    ) -> Generator[Call | Sleep, Any, float]:
        """After waiting ``held`` seconds on a slot reserved under the gate's view ``seen``:
        while that view changed, wait for a fresh slot instead (a bounded number of times,
        never past ``max_wait`` in all nor the deadline). ``again``: the wait had no slot
        behind it (`Again`), so a slot is asked for afresh. Returns the seconds held in all."""
        assert self._confirm is not None and self.gate is not None
        generation, confirm = self._confirm
        for _ in range(_RECONFIRMS):
            current = generation(key)
            wait: Any = self.gate.delay(key) if again else confirm(key, seen)
            if type(wait) is Call:
                wait = yield wait
                current = generation(key)  # the call may have brought a newer view
            if wait <= 0.0:
                break
            again = type(wait) is Again
            seen = current
            wait = min(_slot_wait(wait, policy, deadline_at, self.clock), policy.max_wait - held)
            if wait <= 0.0:
                break
            held += wait
            yield Sleep(wait)
        return held

    def _policy(self, override: Mapping[str, Any] | None, where: str) -> Policy:
        """The policy of one request: the override given, or the `overrides` block's."""
        if override is not None:
            return resolve_overrides(override, self.policy, where)
        scoped = _OVERRIDES.get()
        if scoped is None:
            return self.policy
        return resolve_overrides(scoped, self.policy, "forbear.overrides()")

    def _flow(
        self,
        method: str,
        url: object,
        headers: Mapping[str, str] | Any,
        origin: str | None,
        override: Mapping[str, Any] | None,
        where: str,
        first: tuple[str, float, Sent] | None = None,
        hook: EventHook | None = None,
        sent_token: str | None = None,
    ) -> Flow:
        """One logical request, as effects. Returns the last response or the error to raise.

        ``first`` is ``(key, started, sent)`` when a runner made the first send itself (the
        common case, see `_quick_key`): the flow starts by judging it.
        """
        policy = self._policy(override, where)
        if origin is None:
            origin = _origin(url)
        gate, budget, token = self.gate, self.budget, self.token
        clock = self.clock
        if first is None:
            key = origin if self._key is None else self._key(str(url))
            started = self._first(key)
        else:
            key, started, _ = first
        method = method if method.isupper() else method.upper()
        added = self._added(method, headers) if self.idempotency_keys or self.request_ids else None
        request_id = None
        if self.request_ids:
            request_id = header_value(headers, "X-Request-Id") or (added or {}).get("X-Request-Id")
        use_token = token is not None and origin in token.origins
        deadline_at = None if policy.deadline is None else started + policy.deadline
        state: RetryState | None = None
        while True:
            held = 0.0
            if first is not None:
                response, error, outcome = first[2]
                first = None
            else:
                # 1. A send slot from the gate, waited out (never past the deadline).
                if gate is not None:
                    slot: Any = gate.delay(key)
                    if type(slot) is Call:
                        slot = yield slot
                    if slot > 0.0:
                        seen = 0 if self._confirm is None else self._confirm[0](key)
                        again = type(slot) is Again
                        slot = _slot_wait(slot, policy, deadline_at, clock)
                        if slot > 0.0:
                            held = slot
                            yield Sleep(slot)
                            if self._confirm is not None:
                                held = yield from self._reconfirm(
                                    key, seen, held, policy, deadline_at, again
                                )
                # 2. Headers: the token, Idempotency-Key and X-Request-Id.
                send = _SEND_PLAIN if added is None else Send(added)
                if use_token:
                    assert token is not None
                    sent_token = yield Call(token.get_sync, token.get_async)
                    auth = {token.header: token.header_value(sent_token)}
                    send = Send(auth if added is None else {**added, **auth})
                # 3. The send (labelled for instrumentation while anyone subscribes).
                if state is None or not _Hub.hooks:
                    response, error, outcome = yield send
                else:
                    label = Sending(state.sends, method, redact_url(str(url)))
                    reset = _SENDING.set(label)
                    try:
                        response, error, outcome = yield send
                    finally:
                        _SENDING.reset(reset)
            if outcome is None:  # an error forbear does not judge: raised as it is
                assert error is not None
                if state is not None and state.history:
                    add_note(error, state.note())
                return error
            status = outcome[0]  # (an adapter's `Reading`, or an `Outcome`)
            if state is None:
                if status is not None and status < 400:
                    self._succeeded(key, outcome, method, url, started, request_id, held, hook)
                    return response
                state = RetryState.start(
                    method,
                    headers=added if added and "Idempotency-Key" in added else headers,
                    can_reauth=use_token,
                    now=started,
                )
            # A body that turned out one-shot while it was sent cannot be sent again.
            if state.replayable and not (yield _REPLAYABLE):
                state = state._replace(replayable=False)
            # 4. The decision, the budget's admission inside it.
            if type(outcome) is not Outcome:
                outcome = Outcome._make(outcome)
            decision = decide(
                policy,
                state,
                outcome,
                now=None if self._real_clocks else clock(),
                wall=None if self._real_clocks else self.wall(),
                rng=self.rng,
                admit=None if budget is None else functools.partial(budget.try_withdraw, key),
            )
            if gate is not None:
                gate.observe(key, decision, outcome.headers, now=clock())
            state = state.next(decision)
            if (
                self.on_event is not None
                or hook is not None
                or _Hub.hooks
                or logger.isEnabledFor(20 if decision.action is Action.RETRY else 10)
            ):
                self._emit(decision, method, url, request_id, outcome.headers, held, hook)
            action = decision.action
            if action is Action.RETURN or action is Action.GIVE_UP:
                if error is not None:
                    add_note(error, state.note())
                    return error
                return response
            # 5. Release what is discarded, then wait or re-exchange.
            if response is not None:
                yield Release(response)
            if action is Action.REAUTH:
                assert token is not None
                yield Call(token.refresh_sync, token.refresh_async, (sent_token,))
            elif decision.wait > 0.0:
                yield Sleep(decision.wait)

    def _quick_key(
        self, url: object, origin: str | None, override: Mapping[str, Any] | None
    ) -> str | None:
        """The gate key when the first send needs nothing from the flow, else None.

        Nothing is needed when no override applies, no header is added (no token for this
        origin, no idempotency keys or request ids) and the gate holds nothing back for the key.
        """
        if override is not None or not self._plain or _OVERRIDES.get() is not None:
            return None
        if origin is None:
            origin = _origin(url)
        if origin in self._token_origins:
            return None
        key = origin if self._key is None else self._key(str(url))
        return key if self._gate_free(key) else None

    def _request_key(self, url: object, origin: str) -> str:
        """The gate's key for a request to ``url``, whose origin is ``origin``."""
        return origin if self._key is None else self._key(str(url))

    def _first(self, key: str, started: float | None = None) -> float:
        """Start a logical request: its start time, and the budget's deposit for it.

        ``started`` (monotonic) when its first attempt began already; else it begins now.
        """
        if started is None:
            started = self.clock()
        if self.budget is not None:
            self.budget.deposit(key, now=started)
        return started

    def _succeeded(
        self,
        key: str,
        outcome: Reading,
        method: str,
        url: object,
        now: float,
        request_id: str | None = None,
        held: float = 0.0,
        hook: EventHook | None = None,
        counted: bool = False,
    ) -> Event | None:
        """A first attempt succeeded: the gate counts it (unless ``counted`` already); an event
        if anyone listens.

        The event emitted, or None when nobody listens (`_success_event` makes it on demand).
        """
        status, headers, _ = outcome
        if self.gate is not None and not counted:
            self.gate.succeeded(key, headers, now)
        if self.on_event is not None or hook is not None or _Hub.hooks or logger.isEnabledFor(10):
            decision = Decision(Action.RETURN, 0.0, Reason.SUCCESS, 1, status)
            method = method if method.isupper() else method.upper()
            return self._emit(decision, method, url, request_id, headers, held, hook)
        return None

    def _added(self, method: str, headers: Mapping[str, str] | Any) -> dict[str, str] | None:
        added: dict[str, str] = {}
        if (
            self.idempotency_keys
            and method in IDEMPOTENCY_KEY_METHODS
            and header_value(headers, "Idempotency-Key") is None
        ):
            added["Idempotency-Key"] = str(uuid.uuid4())
        if self.request_ids and header_value(headers, "X-Request-Id") is None:
            added["X-Request-Id"] = str(uuid.uuid4())
        return added or None

    def _emit(
        self,
        decision: Decision,
        method: str,
        url: object,
        request_id: str | None,
        headers: Mapping[str, str] | Any,
        held: float,
        hook: EventHook | None = None,
    ) -> Event:
        event = _event_of(decision, method, url, request_id, headers, held)
        level = logging.INFO if decision.action is Action.RETRY else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(level, "%s", event.message(), extra={"forbear_event": event})
        if self.on_event is not None:
            self.on_event(event)
        if hook is not None:
            hook(event)
        for subscriber in _Hub.hooks:
            subscriber(event)
        return event


def _event_of(
    decision: Decision,
    method: str,
    url: object,
    request_id: str | None,
    headers: Mapping[str, str] | Any,
    held: float,
) -> Event:
    """The event of ``decision``: the server's ``X-Request-Id`` wins over the one sent."""
    if decision.status is not None:
        echoed = header_value(headers, "X-Request-Id")
        if echoed is not None and _REQUEST_ID.fullmatch(echoed):
            request_id = echoed
    return Event.of(decision, method, str(url), request_id, held)


def _success_event(outcome: Outcome, method: str, url: object) -> Event:
    """The event `Retrier._succeeded` emits for a first attempt that succeeded, made on demand.

    For a caller that keeps the event of a success nobody listened to (a `Stepper`): the URL
    is redacted only if the event is asked for.
    """
    decision = Decision(Action.RETURN, 0.0, Reason.SUCCESS, 1, outcome.status)
    method = method if method.isupper() else method.upper()
    return _event_of(decision, method, url, None, outcome.headers, 0.0)


_DEFAULT_POLICY = Policy()
