"""`Retrier` and `RetryCall`: the sans-IO driver every adapter runs its loop around.

A `Retrier` holds what is shared across requests (policy, gate, budget, token source, event
hook); `Retrier.begin` gives a `RetryCall` for one logical request, which combines `decide`
with those pieces. The driver never sends, sleeps or closes anything: it returns waits and
decisions, and the adapter does the I/O. A retry rule written in an adapter is a bug here.

The adapter's loop, in words::

    call = retrier.begin(method, url, headers, replayable=...)
    while True:
        sleep(call.gate_delay())
        attach call.headers() and call.auth_sync() (or await call.auth_async())
        send; on a transport error: decision = call.on_error(kind)
        else: decision = call.on_response(status, headers)
        RETURN / GIVE_UP -> hand back the response, or re-raise with call.note() attached
        RETRY -> release the response, sleep(decision.wait)
        REAUTH -> release the response, call.reauth_sync() (or await call.reauth_async())
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._budget import RetryBudget
from ._decide import decide
from ._events import Event, EventHook, logger
from ._gate import HostGate, origin_of
from ._policy import Policy
from ._retry_after import header_value
from ._state import Action, Decision, ErrorKind, Outcome, RetryState
from ._token import TokenSource

__all__ = ["IDEMPOTENCY_KEY_METHODS", "RetryCall", "Retrier"]

#: Methods that get an ``Idempotency-Key`` when `Retrier.idempotency_keys` is on.
IDEMPOTENCY_KEY_METHODS: frozenset[str] = frozenset({"POST", "PATCH"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)
_DEFAULT_POLICY = Policy()


class Retrier:
    """The retry machinery one adapter instance shares across its requests.

    ``gate`` and ``budget`` default to a fresh `HostGate` / `RetryBudget` for this retrier;
    pass your own to share them across clients, or ``None`` to go without. ``clock`` (monotonic),
    ``wall`` (Unix time) and ``rng`` (jitter) default to the real ones; inject them for tests
    and simulations.
    """

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: HostGate | bool | None = True,
        budget: RetryBudget | bool | None = True,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self.policy = _DEFAULT_POLICY if policy is None else policy
        if not isinstance(self.policy, Policy):
            raise TypeError(f"policy must be a forbear.Policy, got {type(policy).__name__}")
        self.token = token
        self.gate: HostGate | None = HostGate(clock=clock) if gate is True else (gate or None)
        self.budget: RetryBudget | None = (
            RetryBudget(clock=clock) if budget is True else (budget or None)
        )
        self.idempotency_keys = idempotency_keys
        self.request_ids = request_ids
        self.on_event = on_event

    def __repr__(self) -> str:
        return f"Retrier(policy={self.policy!r}, token={self.token!r})"

    def begin(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | Any,
        *,
        replayable: bool = True,
        policy: Policy | None = None,
        key: str | None = None,
    ) -> RetryCall:
        """Start one logical request. ``key`` overrides the gate key (default: the origin)."""
        return RetryCall(self, method, str(url), headers, replayable, policy or self.policy, key)


class RetryCall:
    """One logical request: decisions, gate slots, token and headers, attempt by attempt."""

    __slots__ = (
        "_added",
        "_key",
        "_retrier",
        "_sent_request_id",
        "_sent_token",
        "_success",
        "method",
        "policy",
        "state",
        "url",
    )

    def __init__(
        self,
        retrier: Retrier,
        method: str,
        url: str,
        headers: Mapping[str, str] | Any,
        replayable: bool,
        policy: Policy,
        key: str | None,
    ) -> None:
        self._retrier = retrier
        self.method = method.upper()
        self.url = url
        self.policy = policy
        token = retrier.token
        can_reauth = token is not None and token.applies_to(url)
        self._added: dict[str, str] = {}
        self._sent_request_id: str | None = None
        if (
            retrier.idempotency_keys
            and self.method in IDEMPOTENCY_KEY_METHODS
            and header_value(headers, "Idempotency-Key") is None
        ):
            self._added["Idempotency-Key"] = str(uuid.uuid4())
        if retrier.request_ids:
            sent = header_value(headers, "X-Request-Id")
            if sent is None:
                sent = self._added["X-Request-Id"] = str(uuid.uuid4())
            self._sent_request_id = sent
        # The state must know of a key, the caller's or ours: any method may then be re-sent.
        key_headers = self._added if "Idempotency-Key" in self._added else headers
        self.state = RetryState.start(
            self.method,
            headers=key_headers,
            can_reauth=can_reauth,
            replayable=replayable,
            now=retrier.clock(),
        )
        self._sent_token: str | None = None
        self._success: Decision | None = None
        self._key = key
        if retrier.budget is not None:
            retrier.budget.deposit()

    def __repr__(self) -> str:
        return f"RetryCall({self.method} attempt={self.state.sends})"

    # -- before each send ----------------------------------------------------------------

    @property
    def key(self) -> str:
        """The gate key of this request (its origin unless overridden)."""
        if self._key is None:
            gate = self._retrier.gate
            self._key = gate.key(self.url) if gate is not None else origin_of(self.url)
        return self._key

    def gate_delay(self) -> float:
        """Seconds to wait for this send's slot at the host gate (0.0 when unpaced).

        Never more than the policy's ``max_wait``: pacing learned from a server announcing, say,
        one request a day must not hang the program any more than its Retry-After may.
        """
        gate = self._retrier.gate
        return 0.0 if gate is None else min(gate.delay(self.key), self.policy.max_wait)

    def headers(self) -> dict[str, str]:
        """Headers forbear adds on every attempt: ``Idempotency-Key``, ``X-Request-Id``."""
        return self._added

    @property
    def uses_token(self) -> bool:
        """Whether this request carries the token source's token."""
        return self.state.can_reauth

    def auth_sync(self) -> tuple[str, str] | None:
        """The ``(name, value)`` auth header for this attempt, exchanging first if needed."""
        token = self._retrier.token
        if token is None or not self.state.can_reauth:
            return None
        self._sent_token = token.get_sync()
        return token.header, token.header_value(self._sent_token)

    async def auth_async(self) -> tuple[str, str] | None:
        """The async twin of `auth_sync`."""
        token = self._retrier.token
        if token is None or not self.state.can_reauth:
            return None
        self._sent_token = await token.get_async()
        return token.header, token.header_value(self._sent_token)

    def reauth_sync(self) -> None:
        """Re-exchange the token this request was refused with (shared with concurrent 401s)."""
        if self._retrier.token is not None:
            self._retrier.token.refresh_sync(self._sent_token)

    async def reauth_async(self) -> None:
        """The async twin of `reauth_sync`."""
        if self._retrier.token is not None:
            await self._retrier.token.refresh_async(self._sent_token)

    # -- after each send -----------------------------------------------------------------

    def on_response(self, status: int, headers: Mapping[str, str] | Any) -> Decision:
        """Judge a response; the decision is also recorded, observed by the gate and emitted."""
        return self._judge(Outcome.response(status, headers), headers)

    def on_error(self, kind: ErrorKind | str) -> Decision:
        """Judge a transport failure of ``kind``."""
        return self._judge(Outcome.error(kind), None)

    def _judge(self, outcome: Outcome, headers: Any) -> Decision:
        retrier = self._retrier
        # Real clocks are left to `decide`, which reads them only when a rule needs them.
        decision = decide(
            self.policy,
            self.state,
            outcome,
            now=None if retrier.clock is time.monotonic else retrier.clock(),
            wall=None if retrier.wall is time.time else retrier.wall(),
            rng=retrier.rng,
        )
        # A 429 is a rate limit, not an outage: the gate paces it, the budget does not drop it.
        if (
            decision.action is Action.RETRY
            and decision.status != 429
            and retrier.budget is not None
            and not retrier.budget.try_withdraw()
        ):
            decision = decision._replace(action=Action.GIVE_UP, wait=0.0, reason="budget-exhausted")
        if retrier.gate is not None:
            retrier.gate.observe(self.key, decision, headers)
        if decision.reason == "success" and not self.state.history:
            self._success = decision  # the common case: no new state needed, the request is over
        else:
            if self._success is not None:
                # The success did not end the request after all (its body failed to arrive, say):
                # it goes into the history first, in order.
                self.state, self._success = self.state.next(self._success), None
            self.state = self.state.next(decision)
        if retrier.on_event is not None or logger.isEnabledFor(
            logging.INFO if decision.action is Action.RETRY else logging.DEBUG
        ):
            self._emit(decision, headers)
        return decision

    def _emit(self, decision: Decision, headers: Any) -> None:
        request_id = self._sent_request_id
        if headers is not None:
            echoed = header_value(headers, "X-Request-Id")
            if echoed is not None and _REQUEST_ID.fullmatch(echoed):
                request_id = echoed
        event = Event.of(decision, self.method, self.url, request_id)
        level = logging.INFO if decision.action is Action.RETRY else logging.DEBUG
        logger.log(level, "%s", event.message(), extra={"forbear_event": event})
        hook = self._retrier.on_event
        if hook is not None:
            hook(event)

    def note(self) -> str:
        """The attempt history, for an exception note: statuses, decisions, waits; no secrets."""
        return self.state.note()

    def annotate(self, exc: BaseException) -> None:
        """Add `note` to ``exc`` (Python 3.10 too) when there is a history to tell."""
        if not self.history:
            return
        note = self.note()
        if sys.version_info >= (3, 11):
            exc.add_note(note)
        else:  # pragma: no cover - Python 3.10 keeps notes in a plain list
            notes = getattr(exc, "__notes__", None)
            if not isinstance(notes, list):
                notes = []
                exc.__notes__ = notes  # type: ignore[attr-defined]
            notes.append(note)

    def mark_unreplayable(self) -> None:
        """The body turned out to be one-shot while it was sent: it will not be sent again."""
        if self.state.replayable:
            self.state = self.state._replace(replayable=False)

    @property
    def history(self) -> tuple[Decision, ...]:
        """Every decision made for this request so far."""
        if self._success is None:
            return self.state.history
        return (*self.state.history, self._success)
