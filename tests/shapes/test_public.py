"""The public surface, pinned: what `forbear` and each distribution export, by name.

A name added or removed here is a decision about what users and adapter authors may rely on;
helpers (header parsing, the error tables, the readers' internals) stay private.
"""

from __future__ import annotations

import importlib

import pytest

SURFACES = {
    "forbear": [
        "APIError",
        "Action",
        "AsyncAdapter",
        "Backoff",
        "Budget",
        "Call",
        "Decision",
        "ErrorKind",
        "Event",
        "EventHook",
        "Gate",
        "HostGate",
        "Jitter",
        "Outcome",
        "Policy",
        "Reason",
        "Retrier",
        "RetryBudget",
        "RetryState",
        "SyncAdapter",
        "TokenExchangeError",
        "TokenSource",
        "decide",
        "drain_length",
        "error_kind",
        "errors",
        "flow",
        "origin_of",
        "overrides",
        "parse_error",
        "parse_retry_after",
        "process_budget",
        "process_gate",
        "profiles",
        "rules",
        "subscribe",
    ],
    "forbear.flow": [
        "Attempt",
        "CallSite",
        "Effect",
        "Flow",
        "Reading",
        "Release",
        "Replayable",
        "Send",
        "Sending",
        "Sent",
        "Sleep",
        "Stepper",
        "UNKNOWN_METHOD",
        "add_note",
        "attempt_headers",
        "read_attempt",
        "redact_url",
        "sending",
        "subscribers",
    ],
    "forbear.errors": [
        "APIError",
        "BadRequest",
        "Conflict",
        "ErrorInfo",
        "Forbidden",
        "Gone",
        "MAX_ERROR_BODY",
        "MAX_ERROR_MESSAGE",
        "NotFound",
        "RateLimited",
        "ServerError",
        "Unauthorized",
        "Unprocessable",
        "parse_error",
    ],
    "forbear.rules": [
        "DEFAULT_MAX_ATTEMPTS",
        "DEFAULT_MAX_REAUTHS",
        "DEFAULT_MAX_WAIT",
        "DEFAULT_RETRY_AFTER_JITTER",
        "DEFAULT_RETRY_STATUSES",
        "IDEMPOTENCY_KEY_METHODS",
        "IDEMPOTENT_METHODS",
        "NEVER_SENT_ERRORS",
        "REASONS",
        "RELEASE_BYTES",
        "RELEASE_SECONDS",
    ],
    "forbear_httpx": ["RetryTransport"],
    "forbear_requests": ["RetryAdapter"],
    "forbear_aiohttp": ["RetryMiddleware"],
    "forbear_backoff": ["DECISION_KEY", "Pieces", "headers", "on_exception", "on_response"],
    "forbear_tenacity": ["AsyncStrategies", "Strategies", "headers", "retry"],
    "forbear_redis": ["Fleet", "FleetBudget", "FleetGate", "Pacing"],
}


@pytest.mark.parametrize("module", sorted(SURFACES))
def test_public_surface_is_pinned(module: str) -> None:
    """Each module's ``__all__`` is exactly the names decided on, and each one exists."""
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(SURFACES[module])
    for name in imported.__all__:
        assert hasattr(imported, name), name


def test_helpers_stay_private() -> None:
    """Header parsing and the old driver are not part of the namespace."""
    import forbear

    for name in ("header_value", "parse_http_date", "RetryCall", "REASONS", "Sleep"):
        assert name not in forbear.__all__
    assert not hasattr(forbear, "RetryCall")


def test_adapters_may_not_import_any_private_module() -> None:
    """Every ``forbear._x`` module is banned for adapters in ``adapters/ruff.toml``."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    banned = (root / "adapters" / "ruff.toml").read_text(encoding="utf-8")
    private = sorted(
        path.stem
        for path in (root / "src" / "forbear").glob("_*.py")
        if path.stem not in ("__init__", "__main__")
    )
    assert private
    missing = [name for name in private if f'"forbear.{name}".msg' not in banned]
    assert missing == []
