"""forbear: retries the way careful HTTP APIs ask for them.

One pure decision core (`decide`) says, for every attempt, whether to hand the response back,
wait and retry, re-exchange a token and retry, or give up. Adapters for httpx, requests,
aiohttp and backoff live in their own distributions and import only this namespace.
"""

from __future__ import annotations

from typing import Any

from . import profiles
from ._budget import RetryBudget
from ._decide import REASONS, decide
from ._errors import (
    MAX_ERROR_BODY,
    MAX_ERROR_MESSAGE,
    APIError,
    BadRequest,
    Conflict,
    ErrorInfo,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unprocessable,
    parse_error,
)
from ._events import Event, EventHook, Sending, redact_url, sending, subscribe, subscribers
from ._flow import (
    IDEMPOTENCY_KEY_METHODS,
    RELEASE_BYTES,
    RELEASE_SECONDS,
    AsyncAdapter,
    Call,
    Effect,
    Flow,
    Release,
    Replayable,
    Retrier,
    Send,
    Sent,
    Sleep,
    SyncAdapter,
    add_note,
    drain_length,
    overrides,
    process_budget,
    process_gate,
)
from ._gate import HostGate, origin_of
from ._policy import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_REAUTHS,
    DEFAULT_MAX_WAIT,
    DEFAULT_RETRY_AFTER_JITTER,
    DEFAULT_RETRY_STATUSES,
    IDEMPOTENT_METHODS,
    Backoff,
    Jitter,
    Policy,
)
from ._readers import Attempt, error_kind, read_attempt
from ._retry_after import header_value, parse_http_date, parse_retry_after
from ._state import NEVER_SENT_ERRORS, Action, Decision, ErrorKind, Outcome, Reason, RetryState
from ._stepper import UNKNOWN_METHOD, CallSite, Stepper, attempt_headers
from ._token import TokenExchangeError, TokenSource

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_REAUTHS",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_RETRY_AFTER_JITTER",
    "DEFAULT_RETRY_STATUSES",
    "IDEMPOTENCY_KEY_METHODS",
    "IDEMPOTENT_METHODS",
    "MAX_ERROR_BODY",
    "MAX_ERROR_MESSAGE",
    "NEVER_SENT_ERRORS",
    "REASONS",
    "RELEASE_BYTES",
    "RELEASE_SECONDS",
    "UNKNOWN_METHOD",
    "APIError",
    "AsyncAdapter",
    "Action",
    "Attempt",
    "Backoff",
    "BadRequest",
    "Call",
    "CallSite",
    "Effect",
    "Flow",
    "Conflict",
    "Decision",
    "ErrorInfo",
    "ErrorKind",
    "Event",
    "EventHook",
    "Forbidden",
    "Gone",
    "HostGate",
    "Jitter",
    "NotFound",
    "Outcome",
    "Policy",
    "RateLimited",
    "Reason",
    "Release",
    "Replayable",
    "Retrier",
    "RetryBudget",
    "RetryState",
    "Send",
    "Sending",
    "Sent",
    "ServerError",
    "Sleep",
    "Stepper",
    "TokenExchangeError",
    "TokenSource",
    "Unauthorized",
    "SyncAdapter",
    "Unprocessable",
    "add_note",
    "attempt_headers",
    "decide",
    "drain_length",
    "error_kind",
    "header_value",
    "origin_of",
    "parse_error",
    "parse_http_date",
    "overrides",
    "parse_retry_after",
    "process_budget",
    "process_gate",
    "profiles",
    "read_attempt",
    "redact_url",
    "sending",
    "subscribe",
    "subscribers",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear")
    raise AttributeError(f"module 'forbear' has no attribute {name!r}")
