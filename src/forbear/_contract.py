"""What the one loop asks and gives: the adapter and shared-piece protocols, the effects the
flow yields, the one release policy, per-request overrides, and the process scope.

`forbear._flow` holds the loop itself (`Retrier`); this module holds the contract around it,
so an adapter author reads one short file to know what to supply. No I/O here.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import sys
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from ._budget import RetryBudget
from ._gate import HostGate
from ._policy import Policy
from ._retry_after import header_value
from ._state import Decision, ErrorKind, Reading

__all__ = [
    "OVERRIDE_KEYS",
    "RELEASE_BYTES",
    "RELEASE_SECONDS",
    "AsyncAdapter",
    "Budget",
    "Call",
    "Effect",
    "Flow",
    "Gate",
    "Release",
    "Replayable",
    "Send",
    "Sent",
    "Sleep",
    "SyncAdapter",
    "add_note",
    "drain_length",
    "overrides",
    "process_budget",
    "process_gate",
    "resolve_overrides",
]

#: The release policy, the same for every adapter: a discarded response whose whole body is
#: known (``Content-Length``), at most this many bytes and not compressed is read before it is
#: released, so its connection goes back to the pool; any other is closed unread.
RELEASE_BYTES = 64 * 1024
#: The longest a discarded body is read for (async clients; sync ones are bounded by their own
#: read timeout) before its connection is closed instead.
RELEASE_SECONDS = 0.25

#: The keys a per-request override mapping may hold.
OVERRIDE_KEYS: frozenset[str] = frozenset({"policy", "retries"})

RequestT = TypeVar("RequestT", contravariant=True)
ResponseT = TypeVar("ResponseT")


# -- what an adapter supplies --------------------------------------------------------------


class SyncAdapter(Protocol[RequestT, ResponseT]):
    """A sync client's part of the loop: five translations, no rule."""

    def send(self, request: RequestT, headers: Mapping[str, str] | None) -> ResponseT:
        """Send ``request`` once with ``headers`` set on it (None: nothing to add)."""

    def outcome(self, response: ResponseT) -> Reading:
        """The response's status and headers as an `Outcome`, or as the plain tuple of its
        fields ``(status, headers, None)``, which costs a third as much to make."""

    def failure(self, error: Exception) -> ErrorKind | None:
        """The kind of a transport error raised by `send`; None: not forbear's to judge."""

    def replayable(self, request: RequestT) -> bool:
        """Whether the request's body can be sent (again)."""

    def release(self, response: ResponseT) -> None:
        """Release a discarded response (see `drain_length`), never raising."""


class AsyncAdapter(Protocol[RequestT, ResponseT]):
    """An async client's part of the loop: `SyncAdapter` with ``send`` and ``release`` awaited.

    It may also have ``raised(request, error)``: `forbear.Retrier.run_async` calls it with
    every exception it is about to raise for ``request`` (the last attempt's error, or one
    from waiting or a token exchange), for a client that must know how its request ended.
    """

    async def send(self, request: RequestT, headers: Mapping[str, str] | None) -> ResponseT:
        """Send ``request`` once with ``headers`` set on it (None: nothing to add)."""

    def outcome(self, response: ResponseT) -> Reading:
        """The response's status and headers as an `Outcome`, or as the plain tuple of its
        fields ``(status, headers, None)``, which costs a third as much to make."""

    def failure(self, error: Exception) -> ErrorKind | None:
        """The kind of a transport error raised by `send`; None: not forbear's to judge."""

    def replayable(self, request: RequestT) -> bool:
        """Whether the request's body can be sent (again)."""

    async def release(self, response: ResponseT) -> None:
        """Release a discarded response (see `drain_length`), never raising."""


class Gate(Protocol):
    """What the loop asks of a gate: `HostGate`, a fleet's, or your own."""

    #: Maps a URL to the unit the gate paces (an origin, an API key, a route).
    key: Callable[[str], str]

    def free(self, key: str) -> bool:
        """Whether sends to ``key`` go at once: True lets the first send skip `delay`."""

    def delay(self, key: str) -> float | Call:
        """Reserve the next send slot for ``key``: the seconds to wait, or I/O that says.

        A `HostGate` may answer a wait with no slot behind it (a float of type
        ``forbear._gate.Again``): the loop waits it out, then asks `delay` again."""

    def succeeded(self, key: str, headers: Mapping[str, str] | Any, now: float) -> None:
        """A first attempt to ``key`` succeeded (the happy path: no I/O, no lock if possible)."""

    def observe(
        self,
        key: str,
        decision: Decision,
        headers: Mapping[str, str] | Any = None,
        *,
        now: float | None = None,
    ) -> None:
        """Learn from a judged attempt that was not a first-attempt success.

        Optional, both or neither: ``generation(key) -> int``, the view a slot from `delay` is
        reserved under, and ``confirm(key, generation) -> float``, asked after waiting out a
        slot: 0.0 to send now, else a wait after which the loop asks again (a fresh slot, or
        the rest of one on the same; see `HostGate.confirm`).
        """


class Budget(Protocol):
    """What the loop asks of a retry budget: `RetryBudget`, a fleet's, or your own."""

    def deposit(self, key: str = "", *, now: float | None = None) -> None:
        """Record a first attempt to ``key`` (the happy path: no I/O)."""

    def try_withdraw(self, key: str = "", *, now: float | None = None) -> bool:
        """Take one retry for ``key``; False refuses it (called inside the decision: no I/O)."""


def drain_length(headers: Mapping[str, str] | Any) -> int | None:
    """How many bytes of a discarded response to read before releasing it, or None: close it.

    The one release policy: only a body whose length is known, at most `RELEASE_BYTES`, and
    not compressed (a discarded body is never inflated) is worth reading for its connection.
    """
    length = header_value(headers, "Content-Length")
    if length is None or not (length.isascii() and length.isdigit()) or len(length) > 9:
        return None
    size = int(length)
    if size > RELEASE_BYTES or header_value(headers, "Content-Encoding") is not None:
        return None
    return size


# -- effects ---------------------------------------------------------------------------------


class Send(NamedTuple):
    """Send the request once with these headers set on it; the flow receives a `Sent`."""

    headers: Mapping[str, str] | None


class Sleep(NamedTuple):
    """Wait this many seconds; the flow receives None."""

    seconds: float


class Release(NamedTuple):
    """Release this discarded response; the flow receives None."""

    response: Any


class Replayable(NamedTuple):
    """Say whether the request's body can still be sent again; the flow receives a bool."""


class Call(NamedTuple):
    """An effect for I/O a shared piece needs (a token exchange, a fleet's reservation).

    The sync runner calls ``sync(*args)``, the async runner awaits ``asynchronous(*args)``;
    the flow receives the result, or the exception is raised inside the flow.
    """

    sync: Callable[..., Any]
    asynchronous: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()


_SEND_PLAIN = Send(None)
_REPLAYABLE = Replayable()

Effect = Send | Sleep | Release | Replayable | Call
#: What a send produced: the response, the error, and the outcome (None: an error not judged).
Sent = tuple[Any, "Exception | None", "Reading | None"]
Flow = Generator[Effect, Any, Any]


# -- per-request overrides -------------------------------------------------------------------

_OVERRIDES: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "forbear_overrides", default=None
)
#: ``[True]`` once any `overrides` block has been entered in this process: until then no
#: context holds one, and the runners' fast path does not read `_OVERRIDES` at all.
_SCOPED = [False]


@contextlib.contextmanager
def overrides(*, policy: Policy | None = None, retries: bool = True) -> Iterator[None]:
    """Within this block, requests through any adapter use ``policy``, or send once.

    ``with forbear.overrides(retries=False): session.get(url)`` sends once, without retrying
    or re-exchanging; ``policy=`` swaps the policy. The client's own idiom (httpx's
    ``extensions={"forbear": {...}}``, say) wins over this block when both are given.
    """
    settings: dict[str, Any] = {"retries": retries}
    if policy is not None:
        settings["policy"] = policy
    resolve_overrides(settings, Policy(), "forbear.overrides()")  # refuse bad values here
    _SCOPED[0] = True
    reset = _OVERRIDES.set(settings)
    try:
        yield
    finally:
        _OVERRIDES.reset(reset)


def resolve_overrides(settings: Any, default: Policy, where: str) -> Policy:
    """The policy for one request from an override mapping (``policy``, ``retries``)."""
    if not isinstance(settings, Mapping):
        raise TypeError(f"{where} must be a mapping, got {type(settings).__name__}")
    unknown = set(settings) - OVERRIDE_KEYS
    if unknown:
        known = ", ".join(sorted(OVERRIDE_KEYS))
        raise ValueError(f"unknown {where} keys {sorted(unknown)}; known: {known}")
    policy = settings.get("policy", default)
    if not isinstance(policy, Policy):
        raise TypeError(f'{where}["policy"] must be a forbear.Policy, got {type(policy).__name__}')
    retries = settings.get("retries", True)
    if not isinstance(retries, bool):
        raise TypeError(f'{where}["retries"] must be a bool, got {type(retries).__name__}')
    return policy if retries else _single_send(policy)


@functools.lru_cache(maxsize=32)
def _single_send(policy: Policy) -> Policy:
    return dataclasses.replace(policy, max_attempts=1, max_reauths=0)


# -- scope -----------------------------------------------------------------------------------

_PROCESS: dict[str, Any] = {}


def process_gate() -> HostGate:
    """The process's `HostGate`: every adapter built without ``gate=`` shares it."""
    gate = _PROCESS.get("gate")
    if gate is None:
        gate = _PROCESS.setdefault("gate", HostGate())
    return gate  # type: ignore[no-any-return]


def process_budget() -> RetryBudget:
    """The process's `RetryBudget` (kept per key): every adapter built without ``budget=``."""
    budget = _PROCESS.get("budget")
    if budget is None:
        budget = _PROCESS.setdefault("budget", RetryBudget())
    return budget  # type: ignore[no-any-return]


def add_note(error: BaseException, note: str) -> None:
    """Add ``note`` to ``error`` (Python 3.10 too)."""
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10 keeps notes in a plain list
        notes = getattr(error, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            error.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)
