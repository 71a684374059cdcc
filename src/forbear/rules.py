"""The rules as data: the named defaults and tables `decide`, the loop and the docs read.

Import what you need from here (``from forbear.rules import DEFAULT_RETRY_STATUSES``); each
value is immutable, and changing a policy means passing a `forbear.Policy`, not editing these.
"""

from __future__ import annotations

from ._contract import RELEASE_BYTES, RELEASE_SECONDS
from ._decide import REASONS
from ._flow import IDEMPOTENCY_KEY_METHODS
from ._policy import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_REAUTHS,
    DEFAULT_MAX_WAIT,
    DEFAULT_RETRY_AFTER_JITTER,
    DEFAULT_RETRY_STATUSES,
    IDEMPOTENT_METHODS,
)
from ._state import NEVER_SENT_ERRORS

__all__ = [
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
]
