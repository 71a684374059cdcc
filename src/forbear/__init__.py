"""forbear: retries the way careful HTTP APIs ask for them.

One pure decision core (`decide`) says, for every attempt, whether to hand the response back,
wait and retry, re-exchange a token and retry, or give up; `Retrier` runs the one loop around
it for every adapter. Adapters for httpx, requests, aiohttp, backoff and tenacity live in
their own distributions and import only the public namespace: this module, `forbear.flow`
(the loop's parts, for libraries that run a loop of their own), `forbear.errors` (the error
envelopes) and `forbear.rules` (the named defaults and tables).
"""

from __future__ import annotations

from typing import Any

from . import errors, flow, profiles, rules
from ._budget import RetryBudget
from ._contract import (
    AsyncAdapter,
    Budget,
    Call,
    Gate,
    SyncAdapter,
    drain_length,
    overrides,
    process_budget,
    process_gate,
)
from ._decide import decide
from ._errors import APIError, parse_error
from ._events import Event, EventHook, subscribe
from ._flow import Retrier
from ._gate import HostGate, origin_of
from ._policy import Backoff, Jitter, Policy
from ._readers import error_kind
from ._retry_after import parse_retry_after
from ._state import Action, Decision, ErrorKind, Outcome, Reason, RetryState
from ._token import TokenExchangeError, TokenSource

__all__ = [
    # The public submodules: the profiles, the loop's parts, error envelopes, rules as data.
    "errors",
    "flow",
    "profiles",
    "rules",
    # Deciding: the pure core.
    "Action",
    "Backoff",
    "Decision",
    "ErrorKind",
    "Jitter",
    "Outcome",
    "Policy",
    "Reason",
    "RetryState",
    "decide",
    "parse_retry_after",
    # Sharing: scope, coordination, credentials, errors, events.
    "APIError",
    "Event",
    "EventHook",
    "HostGate",
    "RetryBudget",
    "TokenExchangeError",
    "TokenSource",
    "overrides",
    "parse_error",
    "process_budget",
    "process_gate",
    "subscribe",
    # Adapting a client: the loop and what it asks of an adapter and of shared pieces.
    "AsyncAdapter",
    "Budget",
    "Call",
    "Gate",
    "Retrier",
    "SyncAdapter",
    "drain_length",
    "error_kind",
    "origin_of",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear")
    raise AttributeError(f"module 'forbear' has no attribute {name!r}")
